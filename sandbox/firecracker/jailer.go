package firecracker

import (
	"errors"
	"fmt"
	"path/filepath"
	"strconv"
)

// ErrJailID is returned for a VM id the jailer would refuse.
var ErrJailID = errors.New("invalid jailer id")

// Jail describes one jailer invocation (docs/jailer.md of the contract).
type Jail struct {
	// Jailer and Firecracker are the binaries; the jailer copies
	// Firecracker into the jail and execs it.
	Jailer, Firecracker string
	// ID is the VM id: letters, digits and hyphens, at most 64 bytes.
	ID string
	// UID and GID are what Firecracker runs as.
	UID, GID int
	// ChrootBase is where jails are built; "/srv/jailer" when empty.
	ChrootBase string
	// NetNS is a network namespace handle to join (the egress proxy
	// namespace for a VM with a NIC); empty to stay in the jailer's.
	NetNS string
	// CgroupVersion is 1 or 2.
	CgroupVersion int
	// Cgroups are "<file>=<value>" settings, e.g. "memory.max=314572800".
	Cgroups []string
	// ResourceLimits are "<resource>=<value>" rlimits, e.g. "no-file=1024".
	ResourceLimits []string
	// FirecrackerArgs are passed to Firecracker after "--".
	FirecrackerArgs []string
}

// DefaultChrootBase is the jailer's default chroot base directory.
const DefaultChrootBase = "/srv/jailer"

// RootDir is the jail's root directory on the host:
// <chroot_base>/<exec_file_name>/<id>/root.
func (j Jail) RootDir() string {
	base := j.ChrootBase
	if base == "" {
		base = DefaultChrootBase
	}
	return filepath.Join(base, filepath.Base(j.Firecracker), j.ID, "root")
}

// Command returns the jailer's argument vector, argv[0] the jailer.
func (j Jail) Command() ([]string, error) {
	if err := checkJailID(j.ID); err != nil {
		return nil, err
	}
	if j.Jailer == "" || j.Firecracker == "" {
		return nil, errors.New("jailer: both the jailer and the firecracker binary are needed")
	}
	if !filepath.IsAbs(j.Firecracker) {
		return nil, fmt.Errorf("jailer: --exec-file %q must be an absolute path", j.Firecracker)
	}
	if j.UID < 0 || j.GID < 0 {
		return nil, fmt.Errorf("jailer: uid %d / gid %d must not be negative", j.UID, j.GID)
	}
	argv := []string{j.Jailer,
		"--id", j.ID,
		"--exec-file", j.Firecracker,
		"--uid", strconv.Itoa(j.UID),
		"--gid", strconv.Itoa(j.GID),
	}
	if j.CgroupVersion != 0 {
		if j.CgroupVersion != 1 && j.CgroupVersion != 2 {
			return nil, fmt.Errorf("jailer: cgroup version %d: want 1 or 2", j.CgroupVersion)
		}
		argv = append(argv, "--cgroup-version", strconv.Itoa(j.CgroupVersion))
	}
	for _, c := range j.Cgroups {
		argv = append(argv, "--cgroup", c)
	}
	if j.ChrootBase != "" {
		argv = append(argv, "--chroot-base-dir", j.ChrootBase)
	}
	if j.NetNS != "" {
		argv = append(argv, "--netns", j.NetNS)
	}
	for _, r := range j.ResourceLimits {
		argv = append(argv, "--resource-limit", r)
	}
	if len(j.FirecrackerArgs) > 0 {
		argv = append(argv, "--")
		argv = append(argv, j.FirecrackerArgs...)
	}
	return argv, nil
}

func checkJailID(id string) error {
	if id == "" || len(id) > 64 {
		return fmt.Errorf("%w: %q must be 1 to 64 bytes", ErrJailID, id)
	}
	for _, r := range id {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-') {
			return fmt.Errorf("%w: %q may contain only letters, digits and hyphens", ErrJailID, id)
		}
	}
	return nil
}
