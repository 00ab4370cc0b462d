//go:build linux

package process

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"syscall"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/ccos-project/ccos/sandbox"
)

// bwrapGuestArg makes the test binary serve one ping on fd 3 without any
// setup of its own, for the bubblewrap side of the cold-start benchmark.
const bwrapGuestArg = "__ccos-bwrap-guest"

// TestMain sets the guest first: InitIfChild runs it in a sandbox child.
func TestMain(m *testing.M) {
	sandbox.GuestMain = testGuest
	InitIfChild()
	if len(os.Args) > 1 && os.Args[1] == bwrapGuestArg {
		os.Exit(testGuest(os.NewFile(controlFD, "control")))
	}
	os.Exit(m.Run())
}

// testGuest is the guest of these tests: it reads one command line from the
// control connection, runs it and answers with one line. Escape attempts
// answer "contained ..." when every attempt failed as it should and
// "ESCAPED ..." otherwise; some commands end the process instead.
func testGuest(conn io.ReadWriteCloser) int {
	defer conn.Close()
	line, err := bufio.NewReader(conn).ReadString('\n')
	if err != nil {
		return 3
	}
	name, arg, _ := strings.Cut(strings.TrimSpace(line), " ")
	cmd, ok := guestCommands[name]
	if !ok {
		fmt.Fprintf(conn, "unknown command %q\n", name)
		return 4
	}
	reply, status := cmd(arg)
	fmt.Fprintln(conn, reply)
	return status
}

var guestCommands = map[string]func(arg string) (string, int){
	"ping":          func(string) (string, int) { return "pong", 0 },
	"exit":          guestExit,
	"identity":      guestIdentity,
	"write-outside": guestWriteOutside,
	"read-host":     guestReadHost,
	"tcp-connect":   guestTCPConnect,
	"syscalls":      guestSyscalls,
	"fork-bomb":     guestForkBomb,
	"alloc":         guestAlloc,
	"spin":          guestSpin,
	"stderr-flood":  guestStderrFlood,
	"segfault":      guestSegfault,
}

// guestSegfault dies of SIGSEGV the way a crashing native guest would: with
// the default action and a real fault (a signal the pid namespace's init
// sent itself would be ignored).
func guestSegfault(string) (string, int) {
	var dfl [4]uint64 // struct sigaction with sa_handler = SIG_DFL
	if _, _, e := syscall.RawSyscall6(unix.SYS_RT_SIGACTION, uintptr(unix.SIGSEGV), uintptr(unsafe.Pointer(&dfl)), 0, 8, 0, 0); e != 0 {
		return "rt_sigaction: " + e.Error(), 0
	}
	var p *int
	*p = 1
	return "still alive", 0
}

func guestExit(arg string) (string, int) {
	var n int
	fmt.Sscan(arg, &n)
	return "exiting", n
}

// guestIdentity reports who the guest is and what restricts it.
func guestIdentity(string) (string, int) {
	status, _ := os.ReadFile("/proc/self/status")
	var fields []string
	for _, l := range strings.Split(string(status), "\n") {
		k, v, _ := strings.Cut(l, ":")
		switch k {
		case "Uid", "Gid", "Groups", "CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb", "NoNewPrivs", "Seccomp":
			fields = append(fields, k+"="+strings.Join(strings.Fields(v), ","))
		}
	}
	host, _ := os.Hostname()
	names := guestInterfaces()
	ents, _ := os.ReadDir("/")
	var root []string
	for _, e := range ents {
		root = append(root, e.Name())
	}
	wd, _ := os.Getwd()
	return fmt.Sprintf("%s hostname=%s ifaces=%s root=%s pid=%d wd=%s sockets=%s", strings.Join(fields, " "), host,
		strings.Join(names, ","), strings.Join(root, ","), os.Getpid(), wd, strings.Join(guestSockets(), ",")), 0
}

// guestSockets lists the descriptors that are sockets: only the control
// connection (fd 3) may have crossed from the host.
func guestSockets() []string {
	ents, _ := os.ReadDir("/proc/self/fd")
	var out []string
	for _, e := range ents {
		if target, _ := os.Readlink("/proc/self/fd/" + e.Name()); strings.HasPrefix(target, "socket:") {
			out = append(out, e.Name())
		}
	}
	return out
}

// guestInterfaces lists the network namespace's interfaces and whether each
// is up, without netlink (the filter refuses non-unix sockets; interface
// ioctls work on a unix socket).
func guestInterfaces() []string {
	dev, _ := os.ReadFile("/proc/net/dev")
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_DGRAM, 0)
	if err != nil {
		return []string{"socket:" + err.Error()}
	}
	defer unix.Close(fd)
	var names []string
	for _, l := range strings.Split(string(dev), "\n") {
		name, _, ok := strings.Cut(l, ":")
		name = strings.TrimSpace(name)
		if !ok || strings.Contains(name, "|") {
			continue
		}
		ifr, _ := unix.NewIfreq(name)
		up := unix.IoctlIfreq(fd, unix.SIOCGIFFLAGS, ifr) == nil && ifr.Uint16()&unix.IFF_UP != 0
		names = append(names, fmt.Sprintf("%s:%v", name, up))
	}
	return names
}

// guestWriteOutside tries to write everywhere but /work.
func guestWriteOutside(string) (string, int) {
	var escaped, contained []string
	for _, p := range []string{"/escape", "/ccos", "/dev/escape", "/proc/escape", "/capabilities/escape", "/proc/sys/kernel/hostname"} {
		err := os.WriteFile(p, []byte("x"), 0o644)
		if err == nil {
			escaped = append(escaped, p)
			continue
		}
		contained = append(contained, fmt.Sprintf("%s:%v", p, errnoOf(err)))
	}
	if err := os.Mkdir("/tmp", 0o755); err == nil {
		escaped = append(escaped, "mkdir /tmp")
	}
	if err := os.WriteFile("/work/ok", []byte("x"), 0o644); err != nil {
		escaped = append(escaped, "workdir not writable: "+err.Error())
	}
	if len(escaped) > 0 {
		return "ESCAPED " + strings.Join(escaped, " "), 0
	}
	return "contained " + strings.Join(contained, " "), 0
}

// guestReadHost tries to read host secrets and host paths.
func guestReadHost(string) (string, int) {
	var escaped, contained []string
	for _, p := range []string{"/etc/shadow", "/etc/passwd", "/root", "/home", "/proc/1/root/etc/shadow", "/sys/fs/cgroup"} {
		_, err := os.Stat(p)
		if err == nil {
			escaped = append(escaped, p)
			continue
		}
		contained = append(contained, fmt.Sprintf("%s:%v", p, errnoOf(err)))
	}
	if len(escaped) > 0 {
		return "ESCAPED " + strings.Join(escaped, " "), 0
	}
	return "contained " + strings.Join(contained, " "), 0
}

// guestTCPConnect tries to reach the host's listener on 127.0.0.1:arg and to
// create any non-unix socket.
func guestTCPConnect(port string) (string, int) {
	var escaped, contained []string
	if c, err := net.Dial("tcp", "127.0.0.1:"+port); err == nil {
		c.Close()
		escaped = append(escaped, "dial 127.0.0.1:"+port)
	} else {
		contained = append(contained, "dial:"+errnoOf(err).Error())
	}
	families := []struct {
		name        string
		family, typ int
	}{
		{"inet-stream", unix.AF_INET, unix.SOCK_STREAM},
		{"inet-dgram", unix.AF_INET, unix.SOCK_DGRAM},
		{"inet6-stream", unix.AF_INET6, unix.SOCK_STREAM},
		{"netlink", unix.AF_NETLINK, unix.SOCK_RAW},
		{"packet", unix.AF_PACKET, unix.SOCK_RAW},
	}
	for _, f := range families {
		fd, err := unix.Socket(f.family, f.typ, 0)
		if err == nil {
			unix.Close(fd)
			escaped = append(escaped, "socket "+f.name)
			continue
		}
		contained = append(contained, f.name+":"+errnoName(err))
	}
	if fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_STREAM, 0); err != nil {
		escaped = append(escaped, "unix socket refused too: "+err.Error())
	} else {
		unix.Close(fd)
	}
	if len(escaped) > 0 {
		return "ESCAPED " + strings.Join(escaped, " "), 0
	}
	return "contained " + strings.Join(contained, " "), 0
}

// deniedSyscallAttempts are the calls the guest makes to check the filter;
// each must fail with EPERM (ENOSYS for clone3), before the kernel even looks
// at the arguments.
var deniedSyscallAttempts = []struct {
	name string
	call func() syscall.Errno
	want syscall.Errno
}{
	{"ptrace", func() syscall.Errno { return raw(unix.SYS_PTRACE, unix.PTRACE_TRACEME, 0, 0) }, unix.EPERM},
	{"mount", func() syscall.Errno { return toErrno(unix.Mount("none", "/work", "tmpfs", 0, "")) }, unix.EPERM},
	{"umount2", func() syscall.Errno { return toErrno(unix.Unmount("/proc", unix.MNT_DETACH)) }, unix.EPERM},
	{"unshare", func() syscall.Errno { return toErrno(unix.Unshare(unix.CLONE_NEWUSER)) }, unix.EPERM},
	{"setns", func() syscall.Errno { return raw(unix.SYS_SETNS, 0, 0, 0) }, unix.EPERM},
	{"pivot_root", func() syscall.Errno { return toErrno(unix.PivotRoot("/work", "/work")) }, unix.EPERM},
	{"kexec_load", func() syscall.Errno { return raw(unix.SYS_KEXEC_LOAD, 0, 0, 0) }, unix.EPERM},
	{"kexec_file_load", func() syscall.Errno { return raw(unix.SYS_KEXEC_FILE_LOAD, 0, 0, 0) }, unix.EPERM},
	{"init_module", func() syscall.Errno { return raw(unix.SYS_INIT_MODULE, 0, 0, 0) }, unix.EPERM},
	{"finit_module", func() syscall.Errno { return raw(unix.SYS_FINIT_MODULE, 0, 0, 0) }, unix.EPERM},
	{"bpf", func() syscall.Errno { return raw(unix.SYS_BPF, 0, 0, 0) }, unix.EPERM},
	{"perf_event_open", func() syscall.Errno { return raw(unix.SYS_PERF_EVENT_OPEN, 0, 0, 0) }, unix.EPERM},
	{"keyctl", func() syscall.Errno { return raw(unix.SYS_KEYCTL, 0, 0, 0) }, unix.EPERM},
	{"add_key", func() syscall.Errno { return raw(unix.SYS_ADD_KEY, 0, 0, 0) }, unix.EPERM},
	{"reboot", func() syscall.Errno { return raw(unix.SYS_REBOOT, 0, 0, 0) }, unix.EPERM},
	{"swapon", func() syscall.Errno { return raw(unix.SYS_SWAPON, 0, 0, 0) }, unix.EPERM},
	{"io_uring_setup", func() syscall.Errno { return raw(unix.SYS_IO_URING_SETUP, 0, 0, 0) }, unix.EPERM},
	{"open_by_handle_at", func() syscall.Errno { return raw(unix.SYS_OPEN_BY_HANDLE_AT, 0, 0, 0) }, unix.EPERM},
	{"clone-newuser", cloneNewUser, unix.EPERM},
	{"clone3", func() syscall.Errno { return raw(unix.SYS_CLONE3, 0, 0, 0) }, unix.ENOSYS},
}

// cloneNewUser asks for a child in a new user namespace; should the filter
// let it through, the child exits at once.
func cloneNewUser() syscall.Errno {
	r, _, e := syscall.RawSyscall(unix.SYS_CLONE, unix.CLONE_NEWUSER|uintptr(unix.SIGCHLD), 0, 0)
	if e == 0 && r == 0 {
		syscall.RawSyscall(unix.SYS_EXIT_GROUP, 0, 0, 0)
	}
	return e
}

func raw(nr, a1, a2, a3 uintptr) syscall.Errno {
	_, _, e := syscall.Syscall(nr, a1, a2, a3)
	return e
}

func guestSyscalls(string) (string, int) {
	var out []string
	for _, a := range deniedSyscallAttempts {
		out = append(out, a.name+"="+errnoText(a.call()))
	}
	return strings.Join(out, " "), 0
}

// guestForkBomb forks without end; every child forks again. The pids
// cgroup must stop it; the guest reports how far it got.
func guestForkBomb(string) (string, int) {
	forks := 0
	for {
		r, e := forkBombStep()
		if e != 0 {
			return fmt.Sprintf("contained fork failed after %d forks: %v", forks, e), 0
		}
		if r == 0 {
			forkBombChild()
		}
		forks++
	}
}

func forkBombStep() (uintptr, syscall.Errno) {
	r, _, e := syscall.RawSyscall(unix.SYS_FORK, 0, 0, 0)
	return r, e
}

// forkBombChild runs in a raw fork of the Go process: only raw syscalls,
// no allocation, no runtime.
//
//go:nosplit
func forkBombChild() {
	for {
		syscall.RawSyscall(unix.SYS_FORK, 0, 0, 0)
		syscall.RawSyscall(unix.SYS_PAUSE, 0, 0, 0)
	}
}

var sink [][]byte

// guestAlloc allocates and touches memory until it has 1 GiB.
func guestAlloc(string) (string, int) {
	for i := 0; i < 1024; i++ {
		b := make([]byte, 1<<20)
		for j := 0; j < len(b); j += 4096 {
			b[j] = 1
		}
		sink = append(sink, b)
	}
	return "ESCAPED allocated 1 GiB", 0
}

func guestSpin(string) (string, int) {
	x := 0
	for {
		x++
		if x < 0 {
			return "ESCAPED", 0
		}
	}
}

// guestStderrFlood writes arg MiB to standard error.
func guestStderrFlood(arg string) (string, int) {
	var mib int
	fmt.Sscan(arg, &mib)
	chunk := []byte(strings.Repeat("flood!\n", (1<<20)/7+1)[:1<<20])
	for i := 0; i < mib; i++ {
		if _, err := os.Stderr.Write(chunk); err != nil {
			return "stderr write failed: " + err.Error(), 0
		}
	}
	return fmt.Sprintf("wrote %d MiB", mib), 0
}

func errnoOf(err error) error {
	var e syscall.Errno
	if errors.As(err, &e) {
		return e
	}
	return err
}

func errnoName(err error) string { return errnoText(toErrno(err)) }

func toErrno(err error) syscall.Errno {
	if err == nil {
		return 0
	}
	var e syscall.Errno
	if errors.As(err, &e) {
		return e
	}
	return syscall.EINVAL
}

func errnoText(e syscall.Errno) string {
	if e == 0 {
		return "OK"
	}
	return unix.ErrnoName(e)
}
