package process

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/ccos-project/ccos/sandbox"
)

// initMarker is argv[1] of a sandbox child; together with being pid 1 (of
// the new pid namespace) and holding fds 3 and 4, it tells InitIfChild that
// this process is a sandbox init and not an ordinary ccos command.
const initMarker = "__ccos-sandbox-init"

// Inherited descriptors of the child (os/exec ExtraFiles start at 3).
const (
	controlFD = 3
	setupFD   = 4
)

// Paths inside the sandbox.
const (
	stageDir      = "/tmp" // overmounted (in the child's own mount namespace) by the new root
	guestBinary   = "/ccos"
	workDir       = "/work"
	capsDir       = "/capabilities"
	guestHostname = "ccos-sandbox"
)

// childConfig is what the host tells the child, as JSON in argv[2].
type childConfig struct {
	WorkdirBytes    int64  `json:"workdir_bytes"`
	CapabilitiesDir string `json:"capabilities_dir,omitempty"`
	UID             int    `json:"uid"` // the unprivileged uid inside the user namespace
	GID             int    `json:"gid"`
	DropUID         bool   `json:"drop_uid"` // false when only uid 0 is mapped (unprivileged host user)
	NoFile          uint64 `json:"nofile"`
	FileSize        uint64 `json:"fsize"`
	FailStep        string `json:"fail_step,omitempty"` // tests: fail at this step
	// ExeTreeFD and CapsTreeFD are inherited detached mounts (open_tree) of
	// the binary and of CapabilitiesDir, made by a root host; 0 when absent.
	ExeTreeFD  int `json:"exe_tree_fd,omitempty"`
	CapsTreeFD int `json:"caps_tree_fd,omitempty"`
}

// child is the state the setup steps share.
type child struct {
	cfg    childConfig
	root   string   // the new root while it is being built (under stageDir)
	exeFD  int      // this binary: a detached mount, or an O_PATH descriptor
	capsFD int      // CapabilitiesDir, the same way; -1 for none
	setup  *os.File // the setup channel (fd 4)
	filter []unix.SockFilter
}

// childStep is one named step of the in-child setup.
type childStep struct {
	name string
	run  func(*child) error
}

// childSteps is the in-child setup, in order. Only pure computation comes
// before wait-for-host, which returns once the child is in its cgroups.
// Every step runs as root of the new user namespace (with its capabilities
// there) until drop-uid; the seccomp filter comes last because it forbids
// mount and pivot_root.
var childSteps = []childStep{
	{"assemble-seccomp", (*child).assembleSeccomp},
	{"wait-for-host", (*child).waitForHost},
	{"open-sources", (*child).openSources},
	{"make-mounts-private", (*child).makeMountsPrivate},
	{"mount-root-tmpfs", (*child).mountRootTmpfs},
	{"bind-binary", (*child).bindBinary},
	{"bind-devices", (*child).bindDevices},
	{"mount-proc", (*child).mountProc},
	{"mount-workdir", (*child).mountWorkdir},
	{"bind-capabilities", (*child).bindCapabilities},
	{"pivot-root", (*child).pivotRoot},
	{"remount-root-readonly", (*child).remountRootReadonly},
	{"set-hostname", (*child).setHostname},
	{"loopback-up", (*child).loopbackUp},
	{"set-rlimits", (*child).setRlimits},
	{"drop-bounding-set", (*child).dropBoundingSet},
	{"drop-uid", (*child).dropUID},
	{"clear-capabilities", (*child).clearCapabilities},
	{"seccomp", (*child).loadSeccomp},
	{"enter-workdir", (*child).enterWorkdir},
}

// InitIfChild runs the sandbox child when this process is one, and otherwise
// returns at once. Call it first thing in main (and in TestMain), after
// setting sandbox.GuestMain: in a child it applies every restriction, runs
// sandbox.GuestMain on the control connection and exits with its status,
// never returning.
func InitIfChild() {
	if len(os.Args) < 3 || os.Args[1] != initMarker || os.Getpid() != 1 {
		return
	}
	if _, err := unix.FcntlInt(uintptr(setupFD), unix.F_GETFD, 0); err != nil {
		return
	}
	os.Exit(runChild(os.Args[2]))
}

// Exit statuses of a child that never reached GuestMain.
const (
	exitSetupFailed = 125
	exitNoGuest     = 126
)

func runChild(arg string) int {
	// Per-thread state (capabilities, bounding set) is changed on this thread,
	// which then runs the guest.
	runtime.LockOSThread()
	c := &child{exeFD: -1, capsFD: -1, setup: os.NewFile(setupFD, "setup")}
	if sandbox.GuestMain == nil {
		c.fail("guest-main", errors.New("sandbox.GuestMain is nil: set it before calling InitIfChild"))
		return exitNoGuest
	}
	if err := json.Unmarshal([]byte(arg), &c.cfg); err != nil {
		c.fail("read-config", err)
		return exitSetupFailed
	}
	for _, s := range childSteps {
		if s.name == c.cfg.FailStep {
			c.fail(s.name, errors.New("failure injected by the test"))
			return exitSetupFailed
		}
		if err := s.run(c); err != nil {
			c.fail(s.name, err)
			return exitSetupFailed
		}
	}
	// The setup channel closes before guest code runs: nothing the guest
	// does can be taken for a setup report.
	if _, err := c.setup.Write([]byte("ok\n")); err != nil {
		return exitSetupFailed
	}
	c.setup.Close()
	return sandbox.GuestMain(os.NewFile(controlFD, "control"))
}

// fail reports the failed step to the host; the host turns it into an
// ExitSetup error naming the step.
func (c *child) fail(step string, err error) {
	fmt.Fprintf(c.setup, "fail %s: %v\n", step, err)
	c.setup.Close()
}

// waitForHost blocks until the host has put the child into its cgroups, so
// that no code of ours runs outside the limits.
func (c *child) waitForHost() error {
	var b [1]byte
	if _, err := io.ReadFull(c.setup, b[:]); err != nil {
		return fmt.Errorf("host did not release the child: %w", err)
	}
	return nil
}

// openSources gets hold of the binary and of CapabilitiesDir before the new
// root hides their paths. A root host passes them as detached mounts already
// made read-only (they may lie under directories the namespace cannot
// enter); an unprivileged host's child opens them by name, with the user's
// own rights. Not through /proc/self/exe: that link points into the host's
// mount namespace (it was inherited across clone), and the kernel refuses to
// bind from another namespace.
func (c *child) openSources() error {
	if c.cfg.ExeTreeFD > 0 {
		c.exeFD, c.capsFD = c.cfg.ExeTreeFD, -1
		if c.cfg.CapsTreeFD > 0 {
			c.capsFD = c.cfg.CapsTreeFD
		}
		return nil
	}
	exe, err := os.Readlink("/proc/self/exe")
	if err != nil {
		return err
	}
	if c.exeFD, err = unix.Open(exe, unix.O_PATH|unix.O_CLOEXEC, 0); err != nil {
		return fmt.Errorf("open own binary: %w", err)
	}
	var running, opened unix.Stat_t
	if err := unix.Stat("/proc/self/exe", &running); err != nil {
		return err
	}
	if err := unix.Fstat(c.exeFD, &opened); err != nil {
		return err
	}
	if running.Dev != opened.Dev || running.Ino != opened.Ino {
		return fmt.Errorf("%s is no longer the running binary (replaced while starting?)", exe)
	}
	if c.cfg.CapabilitiesDir == "" {
		return nil
	}
	if c.capsFD, err = unix.Open(c.cfg.CapabilitiesDir, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0); err != nil {
		return fmt.Errorf("open capabilities dir: %w", err)
	}
	return nil
}

// makeMountsPrivate keeps every mount made from here on out of the host's
// mount namespace.
func (c *child) makeMountsPrivate() error {
	return mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, "")
}

// mountRootTmpfs creates the future root: an empty, small tmpfs.
func (c *child) mountRootTmpfs() error {
	c.root = stageDir
	if err := mount("tmpfs", c.root, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV, "size=1m,nr_inodes=64,mode=0755"); err != nil {
		return err
	}
	for _, d := range []string{"dev", "proc", "work", "capabilities"} {
		if err := os.Mkdir(filepath.Join(c.root, d), 0o755); err != nil {
			return err
		}
	}
	return nil
}

// bindBinary makes the ccos binary itself the only program in the root.
func (c *child) bindBinary() error {
	defer unix.Close(c.exeFD)
	dst := filepath.Join(c.root, guestBinary)
	if c.cfg.ExeTreeFD > 0 {
		return attachTree(c.exeFD, dst, false)
	}
	return bindReadOnly(fdPath(c.exeFD), dst, false, unix.MS_NOSUID|unix.MS_NODEV)
}

// bindDevices provides /dev/null, /dev/zero and /dev/urandom, nothing else.
func (c *child) bindDevices() error {
	for _, d := range []string{"null", "zero", "urandom"} {
		if err := bindFile("/dev/"+d, filepath.Join(c.root, "dev", d), unix.MS_NOSUID|unix.MS_NOEXEC); err != nil {
			return err
		}
	}
	return nil
}

// mountProc mounts a read-only /proc of the new pid namespace: the guest sees
// only its own processes.
func (c *child) mountProc() error {
	return mount("proc", filepath.Join(c.root, "proc"), "proc",
		unix.MS_RDONLY|unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, "")
}

// mountWorkdir mounts the only writable place, sized by Limits.WorkdirBytes
// and owned by the guest's uid.
func (c *child) mountWorkdir() error {
	opts := fmt.Sprintf("size=%d,mode=0700,uid=%d,gid=%d", c.cfg.WorkdirBytes, c.cfg.UID, c.cfg.GID)
	return mount("tmpfs", filepath.Join(c.root, workDir), "tmpfs", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, opts)
}

// bindCapabilities shows Spec.CapabilitiesDir read-only at /capabilities.
func (c *child) bindCapabilities() error {
	if c.capsFD < 0 {
		return nil
	}
	defer unix.Close(c.capsFD)
	if c.cfg.CapsTreeFD > 0 {
		return attachTree(c.capsFD, filepath.Join(c.root, capsDir), true)
	}
	return bindReadOnly(fdPath(c.capsFD), filepath.Join(c.root, capsDir), true, unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC)
}

// pivotRoot makes the new tmpfs the root and detaches the old one, so no
// path leads back to the host's file system.
func (c *child) pivotRoot() error {
	if err := unix.Chdir(c.root); err != nil {
		return err
	}
	if err := unix.PivotRoot(".", "."); err != nil {
		return fmt.Errorf("pivot_root: %w", err)
	}
	if err := unix.Unmount(".", unix.MNT_DETACH); err != nil {
		return fmt.Errorf("detach old root: %w", err)
	}
	return unix.Chdir("/")
}

// remountRootReadonly freezes the root: from now on only /work is writable.
func (c *child) remountRootReadonly() error {
	return mount("", "/", "", unix.MS_REMOUNT|unix.MS_RDONLY|unix.MS_NOSUID|unix.MS_NODEV, "")
}

func (c *child) setHostname() error {
	return unix.Sethostname([]byte(guestHostname))
}

// loopbackUp brings up lo, the only interface of the new network namespace.
func (c *child) loopbackUp() error {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("socket: %w", err)
	}
	defer unix.Close(fd)
	ifr, err := unix.NewIfreq("lo")
	if err != nil {
		return err
	}
	if err := unix.IoctlIfreq(fd, unix.SIOCGIFFLAGS, ifr); err != nil {
		return fmt.Errorf("get lo flags: %w", err)
	}
	ifr.SetUint16(ifr.Uint16() | unix.IFF_UP)
	if err := unix.IoctlIfreq(fd, unix.SIOCSIFFLAGS, ifr); err != nil {
		return fmt.Errorf("set lo up: %w", err)
	}
	return nil
}

// setRlimits bounds descriptors and file size and forbids core dumps. The
// address space is left alone: RLIMIT_AS kills Go programs; the memory
// cgroup bounds memory instead.
func (c *child) setRlimits() error {
	limits := []struct {
		name     string
		resource int
		value    uint64
	}{
		{"RLIMIT_NOFILE", unix.RLIMIT_NOFILE, c.cfg.NoFile},
		{"RLIMIT_CORE", unix.RLIMIT_CORE, 0},
		{"RLIMIT_FSIZE", unix.RLIMIT_FSIZE, c.cfg.FileSize},
	}
	for _, l := range limits {
		if err := unix.Setrlimit(l.resource, &unix.Rlimit{Cur: l.value, Max: l.value}); err != nil {
			return fmt.Errorf("%s: %w", l.name, err)
		}
	}
	return nil
}

// dropBoundingSet removes every capability from the bounding set, on all
// threads when the runtime can do that (binaries built without cgo),
// otherwise on this thread, the one that runs the guest. The other threads
// lose their permitted capabilities at drop-uid, and no_new_privs keeps any
// later execve from gaining some.
func (c *child) dropBoundingSet() error {
	allThreads := true
	for capNum, last := 0, lastCap(); capNum <= last; capNum++ {
		var errno syscall.Errno
		if allThreads {
			_, _, errno = syscall.AllThreadsSyscall(unix.SYS_PRCTL, unix.PR_CAPBSET_DROP, uintptr(capNum), 0)
			allThreads = errno != syscall.ENOTSUP
		}
		if !allThreads {
			_, _, errno = syscall.RawSyscall(unix.SYS_PRCTL, unix.PR_CAPBSET_DROP, uintptr(capNum), 0)
		}
		if errno != 0 && errno != syscall.EINVAL {
			return fmt.Errorf("drop capability %d from the bounding set: %w", capNum, errno)
		}
	}
	return nil
}

// lastCap is the highest capability number the kernel knows.
func lastCap() int {
	data, err := os.ReadFile("/proc/sys/kernel/cap_last_cap")
	if err != nil {
		return 63
	}
	n, err := strconv.Atoi(string(trimNL(data)))
	if err != nil {
		return 63
	}
	return n
}

func trimNL(b []byte) []byte {
	for len(b) > 0 && (b[len(b)-1] == '\n' || b[len(b)-1] == ' ') {
		b = b[:len(b)-1]
	}
	return b
}

// dropUID leaves uid 0 of the namespace for the unprivileged guest uid (on
// every thread: the Go runtime applies setres[ug]id process-wide), which
// also clears the permitted and effective capability sets.
func (c *child) dropUID() error {
	if !c.cfg.DropUID {
		return nil
	}
	if groups, err := syscall.Getgroups(); err != nil || len(groups) > 0 {
		if err := syscall.Setgroups(nil); err != nil {
			return fmt.Errorf("setgroups: %w", err)
		}
	}
	if err := syscall.Setresgid(c.cfg.GID, c.cfg.GID, c.cfg.GID); err != nil {
		return fmt.Errorf("setresgid: %w", err)
	}
	if err := syscall.Setresuid(c.cfg.UID, c.cfg.UID, c.cfg.UID); err != nil {
		return fmt.Errorf("setresuid: %w", err)
	}
	return nil
}

// clearCapabilities empties the effective, permitted and inheritable sets
// of every thread and the ambient set of this one. After drop-uid the other
// threads already lost their permitted and effective sets, so where the
// runtime cannot reach all threads (cgo binaries) this thread is enough;
// without a uid drop (an unprivileged host) it is not, and the step fails
// rather than leave namespace capabilities on some threads.
func (c *child) clearCapabilities() error {
	if err := unix.Prctl(unix.PR_CAP_AMBIENT, unix.PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0); err != nil && !errors.Is(err, unix.EINVAL) {
		return fmt.Errorf("clear ambient capabilities: %w", err)
	}
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var data [2]unix.CapUserData
	_, _, errno := syscall.AllThreadsSyscall(unix.SYS_CAPSET, uintptr(unsafe.Pointer(&hdr)), uintptr(unsafe.Pointer(&data[0])), 0)
	runtime.KeepAlive(&hdr)
	runtime.KeepAlive(&data)
	if errno == 0 {
		return nil
	}
	if errno != syscall.ENOTSUP {
		return fmt.Errorf("capset on all threads: %w", errno)
	}
	if !c.cfg.DropUID {
		return errors.New("cannot clear capabilities on every thread of a cgo binary when no uid can be dropped to; run the host as root or build ccos with CGO_ENABLED=0")
	}
	if err := unix.Capset(&hdr, &data[0]); err != nil {
		return fmt.Errorf("capset: %w", err)
	}
	return nil
}

// assembleSeccomp builds the filter program early, while the host is still
// setting up the cgroups.
func (c *child) assembleSeccomp() (err error) {
	c.filter, err = filterProgram()
	return err
}

func (c *child) loadSeccomp() error {
	return loadFilter(c.filter)
}

func (c *child) enterWorkdir() error {
	return unix.Chdir(workDir)
}

// attachTree moves a detached mount (open_tree) onto dst, a new empty file
// unless dir.
func attachTree(fd int, dst string, dir bool) error {
	if !dir {
		f, err := os.OpenFile(dst, os.O_CREATE|os.O_WRONLY, 0o755)
		if err != nil {
			return err
		}
		f.Close()
	}
	if err := unix.MoveMount(fd, "", unix.AT_FDCWD, dst, unix.MOVE_MOUNT_F_EMPTY_PATH); err != nil {
		return fmt.Errorf("move_mount onto %s: %w", dst, err)
	}
	return nil
}

func fdPath(fd int) string { return "/proc/self/fd/" + strconv.Itoa(fd) }

func mount(source, target, fstype string, flags uintptr, data string) error {
	if err := unix.Mount(source, target, fstype, flags, data); err != nil {
		return fmt.Errorf("mount %s on %s: %w", fstype+source, target, err)
	}
	return nil
}

// bindFile bind-mounts the file src onto a new empty file dst with extra flags.
func bindFile(src, dst string, flags uintptr) error {
	f, err := os.OpenFile(dst, os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	f.Close()
	if err := mount(src, dst, "", unix.MS_BIND, ""); err != nil {
		return err
	}
	return remountBind(dst, flags)
}

// bindReadOnly bind-mounts src onto dst (a directory when dir, else a file
// created for it) and remounts the bind read-only with flags.
func bindReadOnly(src, dst string, dir bool, flags uintptr) error {
	if !dir {
		f, err := os.OpenFile(dst, os.O_CREATE|os.O_WRONLY, 0o755)
		if err != nil {
			return err
		}
		f.Close()
	}
	flag := uintptr(unix.MS_BIND)
	if dir {
		flag |= unix.MS_REC
	}
	if err := mount(src, dst, "", flag, ""); err != nil {
		return err
	}
	return remountBind(dst, flags|unix.MS_RDONLY)
}

// remountBind applies flags to a bind mount, keeping the flags the source
// mount already had: in a user namespace the kernel refuses to clear them.
func remountBind(dst string, flags uintptr) error {
	var st unix.Statfs_t
	if err := unix.Statfs(dst, &st); err != nil {
		return fmt.Errorf("statfs %s: %w", dst, err)
	}
	const kept = unix.MS_RDONLY | unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC |
		unix.MS_NOATIME | unix.MS_NODIRATIME | unix.MS_RELATIME
	flags |= uintptr(st.Flags) & kept
	return mount("", dst, "", unix.MS_BIND|unix.MS_REMOUNT|flags, "")
}
