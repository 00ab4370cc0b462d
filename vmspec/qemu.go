package vmspec

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/ccos-project/ccos/config"
)

// qemuMinMemMiB is the least memory QEMU microvm starts with: at 64 MiB it
// exits silently, 96 MiB works (measured, see DESIGN.md).
const qemuMinMemMiB = 96

// qemuBootArgs are the kernel parameters ccos adds for QEMU guests: a panic
// ends the guest at once (panic=-1) and a reboot is a triple fault
// (reboot=t), which -no-reboot turns into QEMU exiting. The rest shorten
// the boot, most of all under TCG (about 0.5 s of guest time here): the
// microvm machine has no PCI bus (pci=off) and one serial port
// (8250.nr_uarts=1); the TSC needs no watchdog or calibration checks
// (tsc=reliable, no_timer_check); the crypto self-tests are skipped
// (cryptomgr.notests), as the kernel's own build tested them.
var qemuBootArgs = []string{"quiet", "panic=-1", "reboot=t",
	"pci=off", "8250.nr_uarts=1", "tsc=reliable", "no_timer_check", "cryptomgr.notests"}

// QEMUCommand is a QEMU command line.
type QEMUCommand struct {
	// Argv is the full argument vector, Argv[0] the binary.
	Argv []string
}

// QEMUSteps is the ordered synthesis of the QEMU -M microvm command line.
func QEMUSteps() []Step[QEMUCommand] {
	return []Step[QEMUCommand]{
		requireMicroVM[QEMUCommand](),
		{Name: "machine", Run: qMachine},
		{Name: "sandbox", Run: qSandbox},
		{Name: "resources", Run: qResources},
		{Name: "boot", Run: qBoot},
		{Name: "rootfs", Run: qRootfs},
		{Name: "control-channel", Run: qControl},
		{Name: "network", Run: qNetwork},
		{Name: "monitor-and-console", Run: qMonitor},
	}
}

// QEMU synthesises the QEMU command line of cfg.
func QEMU(cfg *config.Config, h Host) ([]string, error) {
	c, err := Build(cfg, h, QEMUSteps())
	if err != nil {
		return nil, err
	}
	return c.Argv, nil
}

func (c *QEMUCommand) add(args ...string) { c.Argv = append(c.Argv, args...) }

func qMachine(in *Input, c *QEMUCommand) error {
	bin := in.Host.QEMUBinary
	if bin == "" {
		bin = "qemu-system-x86_64"
	}
	accel, cpu := in.Host.Accel, "host"
	switch accel {
	case "", "kvm":
		accel = "kvm"
	case "tcg":
		cpu = "max"
		if in.Host.TBSizeMiB > 0 {
			accel += ",tb-size=" + strconv.Itoa(in.Host.TBSizeMiB)
		}
	default:
		return fmt.Errorf("accelerator %q: want kvm or tcg", accel)
	}
	machine := "microvm,x-option-roms=off,isa-serial=on,rtc=on"
	if in.Host.MemoryBackend != "" {
		machine += ",memory-backend=ram0"
	}
	c.add(bin,
		"-M", machine,
		"-accel", accel, "-cpu", cpu,
		"-nodefaults", "-no-user-config", "-nographic", "-no-reboot")
	return nil
}

// qSandbox turns on QEMU's own seccomp filter: no obsolete system calls, no
// privilege changes, no new processes, no scheduler or resource changes.
func qSandbox(_ *Input, c *QEMUCommand) error {
	c.add("-sandbox", "on,obsolete=deny,elevateprivileges=deny,spawn=deny,resourcecontrol=deny")
	return nil
}

func qResources(in *Input, c *QEMUCommand) error {
	r := in.Config.MicroVM.Resources
	if r.MemMB < qemuMinMemMiB {
		return fmt.Errorf("%w: QEMU microvm needs at least %d MiB, :microvm :resources :mem_mb is %d", ErrTooLittleMemory, qemuMinMemMiB, r.MemMB)
	}
	if b := in.Host.MemoryBackend; b != "" {
		// The guest's RAM is this file: shared for a snapshot template,
		// private (copy on write) for its clones.
		share := "off"
		if in.Host.MemoryShared {
			share = "on"
		}
		c.add("-object", fmt.Sprintf("memory-backend-file,id=ram0,mem-path=%s,size=%dM,share=%s", qemuOptValue(b), r.MemMB, share))
	}
	c.add("-m", strconv.Itoa(r.MemMB), "-smp", strconv.Itoa(r.VCPUs))
	return nil
}

func qBoot(in *Input, c *QEMUCommand) error {
	img, err := in.Host.Image(in.Config)
	if err != nil {
		return err
	}
	user, err := userBootArgs(in.Config.MicroVM.Kernel.Cmdline)
	if err != nil {
		return err
	}
	var args []string
	if !hasParam(user, "console") {
		args = append(args, "console=ttyS0")
	}
	args = append(args, qemuBootArgs...)
	if in.Host.TSCKHz > 0 {
		args = append(args, "tsc_early_khz="+strconv.Itoa(in.Host.TSCKHz))
	}
	args = append(args, "root=/dev/vda", "ro", "ccos.control=virtio-serial:"+ControlSerialName)
	if in.Host.WorkdirMiB > 0 {
		args = append(args, "ccos.workdir_mb="+strconv.Itoa(in.Host.WorkdirMiB))
	}
	if in.Config.MicroVM.Devices.NIC.Enabled {
		args = append(args, "ccos.net="+GuestNetAddr, "ccos.proxy="+ProxyListen)
	}
	if in.Host.Hold {
		args = append(args, "ccos.hold=1")
	}
	args = append(args, user...)
	c.add("-kernel", img.Kernel, "-initrd", img.Initrd, "-append", strings.Join(args, " "))
	return nil
}

func qRootfs(in *Input, c *QEMUCommand) error {
	img, err := in.Host.Image(in.Config)
	if err != nil {
		return err
	}
	c.add("-drive", "id=rootfs,if=none,format=raw,readonly=on,file="+qemuOptValue(img.Rootfs),
		"-device", "virtio-blk-device,drive=rootfs")
	if in.Host.CapabilitiesImage != "" {
		c.add("-drive", "id=capabilities,if=none,format=raw,readonly=on,file="+qemuOptValue(in.Host.CapabilitiesImage),
			"-device", "virtio-blk-device,drive=capabilities")
	}
	return nil
}

// qControl connects the guest's "ctl" virtio-serial port to a Unix socket
// the host listens on (server=off: QEMU connects, so the guest never reads
// EOF before the host is there; reconnect=1: when the connection breaks,
// QEMU connects again after a second, and the control link resumes).
func qControl(in *Input, c *QEMUCommand) error {
	if err := checkSocket("control socket", in.Paths.ControlSocket); err != nil {
		return err
	}
	c.add("-device", "virtio-serial-device",
		"-chardev", "socket,id=c0,server=off,reconnect=1,path="+qemuOptValue(in.Paths.ControlSocket),
		"-device", "virtserialport,chardev=c0,name="+ControlSerialName)
	return nil
}

func qNetwork(in *Input, c *QEMUCommand) error {
	nic := in.Config.MicroVM.Devices.NIC
	if !nic.Enabled {
		return nil
	}
	if nic.ProxyNS == nil || *nic.ProxyNS == "" {
		return fmt.Errorf("%w: :microvm :devices :nic is enabled without :proxy_ns", ErrNoProxyNS)
	}
	c.add("-netdev", "tap,id=n0,ifname="+TapName(in.Name)+",script=no,downscript=no",
		"-device", "virtio-net-device,netdev=n0,mac="+GuestMAC(in.Name))
	return nil
}

func qMonitor(in *Input, c *QEMUCommand) error {
	if err := checkSocket("QMP socket", in.Paths.QMPSocket); err != nil {
		return err
	}
	c.add("-qmp", "unix:"+qemuOptValue(in.Paths.QMPSocket)+",server=on,wait=off",
		"-serial", "file:"+in.Paths.SerialLog)
	if in.Host.Incoming != "" {
		c.add("-incoming", in.Host.Incoming)
	}
	return nil
}

// qemuOptValue escapes a value inside a QEMU option list, where a comma is
// written twice.
func qemuOptValue(s string) string { return strings.ReplaceAll(s, ",", ",,") }
