//go:build !linux

package wasm

import (
	"errors"
	"io/fs"
)

// reserveMemory is Linux-only; elsewhere linear memory grows by copying.
func reserveMemory(uint64) ([]byte, error) {
	return nil, errors.New("address-space reservation is implemented for Linux only")
}

func releaseMemory([]byte) {}

// checkOwner only checks permissions (checkCacheDir) outside Linux.
func checkOwner(fs.FileInfo) error { return nil }
