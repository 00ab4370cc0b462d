//go:build !linux

package firecracker

import "errors"

// checkKVM reports that KVM exists only on Linux.
func checkKVM() error { return errors.New("KVM needs Linux") }

// CheckKVM is the check of Available: KVM that can run a VM here.
func CheckKVM() error { return checkKVM() }
