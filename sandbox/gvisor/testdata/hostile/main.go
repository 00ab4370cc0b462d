// Command hostile is the guest of the gvisor provider's escape tests. When
// /capabilities/attack exists it runs the attack named there (with its
// argument), answers one line on standard output ("contained ..." when every
// attempt failed as it should, "ESCAPED ..." otherwise) and exits; some
// attacks end the process instead. Without the file it answers "pong" to a
// "ping" line on standard input, like a healthy guest.
package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"runtime/debug"
	"strings"
	"syscall"
	"time"
)

func main() {
	if b, err := os.ReadFile("/capabilities/attack"); err == nil {
		name, arg, _ := strings.Cut(strings.TrimSpace(string(b)), " ")
		attack, ok := attacks[name]
		if !ok {
			fmt.Printf("unknown attack %q\n", name)
			os.Exit(4)
		}
		reply, status := attack(arg)
		fmt.Println(reply)
		os.Exit(status)
	}
	line, err := bufio.NewReader(os.Stdin).ReadString('\n')
	if err != nil {
		os.Exit(3)
	}
	if strings.TrimSpace(line) != "ping" {
		fmt.Printf("unknown command %q\n", strings.TrimSpace(line))
		os.Exit(4)
	}
	fmt.Println("pong")
}

var attacks = map[string]func(arg string) (string, int){
	"exit":          func(arg string) (string, int) { var n int; fmt.Sscan(arg, &n); return "exiting", n },
	"identity":      identity,
	"write-outside": writeOutside,
	"read-host":     readHost,
	"network":       network,
	"syscalls":      syscalls,
	"fork-bomb":     forkBomb,
	"alloc":         alloc,
	"spin":          spin,
	"stderr-flood":  stderrFlood,
	"crash":         crash,
	"hold":          hold,
	"fill-work":     fillWork,
}

// verdict is the one-line answer of an attack.
func verdict(escaped, contained []string) string {
	if len(escaped) > 0 {
		return "ESCAPED " + strings.Join(escaped, " ")
	}
	return "contained " + strings.Join(contained, " ")
}

// identity reports who the guest is and what it sees.
func identity(string) (string, int) {
	status, _ := os.ReadFile("/proc/self/status")
	var fields []string
	for _, l := range strings.Split(string(status), "\n") {
		k, v, _ := strings.Cut(l, ":")
		switch k {
		case "Uid", "Gid", "Groups", "CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb", "NoNewPrivs":
			fields = append(fields, k+"="+strings.Join(strings.Fields(v), ","))
		}
	}
	host, _ := os.Hostname()
	ents, _ := os.ReadDir("/")
	var root []string
	for _, e := range ents {
		root = append(root, e.Name())
	}
	wd, _ := os.Getwd()
	return fmt.Sprintf("%s hostname=%s root=%s wd=%s env=%s", strings.Join(fields, " "), host, strings.Join(root, ","), wd, strings.Join(os.Environ(), ",")), 0
}

// writeOutside tries to write everywhere but /work.
func writeOutside(string) (string, int) {
	var escaped, contained []string
	for _, p := range []string{"/escape", "/ccos", "/tmp/escape", "/dev/escape", "/dev/shm/escape", "/proc/escape",
		"/sys/escape", "/capabilities/escape", "/capabilities/attack", "/proc/sys/kernel/hostname"} {
		if err := os.WriteFile(p, []byte("x"), 0o644); err != nil {
			contained = append(contained, fmt.Sprintf("%s:%v", p, errnoOf(err)))
			continue
		}
		escaped = append(escaped, p)
	}
	if err := os.WriteFile("/work/ok", []byte("x"), 0o644); err != nil {
		escaped = append(escaped, "workdir-not-writable:"+err.Error())
	}
	return verdict(escaped, contained), 0
}

// readHost tries to read host secrets, the host file named by arg and the
// host's view of /ccos.
func readHost(arg string) (string, int) {
	var escaped, contained []string
	for _, p := range []string{"/etc/shadow", "/etc/passwd", "/root", "/home", "/usr", arg,
		"/proc/1/root/etc/shadow", "/ccos/../etc/shadow", "/sys/fs/cgroup/memory"} {
		if _, err := os.Stat(p); err == nil {
			escaped = append(escaped, p)
			continue
		}
		contained = append(contained, p)
	}
	return verdict(escaped, contained), 0
}

// network tries to reach the host's listener on 127.0.0.1:arg and an
// outside address, and lists the interfaces.
func network(port string) (string, int) {
	var escaped, contained []string
	for _, addr := range []string{"127.0.0.1:" + port, "10.0.2.2:" + port, "1.1.1.1:53"} {
		c, err := net.DialTimeout("tcp", addr, 2*time.Second)
		if err == nil {
			c.Close()
			escaped = append(escaped, "dial "+addr)
			continue
		}
		contained = append(contained, "dial-"+addr+":"+errnoOf(err).Error())
	}
	if c, err := net.DialTimeout("udp", "1.1.1.1:53", time.Second); err == nil {
		if _, err := c.Write([]byte("x")); err == nil {
			escaped = append(escaped, "udp-send-1.1.1.1")
		}
		c.Close()
	}
	ifaces, _ := net.Interfaces()
	for _, i := range ifaces {
		if i.Name != "lo" {
			escaped = append(escaped, "interface "+i.Name)
		}
	}
	return verdict(escaped, contained), 0
}

// syscalls tries the calls that would change the sandbox or reach beyond
// it; each must fail.
func syscalls(string) (string, int) {
	tries := []struct {
		name string
		call func() error
	}{
		{"mount", func() error { return syscall.Mount("none", "/work", "tmpfs", 0, "") }},
		{"mount-proc", func() error { return syscall.Mount("proc", "/tmp", "proc", 0, "") }},
		{"umount2", func() error { return syscall.Unmount("/proc", syscall.MNT_DETACH) }},
		{"pivot_root", func() error { return syscall.PivotRoot("/work", "/work") }},
		{"chroot", func() error { return syscall.Chroot("/work") }},
		{"ptrace-attach-1", func() error { return rawErr(syscall.SYS_PTRACE, syscall.PTRACE_ATTACH, 1, 0) }},
		{"setuid-0", func() error { return rawErr(syscall.SYS_SETUID, 0, 0, 0) }},
		{"sethostname", func() error { return syscall.Sethostname([]byte("escaped")) }},
		{"reboot", func() error { return rawErr(syscall.SYS_REBOOT, 0xfee1dead, 672274793, 0x4321fedc) }},
		{"init_module", func() error { return rawErr(syscall.SYS_INIT_MODULE, 0, 0, 0) }},
		{"kexec_load", func() error { return rawErr(syscall.SYS_KEXEC_LOAD, 0, 0, 0) }},
		{"swapon", func() error { return rawErr(syscall.SYS_SWAPON, 0, 0, 0) }},
		{"mknod-open", mknodOpen},
	}
	var escaped, contained []string
	for _, t := range tries {
		if err := t.call(); err != nil {
			contained = append(contained, t.name+":"+errnoOf(err).Error())
			continue
		}
		escaped = append(escaped, t.name)
	}
	return verdict(escaped, contained), 0
}

// mknodOpen makes a block device node for the host's first disk and opens
// it: gVisor may create the node in its own tmpfs, but it must lead nowhere.
func mknodOpen() error {
	if err := syscall.Mknod("/work/sda", syscall.S_IFBLK|0o600, 8<<8); err != nil {
		return err
	}
	f, err := os.Open("/work/sda")
	if err != nil {
		return err
	}
	f.Close()
	return nil
}

func rawErr(nr, a1, a2, a3 uintptr) error {
	if _, _, e := syscall.RawSyscall(nr, a1, a2, a3); e != 0 {
		return e
	}
	return nil
}

// forkBomb forks without end; every child forks again. The pids limit must
// stop it; the guest reports how far it got.
func forkBomb(string) (string, int) {
	forks := 0
	for {
		r, _, e := syscall.RawSyscall(syscall.SYS_FORK, 0, 0, 0)
		if e != 0 {
			return fmt.Sprintf("contained fork failed after %d forks: %v", forks, e), 0
		}
		if r == 0 {
			forkBombChild()
		}
		forks++
	}
}

// forkBombChild runs in a raw fork of the Go process: raw syscalls only.
//
//go:nosplit
func forkBombChild() {
	for {
		syscall.RawSyscall(syscall.SYS_FORK, 0, 0, 0)
		syscall.RawSyscall(syscall.SYS_PAUSE, 0, 0, 0)
	}
}

var sink [][]byte

// alloc allocates and touches memory until it has arg MiB.
func alloc(arg string) (string, int) {
	var mib int
	fmt.Sscan(arg, &mib)
	for i := 0; i < mib; i++ {
		b := make([]byte, 1<<20)
		for j := 0; j < len(b); j += 4096 {
			b[j] = 1
		}
		sink = append(sink, b)
	}
	return fmt.Sprintf("ESCAPED allocated %d MiB", mib), 0
}

func spin(string) (string, int) {
	x := 0
	for {
		x++
		if x < 0 {
			return "ESCAPED", 0
		}
	}
}

// stderrFlood writes arg MiB to standard error.
func stderrFlood(arg string) (string, int) {
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

// fillWork writes 1 MiB files to /work until the file system is full and
// reports how many fitted (files, not one big one: RLIMIT_FSIZE caps a
// single file at the workdir size already).
func fillWork(string) (string, int) {
	chunk := make([]byte, 1<<20)
	for mib := 0; mib < 1<<20; mib++ {
		if err := os.WriteFile(fmt.Sprintf("/work/fill%d", mib), chunk, 0o600); err != nil {
			return fmt.Sprintf("contained workdir full after %d MiB: %v", mib, errnoOf(err)), 0
		}
	}
	return "ESCAPED wrote 1 TiB to /work", 0
}

// hold says "ready" and waits for the end of standard input, so that the
// host can measure a running sandbox.
func hold(string) (string, int) {
	fmt.Println("ready")
	_, _ = io.Copy(io.Discard, os.Stdin)
	return "released", 0
}

// crash dies of SIGABRT, as a crashing native guest would.
func crash(string) (string, int) {
	debug.SetTraceback("crash")
	panic("crash attack")
}

func errnoOf(err error) error {
	var e syscall.Errno
	if errors.As(err, &e) {
		return e
	}
	return err
}
