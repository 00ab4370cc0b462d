package process

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"sync"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/ccos-project/ccos/sandbox"
	"github.com/ccos-project/ccos/sandbox/cgroup"
)

// Identity inside the user namespace. When the host runs as root, uids and
// gids 0..idRange-1 of the namespace map to a block of unused high host ids
// chosen per sandbox, so that even namespace root is nobody on the host; the
// guest then runs as guestID.
const (
	idRange  = 65536
	idBase   = 1 << 30 // host ids from 2^30 up are far above any real user
	idBlocks = 4096    // blocks of idRange host ids to choose from
	guestID  = 1000
)

// How the child is started.
const (
	selfExe      = "/proc/self/exe"
	childArgv0   = "ccos-sandbox"
	guestNoFile  = 256  // RLIMIT_NOFILE of the guest
	setupLimit   = 4096 // bytes of setup report read from the child
	namespaceSet = unix.CLONE_NEWUSER | unix.CLONE_NEWNS | unix.CLONE_NEWPID |
		unix.CLONE_NEWNET | unix.CLONE_NEWUTS | unix.CLONE_NEWIPC
)

// Available reports whether process sandboxes can run here and, if not,
// exactly what is missing.
func (*Provider) Available() (bool, string) {
	layout, err := checkHost()
	if err != nil {
		return false, err.Error()
	}
	return true, fmt.Sprintf("user, mount, pid, net, uts and ipc namespaces; read-only root; seccomp (x86_64); cgroup v%d memory, pids and cpu", layout.Version)
}

func checkHost() (*cgroup.Layout, error) {
	if runtime.GOARCH != "amd64" {
		return nil, fmt.Errorf("the seccomp filter is written for x86_64 only (this is %s)", runtime.GOARCH)
	}
	f, err := os.Open(selfExe)
	if err != nil {
		return nil, fmt.Errorf("%s is unreadable, so the binary cannot re-execute itself as the sandbox init: %w", selfExe, err)
	}
	f.Close()
	if err := checkUserNamespaces(); err != nil {
		return nil, err
	}
	if _, _, errno := unix.RawSyscall(unix.SYS_PRCTL, unix.PR_GET_SECCOMP, 0, 0); errno != 0 {
		return nil, fmt.Errorf("seccomp is not available in this kernel: %w", errno)
	}
	layout, err := cgroup.Find()
	if err != nil {
		return nil, err
	}
	return layout, layout.Check()
}

func checkUserNamespaces() error {
	if _, err := os.Stat("/proc/self/ns/user"); err != nil {
		return fmt.Errorf("no user namespaces in this kernel: %w", err)
	}
	if v := readSysctl("user/max_user_namespaces"); v == "0" {
		return errors.New("user namespaces are disabled (sysctl user.max_user_namespaces = 0)")
	}
	if os.Geteuid() != 0 {
		if v := readSysctl("kernel/unprivileged_userns_clone"); v == "0" {
			return errors.New("unprivileged user namespaces are disabled (sysctl kernel.unprivileged_userns_clone = 0)")
		}
		if v := readSysctl("kernel/apparmor_restrict_unprivileged_userns"); v == "1" {
			return errors.New("AppArmor restricts unprivileged user namespaces (sysctl kernel.apparmor_restrict_unprivileged_userns = 1)")
		}
	}
	return nil
}

func readSysctl(name string) string {
	b, err := os.ReadFile("/proc/sys/" + name)
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}

// starter holds what the host-side steps build; on failure undo releases it.
type starter struct {
	ctx    context.Context
	spec   sandbox.Spec
	lim    sandbox.Limits
	fail   string // Provider.failStep, passed to the child
	layout *cgroup.Layout
	cg     *cgroup.Group
	cmd    *exec.Cmd
	// host and child ends of the control and setup sockets and stderr pipe
	control, childControl *os.File
	setup, childSetup     *os.File
	exeTree, capsTree     *os.File // detached mounts for the child (root hosts)
	stderr, childStderr   *os.File
}

// hostStep is one named step of Start.
type hostStep struct {
	name string
	run  func(*starter) error
}

// hostSteps is Start, in order. The child runs none of its setup before
// release-child: it waits on the setup socket until it sits in its cgroups.
var hostSteps = []hostStep{
	{"check-spec", (*starter).checkSpec},
	{"find-cgroups", (*starter).findCgroups},
	{"create-channels", (*starter).createChannels},
	{"clone-mounts", (*starter).cloneMounts},
	{"start-child", (*starter).startChild},
	// The cgroup is made while the child's runtime starts, in parallel.
	{"create-cgroup", (*starter).createCgroup},
	{"attach-cgroup", (*starter).attachCgroup},
	{"release-child", (*starter).releaseChild},
}

// Start starts a guest in a new process sandbox. Errors of the host-side
// steps are returned here, naming the step; a failure inside the child is
// reported by Wait as an ExitSetup error naming the child's step.
func (p *Provider) Start(ctx context.Context, spec sandbox.Spec) (sandbox.Sandbox, error) {
	st := &starter{ctx: ctx, spec: spec, fail: p.failStep}
	for _, step := range hostSteps {
		if err := step.run(st); err != nil {
			st.undo()
			return nil, fmt.Errorf("process sandbox %q: %s: %w", spec.ID, step.name, err)
		}
	}
	return st.watch(), nil
}

func (st *starter) checkSpec() error {
	if err := st.ctx.Err(); err != nil {
		return err
	}
	st.lim = st.spec.Limits.WithDefaults()
	if d := st.spec.CapabilitiesDir; d != "" {
		fi, err := os.Stat(d)
		if err != nil {
			return fmt.Errorf("capabilities dir: %w", err)
		}
		if !fi.IsDir() {
			return fmt.Errorf("capabilities dir %s is not a directory", d)
		}
		// A root host maps the sandbox's ids to unused host ids: only
		// "other" permissions apply to them.
		if os.Geteuid() == 0 && fi.Mode().Perm()&0o005 != 0o005 {
			return fmt.Errorf("capabilities dir %s has mode %v; the sandbox sees it as an unrelated user and needs o+rx", d, fi.Mode().Perm())
		}
	}
	return nil
}

// cachedLayout is this process's cgroup layout, read once: mountinfo does
// not change under a running ccos, and parsing it costs about a tenth of a
// millisecond per start.
var cachedLayout = sync.OnceValues(cgroup.Find)

func (st *starter) findCgroups() (err error) {
	st.layout, err = cachedLayout()
	if err != nil {
		return err
	}
	return st.layout.Check()
}

func (st *starter) createCgroup() (err error) {
	st.cg, err = cgroup.New(st.layout, cgroupName(st.spec.ID), cgroup.Limits{MemoryBytes: st.lim.MemoryBytes, PIDs: st.lim.PIDs, CPUPercent: st.lim.CPUPercent})
	return err
}

// cgroupName is "ccos-<id>-<random>", the id reduced to safe characters.
func cgroupName(id string) string {
	clean := strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' || r == '.' {
			return r
		}
		return '_'
	}, id)
	if len(clean) > 48 {
		clean = clean[:48]
	}
	var b [6]byte
	_, _ = rand.Read(b[:])
	return "ccos-" + clean + "-" + hex.EncodeToString(b[:])
}

func (st *starter) createChannels() error {
	var err error
	if st.control, st.childControl, err = socketPair("control"); err != nil {
		return err
	}
	if st.setup, st.childSetup, err = socketPair("setup"); err != nil {
		return err
	}
	st.stderr, st.childStderr, err = os.Pipe()
	return err
}

// socketPair returns the host end (non-blocking, so deadlines work on it)
// and the child end of a new stream socket pair.
func socketPair(name string) (host, child *os.File, err error) {
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, nil, fmt.Errorf("%s socketpair: %w", name, err)
	}
	if err := unix.SetNonblock(fds[0], true); err != nil {
		unix.Close(fds[0])
		unix.Close(fds[1])
		return nil, nil, err
	}
	return os.NewFile(uintptr(fds[0]), name), os.NewFile(uintptr(fds[1]), name+"-child"), nil
}

func (st *starter) startChild() error {
	cfg := childConfig{
		WorkdirBytes:    st.lim.WorkdirBytes,
		CapabilitiesDir: st.spec.CapabilitiesDir,
		UID:             guestID,
		GID:             guestID,
		DropUID:         os.Geteuid() == 0,
		NoFile:          guestNoFile,
		FileSize:        uint64(st.lim.WorkdirBytes),
		FailStep:        st.fail,
	}
	// ExtraFiles[i] becomes fd 3+i; a nil entry is closed in the child.
	extra := []*os.File{st.childControl, st.childSetup, st.exeTree, st.capsTree}
	if st.exeTree != nil {
		cfg.ExeTreeFD = 5
	}
	if st.capsTree != nil {
		cfg.CapsTreeFD = 6
	}
	arg, err := json.Marshal(cfg)
	if err != nil {
		return err
	}
	st.cmd = &exec.Cmd{
		Path:        selfExe,
		Args:        []string{childArgv0, initMarker, string(arg)},
		Env:         []string{},
		Stderr:      st.childStderr,
		ExtraFiles:  extra,
		SysProcAttr: childAttr(),
	}
	if err := st.cmd.Start(); err != nil {
		return err
	}
	// The child holds its own copies now.
	st.childControl.Close()
	st.childSetup.Close()
	st.childStderr.Close()
	for _, f := range []*os.File{st.exeTree, st.capsTree} {
		if f != nil {
			f.Close()
		}
	}
	return nil
}

// cloneMounts makes, as root on the host, detached read-only mounts of the
// binary and of CapabilitiesDir for the child to attach in its root: the
// child's namespace root is an unrelated host uid that may not even reach
// their paths. An unprivileged host's child opens them itself.
func (st *starter) cloneMounts() (err error) {
	if os.Geteuid() != 0 {
		return nil
	}
	if st.exeTree, err = detachedMount(selfExe, false, unix.MOUNT_ATTR_RDONLY|unix.MOUNT_ATTR_NOSUID|unix.MOUNT_ATTR_NODEV); err != nil {
		return fmt.Errorf("binary: %w", err)
	}
	if d := st.spec.CapabilitiesDir; d != "" {
		if st.capsTree, err = detachedMount(d, true, unix.MOUNT_ATTR_RDONLY|unix.MOUNT_ATTR_NOSUID|unix.MOUNT_ATTR_NODEV|unix.MOUNT_ATTR_NOEXEC); err != nil {
			return fmt.Errorf("capabilities dir: %w", err)
		}
	}
	return nil
}

// detachedMount clones the mount of path (recursively for a directory tree)
// into a new detached mount with the given attributes.
func detachedMount(path string, recursive bool, attrs uint64) (*os.File, error) {
	flags := uint(unix.OPEN_TREE_CLONE | unix.OPEN_TREE_CLOEXEC)
	setFlags := uint(unix.AT_EMPTY_PATH)
	if recursive {
		flags |= unix.AT_RECURSIVE
		setFlags |= unix.AT_RECURSIVE
	}
	fd, err := unix.OpenTree(unix.AT_FDCWD, path, flags)
	if err != nil {
		return nil, fmt.Errorf("open_tree %s: %w", path, err)
	}
	if err := unix.MountSetattr(fd, "", setFlags, &unix.MountAttr{Attr_set: attrs}); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("mount_setattr %s: %w", path, err)
	}
	return os.NewFile(uintptr(fd), path), nil
}

// childAttr puts the child into its new namespaces. As root, namespace ids
// 0..idRange-1 map to a random block of high host ids, and the child starts
// as namespace root (Credential 0 with NoSetGroups: without it the child
// would run as the overflow uid and lose its capabilities on exec). As an
// ordinary user only the user's own ids can be mapped, to namespace root.
func childAttr() *syscall.SysProcAttr {
	attr := &syscall.SysProcAttr{
		Cloneflags: namespaceSet,
		Credential: &syscall.Credential{Uid: 0, Gid: 0, NoSetGroups: true},
		Pdeathsig:  syscall.SIGKILL,
		Setsid:     true,
	}
	if os.Geteuid() == 0 {
		// Root may allow setgroups in the namespace: the child then starts
		// with no supplementary groups (not even host root's).
		attr.Credential = &syscall.Credential{Uid: 0, Gid: 0, Groups: []uint32{}}
		base := idBase + int(randUint32()%idBlocks)*idRange
		attr.UidMappings = []syscall.SysProcIDMap{{ContainerID: 0, HostID: base, Size: idRange}}
		attr.GidMappings = []syscall.SysProcIDMap{{ContainerID: 0, HostID: base, Size: idRange}}
		attr.GidMappingsEnableSetgroups = true
	} else {
		attr.UidMappings = []syscall.SysProcIDMap{{ContainerID: 0, HostID: os.Geteuid(), Size: 1}}
		attr.GidMappings = []syscall.SysProcIDMap{{ContainerID: 0, HostID: os.Getegid(), Size: 1}}
	}
	return attr
}

func randUint32() uint32 {
	var b [4]byte
	_, _ = rand.Read(b[:])
	return binary.LittleEndian.Uint32(b[:])
}

func (st *starter) attachCgroup() error {
	return st.cg.Attach(st.cmd.Process.Pid)
}

// releaseChild lets the child go on. A child that has already ended (it
// failed before waiting) has closed its end; Wait then reports why.
func (st *starter) releaseChild() error {
	_, err := st.setup.Write([]byte{1})
	if errors.Is(err, syscall.EPIPE) || errors.Is(err, syscall.ECONNRESET) {
		return nil
	}
	return err
}

// undo releases whatever the steps built, after a failed step.
func (st *starter) undo() {
	if st.cmd != nil && st.cmd.Process != nil {
		_ = st.cmd.Process.Kill()
		_ = st.cmd.Wait()
	}
	for _, f := range []*os.File{st.control, st.childControl, st.setup, st.childSetup, st.stderr, st.childStderr, st.exeTree, st.capsTree} {
		if f != nil {
			f.Close()
		}
	}
	if st.cg != nil {
		_ = st.cg.Remove()
	}
}
