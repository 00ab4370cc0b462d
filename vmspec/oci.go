package vmspec

import (
	"errors"
	"fmt"
	"strconv"

	"github.com/ccos-project/ccos/config"
	"github.com/ccos-project/ccos/sandbox"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// ErrNoCCOSBinary: the OCI bundle needs the host path of the ccos binary.
var ErrNoCCOSBinary = errors.New("no ccos binary to bind-mount")

// OCI paths inside the container.
const (
	OCIBinary       = "/ccos"
	OCICapabilities = "/capabilities"
	OCIWorkdir      = "/work"
)

// nobody is the unprivileged user the guest runs as.
const nobody = 65534

// OCISteps is the ordered synthesis of an OCI runtime config.json.
func OCISteps() []Step[specs.Spec] {
	return []Step[specs.Spec]{
		{Name: "process", Run: ociProcess},
		{Name: "root", Run: ociRoot},
		{Name: "mounts", Run: ociMounts},
		{Name: "namespaces", Run: ociNamespaces},
		{Name: "resources", Run: ociResources},
		{Name: "hardening", Run: ociHardening},
	}
}

// OCI synthesises the OCI runtime config.json of cfg. The bundle's rootfs
// directory is "rootfs"; it needs only the mount points (/proc, /dev, /tmp,
// /work, /ccos, /capabilities).
func OCI(cfg *config.Config, h Host) (*specs.Spec, error) {
	return Build(cfg, h, OCISteps())
}

func ociProcess(in *Input, s *specs.Spec) error {
	s.Version = specs.Version
	s.Hostname = "ccos-guest"
	s.Process = &specs.Process{
		User:            specs.User{UID: nobody, GID: nobody},
		Args:            []string{OCIBinary, "guest"},
		Env:             []string{"PATH=/", "CCOS_AGENT_ID=" + in.Config.AgentID},
		Cwd:             OCIWorkdir,
		NoNewPrivileges: true,
		// Every capability set empty: the guest holds none.
		Capabilities: &specs.LinuxCapabilities{},
		Rlimits: []specs.POSIXRlimit{
			{Type: "RLIMIT_NOFILE", Hard: 1024, Soft: 1024},
			{Type: "RLIMIT_CORE", Hard: 0, Soft: 0},
			// Not RLIMIT_AS: a Go program reserves more than 1 GiB of
			// address space at start; memory is capped by the cgroup.
		},
	}
	return nil
}

func ociRoot(_ *Input, s *specs.Spec) error {
	s.Root = &specs.Root{Path: "rootfs", Readonly: true}
	return nil
}

func ociMounts(in *Input, s *specs.Spec) error {
	if in.Host.CCOSBinary == "" {
		return fmt.Errorf("%w: give the host path of the static ccos binary (--ccos-binary)", ErrNoCCOSBinary)
	}
	work := in.Host.WorkdirMiB
	if work <= 0 {
		work = int(sandbox.DefaultLimits().WorkdirBytes >> 20)
	}
	ro := []string{"rbind", "ro", "nosuid", "nodev"}
	s.Mounts = []specs.Mount{
		{Destination: "/proc", Type: "proc", Source: "proc", Options: []string{"nosuid", "noexec", "nodev"}},
		{Destination: "/dev", Type: "tmpfs", Source: "tmpfs", Options: []string{"nosuid", "noexec", "strictatime", "mode=755", "size=64k"}},
		{Destination: "/tmp", Type: "tmpfs", Source: "tmpfs", Options: []string{"nosuid", "nodev", "noexec", "mode=1777", "size=16m"}},
		{Destination: OCIWorkdir, Type: "tmpfs", Source: "tmpfs", Options: []string{"nosuid", "nodev", "noexec", "mode=1777", "size=" + strconv.Itoa(work) + "m"}},
		{Destination: OCIBinary, Type: "bind", Source: in.Host.CCOSBinary, Options: ro},
	}
	if in.Host.CapabilitiesDir != "" {
		s.Mounts = append(s.Mounts, specs.Mount{Destination: OCICapabilities, Type: "bind", Source: in.Host.CapabilitiesDir, Options: []string{"rbind", "ro", "nosuid", "nodev", "noexec"}})
	}
	return nil
}

// ociNamespaces gives the container new namespaces of every kind but user;
// the network namespace has no path, so it is new and empty (loopback only):
// a guest reaches nothing but its control channel.
func ociNamespaces(_ *Input, s *specs.Spec) error {
	if s.Linux == nil {
		s.Linux = &specs.Linux{}
	}
	for _, ns := range []specs.LinuxNamespaceType{specs.PIDNamespace, specs.NetworkNamespace, specs.IPCNamespace, specs.UTSNamespace, specs.MountNamespace, specs.CgroupNamespace} {
		s.Linux.Namespaces = append(s.Linux.Namespaces, specs.LinuxNamespace{Type: ns})
	}
	return nil
}

func ociResources(in *Input, s *specs.Spec) error {
	lim := sandbox.DefaultLimits()
	mem := lim.MemoryBytes
	if vm := in.Config.MicroVM; vm != nil && vm.Resources.MemMB > 0 {
		mem = int64(vm.Resources.MemMB) << 20
	}
	pids := int64(lim.PIDs)
	period := uint64(100000)
	quota := int64(period) * int64(lim.CPUPercent) / 100
	if vm := in.Config.MicroVM; vm != nil && vm.Resources.VCPUs > 0 {
		quota = int64(period) * int64(vm.Resources.VCPUs)
	}
	swap := mem // memory+swap equal to memory: no swap
	s.Linux.Resources = &specs.LinuxResources{
		Devices: []specs.LinuxDeviceCgroup{{Allow: false, Access: "rwm"}},
		Memory:  &specs.LinuxMemory{Limit: &mem, Swap: &swap},
		Pids:    &specs.LinuxPids{Limit: pids},
		CPU:     &specs.LinuxCPU{Period: &period, Quota: &quota},
	}
	return nil
}

func ociHardening(_ *Input, s *specs.Spec) error {
	s.Linux.MaskedPaths = []string{"/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
		"/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/proc/scsi", "/sys/firmware"}
	s.Linux.ReadonlyPaths = []string{"/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"}
	return nil
}
