package vmspec_test

import (
	"fmt"
	"path/filepath"

	"github.com/ccos-project/ccos/config"
	"github.com/ccos-project/ccos/vmspec"
)

// Synthesise the Firecracker --config-file document of the example
// networked microVM config.
func ExampleFirecracker() {
	res, err := config.LoadFile(filepath.Join("..", "examples", "microvm-networked.rtfs"), config.RTFSEvaluator{})
	if err != nil || res.Diags.HasErrors() {
		fmt.Println(err, res.Diags)
		return
	}
	vm, err := vmspec.Firecracker(res.Config, vmspec.Host{BaseDir: "/srv/ccos", Instance: "blue"})
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(vm.BootSource.BootArgs)
	fmt.Println(vm.Drives[0].DriveID, vm.Drives[0].IsReadOnly)
	fmt.Println(vm.MachineConfig.VCPUCount, vm.MachineConfig.MemSizeMiB, vm.MachineConfig.SMT)
	fmt.Println(vm.NetworkInterfaces[0].HostDevName)
	fmt.Println(vm.Vsock.GuestCID, vm.Vsock.UDSPath)
	fmt.Println(vm.Balloon == nil)
	// Output:
	// console=none reboot=k panic=1 pci=off ccos.control=vsock:1024
	// rootfs true
	// 2 512 false
	// ccos4141820a1e
	// 7 /run/ccos/vm/agent-ops-vm-e2faa973-blue/vsock.sock
	// true
}
