package firecracker

import (
	"errors"
	"fmt"
	"os"

	"github.com/ccos-project/ccos/sandbox"
	"golang.org/x/sys/unix"
)

// kvmAPIVersion is the only KVM API version there has ever been.
const kvmAPIVersion = 12

// ioctlKVMGetAPIVersion is KVM_GET_API_VERSION, _IO(0xAE, 0x00).
const ioctlKVMGetAPIVersion = 0xAE00

// CheckKVM is the check of Available: KVM that can run a VM here.
func CheckKVM() error { return checkKVM() }

// checkKVM opens the KVM device and asks for its API version: a device
// node alone (without a working KVM driver behind it) is not enough; nor is
// a KVM without hardware virtualisation under it (a nested guest).
func checkKVM() error {
	f, err := os.OpenFile(KVMDevice, os.O_RDWR|unix.O_CLOEXEC, 0)
	if errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("no %s (this host has no KVM)", KVMDevice)
	}
	if err != nil {
		return fmt.Errorf("cannot open %s: %w", KVMDevice, err)
	}
	defer f.Close()
	v, err := unix.IoctlRetInt(int(f.Fd()), ioctlKVMGetAPIVersion)
	if err != nil {
		return fmt.Errorf("%s does not answer KVM_GET_API_VERSION: %w", KVMDevice, err)
	}
	if v != kvmAPIVersion {
		return fmt.Errorf("%s speaks KVM API %d, want %d", KVMDevice, v, kvmAPIVersion)
	}
	if ok, why := sandbox.CPUVirtualization(); !ok {
		return fmt.Errorf("%s answers, but %s", KVMDevice, why)
	}
	return nil
}
