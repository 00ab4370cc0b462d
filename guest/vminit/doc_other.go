//go:build !linux

// Package vminit is the setup of a ccos microVM guest; it exists on Linux
// only.
package vminit
