//go:build !linux

package firecracker

import "errors"

// checkKVM reports that KVM exists only on Linux.
func checkKVM() error { return errors.New("KVM needs Linux") }
