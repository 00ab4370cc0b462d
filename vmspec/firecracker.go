package vmspec

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/ccos-project/ccos/config"
	"github.com/ccos-project/ccos/sandbox/firecracker/fcapi"
)

// firecrackerBootArgs are the kernel parameters ccos adds for Firecracker
// guests: a panic reboots, and a reboot ends the Firecracker process
// (reboot=k), so a crashed guest never lingers; Firecracker's machine has
// no PCI bus. Firecracker itself appends "root=/dev/vda ro" for the
// read-only root drive.
var firecrackerBootArgs = []string{"reboot=k", "panic=1", "pci=off"}

// FirecrackerSteps is the ordered synthesis of a Firecracker --config-file
// document.
func FirecrackerSteps() []Step[fcapi.VMConfig] {
	return []Step[fcapi.VMConfig]{
		requireMicroVM[fcapi.VMConfig](),
		{Name: "boot-source", Run: fcBootSource},
		{Name: "drives", Run: fcDrives},
		{Name: "machine-config", Run: fcMachine},
		{Name: "network-interfaces", Run: fcNetwork},
		{Name: "vsock", Run: fcVsock},
		{Name: "logger", Run: fcLogger},
		{Name: "metrics", Run: fcMetrics},
		{Name: "entropy", Run: fcEntropy},
	}
}

// Firecracker synthesises the Firecracker --config-file document of cfg.
func Firecracker(cfg *config.Config, h Host) (*fcapi.VMConfig, error) {
	return Build(cfg, h, FirecrackerSteps())
}

func fcBootSource(in *Input, doc *fcapi.VMConfig) error {
	img, err := in.Host.Image(in.Config)
	if err != nil {
		return err
	}
	user, err := userBootArgs(in.Config.MicroVM.Kernel.Cmdline)
	if err != nil {
		return err
	}
	args := append(user, firecrackerBootArgs...)
	args = append(args, "ccos.control=vsock:"+strconv.Itoa(ControlPort))
	doc.BootSource = fcapi.BootSource{
		KernelImagePath: img.Kernel,
		InitrdPath:      img.Initrd,
		BootArgs:        strings.Join(args, " "),
	}
	return nil
}

func fcDrives(in *Input, doc *fcapi.VMConfig) error {
	img, err := in.Host.Image(in.Config)
	if err != nil {
		return err
	}
	doc.Drives = []fcapi.Drive{{DriveID: "rootfs", PathOnHost: img.Rootfs, IsRootDevice: true, IsReadOnly: true}}
	if in.Host.CapabilitiesImage != "" {
		doc.Drives = append(doc.Drives, fcapi.Drive{DriveID: "capabilities", PathOnHost: in.Host.CapabilitiesImage, IsReadOnly: true})
	}
	return nil
}

func fcMachine(in *Input, doc *fcapi.VMConfig) error {
	r := in.Config.MicroVM.Resources
	doc.MachineConfig = fcapi.MachineConfiguration{VCPUCount: r.VCPUs, MemSizeMiB: r.MemMB, SMT: false}
	return nil
}

func fcNetwork(in *Input, doc *fcapi.VMConfig) error {
	nic := in.Config.MicroVM.Devices.NIC
	if !nic.Enabled {
		return nil
	}
	if nic.ProxyNS == nil || *nic.ProxyNS == "" {
		return fmt.Errorf("%w: :microvm :devices :nic is enabled without :proxy_ns; a guest NIC may only be bridged into the egress proxy namespace", ErrNoProxyNS)
	}
	doc.NetworkInterfaces = []fcapi.NetworkInterface{{IfaceID: "eth0", HostDevName: TapName(in.Name), GuestMAC: GuestMAC(in.Name)}}
	return nil
}

func fcVsock(in *Input, doc *fcapi.VMConfig) error {
	v := in.Config.MicroVM.Devices.Vsock
	if !v.Enabled || v.CID == nil {
		return fmt.Errorf("%w: the Firecracker guest talks to the host over vsock: set :microvm :devices :vsock {:enabled true :cid 3}", ErrNoControlChannel)
	}
	if *v.CID < 3 || *v.CID > 1<<32-2 {
		return fmt.Errorf("%w: :microvm :devices :vsock :cid %d is not a guest CID (3 ... 4294967294)", ErrNoControlChannel, *v.CID)
	}
	if err := checkSocket("api socket", in.Paths.APISocket); err != nil {
		return err
	}
	if err := checkSocket("vsock uds_path", in.Paths.VsockUDS+"_"+strconv.Itoa(ControlPort)); err != nil {
		return err
	}
	doc.Vsock = &fcapi.Vsock{GuestCID: uint32(*v.CID), UDSPath: in.Paths.VsockUDS}
	return nil
}

func fcLogger(in *Input, doc *fcapi.VMConfig) error {
	doc.Logger = &fcapi.Logger{LogPath: in.Paths.Log, Level: "Warning", ShowLevel: true}
	return nil
}

func fcMetrics(in *Input, doc *fcapi.VMConfig) error {
	doc.Metrics = &fcapi.Metrics{MetricsPath: in.Paths.Metrics}
	return nil
}

func fcEntropy(_ *Input, doc *fcapi.VMConfig) error {
	doc.Entropy = &fcapi.EntropyDevice{}
	return nil
}
