//go:build linux

package gvisor

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/ccos-project/ccos/sandbox"
)

// Identity and fixed limits of the guest inside the sandbox.
const (
	guestID     = 1000
	guestNoFile = 256
	hostname    = "ccos-sandbox"
)

// rootEntries are the mount points in the otherwise empty root; "ccos" is
// a file, the rest directories. /sys and /tmp exist so that runsc mounts
// over them instead of making synthetic directories.
var rootEntries = []string{"proc", "dev", "sys", "tmp", "work", "capabilities"}

// bundleConfig is what one bundle is made of.
type bundleConfig struct {
	binary       string // host path bound at /ccos
	capabilities string // host dir bound at /capabilities, or ""
	cgroupsPath  string
	lim          sandbox.Limits
}

// writeBundle makes dir into an OCI bundle: dir/rootfs and dir/config.json.
func writeBundle(dir string, bc bundleConfig) error {
	rootfs := filepath.Join(dir, "rootfs")
	if err := os.Mkdir(rootfs, 0o755); err != nil {
		return err
	}
	for _, e := range rootEntries {
		if err := os.Mkdir(filepath.Join(rootfs, e), 0o555); err != nil {
			return err
		}
	}
	if err := os.WriteFile(filepath.Join(rootfs, "ccos"), nil, 0o555); err != nil {
		return err
	}
	if err := os.Chmod(rootfs, 0o555); err != nil {
		return err
	}
	b, err := json.MarshalIndent(ociSpec(bc), "", "\t")
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, "config.json"), b, 0o600)
}

// ociSpec is the runtime spec of one sandbox.
func ociSpec(bc bundleConfig) *specs.Spec {
	noCaps := []string{}
	mem, pids := bc.lim.MemoryBytes, int64(bc.lim.PIDs)
	quota, period := int64(bc.lim.CPUPercent)*1000, uint64(100000)
	return &specs.Spec{
		Version:  specs.Version,
		Hostname: hostname,
		Root:     &specs.Root{Path: "rootfs", Readonly: true},
		Process: &specs.Process{
			User:            specs.User{UID: guestID, GID: guestID, AdditionalGids: []uint32{}},
			Args:            []string{"/ccos", "guest"},
			Env:             []string{},
			Cwd:             "/work",
			NoNewPrivileges: true,
			Capabilities: &specs.LinuxCapabilities{
				Bounding: noCaps, Effective: noCaps, Inheritable: noCaps, Permitted: noCaps, Ambient: noCaps,
			},
			Rlimits: []specs.POSIXRlimit{
				{Type: "RLIMIT_NOFILE", Hard: guestNoFile, Soft: guestNoFile},
				{Type: "RLIMIT_CORE", Hard: 0, Soft: 0},
				{Type: "RLIMIT_FSIZE", Hard: uint64(bc.lim.WorkdirBytes), Soft: uint64(bc.lim.WorkdirBytes)},
			},
		},
		Mounts: mounts(bc),
		Linux: &specs.Linux{
			CgroupsPath: bc.cgroupsPath,
			Namespaces: []specs.LinuxNamespace{
				{Type: specs.PIDNamespace}, {Type: specs.IPCNamespace}, {Type: specs.UTSNamespace},
				{Type: specs.MountNamespace}, {Type: specs.NetworkNamespace},
			},
			// runsc finds the cgroup made by the provider and leaves it as
			// set; these repeat its limits for readers of the bundle.
			Resources: &specs.LinuxResources{
				Memory: &specs.LinuxMemory{Limit: &mem, Swap: &mem},
				Pids:   &specs.LinuxPids{Limit: pids + pidsOverhead},
				CPU:    &specs.LinuxCPU{Quota: &quota, Period: &period},
			},
			MaskedPaths:   []string{},
			ReadonlyPaths: []string{},
		},
	}
}

// mounts are the sandbox's mounts over the read-only root.
func mounts(bc bundleConfig) []specs.Mount {
	id := strconv.Itoa(guestID)
	m := []specs.Mount{
		{Destination: "/proc", Type: "proc", Source: "proc", Options: []string{"nosuid", "nodev", "noexec"}},
		{Destination: "/sys", Type: "sysfs", Source: "sysfs", Options: []string{"ro", "nosuid", "nodev", "noexec"}},
		// An empty read-only /tmp: runsc would otherwise put a writable,
		// unsized tmpfs there.
		{Destination: "/tmp", Type: "tmpfs", Source: "tmpfs", Options: []string{"ro", "nosuid", "nodev", "noexec", "size=4096", "mode=0555"}},
		{Destination: "/work", Type: "tmpfs", Source: "tmpfs", Options: []string{
			"nosuid", "nodev", "noexec", "mode=0700", "uid=" + id, "gid=" + id,
			fmt.Sprintf("size=%d", bc.lim.WorkdirBytes)}},
		{Destination: "/ccos", Type: "bind", Source: bc.binary, Options: []string{"bind", "ro", "nosuid", "nodev"}},
	}
	if bc.capabilities != "" {
		m = append(m, specs.Mount{Destination: "/capabilities", Type: "bind", Source: bc.capabilities,
			Options: []string{"rbind", "ro", "nosuid", "nodev", "noexec"}})
	}
	return m
}
