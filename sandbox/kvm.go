package sandbox

import (
	"os"
	"strings"
)

// CPUVirtualization reports whether the CPU advertises hardware
// virtualisation (the vmx or svm flag of /proc/cpuinfo), which KVM needs to
// run a VM. A nested guest can expose /dev/kvm and answer its API calls
// without it (this project's CI machine does): KVM_CREATE_VM then succeeds
// but no VM ever runs, so the VM providers check the flag too.
func CPUVirtualization() (bool, string) {
	b, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		return false, "cannot read /proc/cpuinfo: " + err.Error()
	}
	for _, line := range strings.Split(string(b), "\n") {
		if !strings.HasPrefix(line, "flags") {
			continue
		}
		for _, f := range strings.Fields(line) {
			if f == "vmx" || f == "svm" {
				return true, "CPU flag " + f
			}
		}
		break
	}
	return false, "the CPU has no vmx/svm flag (nested virtualisation is off), so KVM cannot run a VM"
}
