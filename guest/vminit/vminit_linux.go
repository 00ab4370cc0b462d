//go:build linux

// Package vminit is the setup of a ccos microVM guest, run by its /init
// (cmd/ccos-init) as PID 1: the first and only program the guest kernel
// runs. `go generate ./image/initbin` builds cmd/ccos-init static and
// `ccos image build` puts it into the initramfs.
//
// Setup prepares the machine:
//
//  1. mounts devtmpfs, proc and sysfs, and makes /dev/console its standard
//     error (the host sends the console to a log file);
//  2. loads the kernel modules listed in /lib/modules/order, in that order
//     (virtio_ring, virtio, virtio_mmio, then the device drivers);
//  3. finds the virtio-serial port the host named on the kernel command
//     line (ccos.control=virtio-serial:NAME) under /sys/class/virtio-ports;
//  4. measures the rootfs block device (root=/dev/vda) with sha256 and
//     mounts it read-only at /store (rootfstype=, squashfs by default);
//     /capabilities points into it;
//  5. mounts a size-limited tmpfs at the guest workdir (ccos.workdir_mb=N);
//     a snapshot template (ccos.hold=1) leaves that to each clone, after
//     its wake-up (HoldForRestore).
//
// Main runs Setup, serves the control protocol on the port and powers the
// machine off when the session ends.
//
// Nothing here is trusted by the host: the measurement is the guest's claim
// and the host compares it with its own measurement of the same image.

package vminit

import (
	"bufio"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"
	"unsafe"

	"github.com/ccos-project/ccos/control"
	"github.com/ccos-project/ccos/control/link"
	"github.com/ccos-project/ccos/guest"
	"golang.org/x/sys/unix"
)

// bootParams are the ccos.* kernel command-line parameters.
type bootParams struct {
	control   string // virtio-serial port name
	vsockPort uint32 // vsock port to listen on instead (Firecracker); 0 for none
	rootfs    string // block device holding the read-only store
	rootfsFS  string // its filesystem type
	workdirMB int
	hold      bool       // a snapshot template: wait for the host's wake-up (ccos.hold=1)
	net       *net.IPNet // eth0's address, when the VM has a NIC
	proxy     string     // the egress proxy's host:port on that network
}

// Env is what Setup prepared.
type Env struct {
	// Port is the control channel's device, open read-write.
	Port *os.File
	// Measurements are the guest's own measurements ("rootfs").
	Measurements map[string]string
	// Proxy is the egress proxy's address when the VM has a NIC (its only
	// way out); empty otherwise.
	Proxy string
	// Hold is set for a snapshot template: Main waits for the host's
	// wake-up (HoldForRestore) before it serves, and the workdir is
	// mounted only then.
	Hold bool

	workdirMB int
	clone     bool // restored from a template (HoldForRestore returned)

	portPath string
}

// Main is the whole life of a guest's PID 1: Setup, then serve on the
// control port (serve gets the guest's measurements through
// guest.Measurements), then power off. It never returns.
func Main(serve func(conn io.ReadWriteCloser) int) {
	if os.Getpid() != 1 {
		fmt.Fprintln(os.Stderr, "ccos-init: this is the /init of a ccos microVM guest and must run as PID 1")
		os.Exit(2)
	}
	code := 1
	env, err := Setup()
	if err == nil && env.Hold {
		guest.WarmUp()
		err = env.HoldForRestore()
	}
	if err == nil {
		guest.Measurements = env.Measurements
		conn := env.Link()
		if env.clone {
			// Once the clone has said hello (and waits for a plan, in a
			// pool), it runs the agent's warm-up again, so that the first
			// plan finds its code paths translated (guest.WarmUpAgain).
			conn = &afterFirstWrite{ReadWriteCloser: conn, then: guest.WarmUpAgain}
		}
		if status := serve(conn); status != 0 {
			err = fmt.Errorf("guest agent ended with status %d", status)
		}
	}
	if err != nil {
		logf("ccos-init: %v", err)
	} else {
		code = 0
	}
	logf("ccos-init: exit %d", code)
	PowerOff()
}

// afterFirstWrite runs then in the background once the first write (the
// guest's hello) has gone through.
type afterFirstWrite struct {
	io.ReadWriteCloser
	once sync.Once
	then func()
}

func (c *afterFirstWrite) Write(p []byte) (int, error) {
	n, err := c.ReadWriteCloser.Write(p)
	if err == nil {
		c.once.Do(func() { go c.then() })
	}
	return n, err
}

// PowerOff syncs and powers the machine off; it never returns.
func PowerOff() {
	unix.Sync()
	// Power-off needs ACPI, which the host keeps on; if it fails there is
	// nothing left to do but halt.
	if err := unix.Reboot(unix.LINUX_REBOOT_CMD_POWER_OFF); err != nil {
		logf("ccos-init: power off: %v", err)
	}
	for {
		time.Sleep(time.Hour)
	}
}

// Setup prepares the machine (see the package comment).
func Setup() (*Env, error) {
	if err := mountBase(); err != nil {
		return nil, err
	}
	mark("init started")
	p, err := readParams("/proc/cmdline")
	if err != nil {
		return nil, err
	}
	if err := loadModules("/lib/modules/order"); err != nil {
		return nil, err
	}
	mark("modules loaded")
	port := ""
	if p.vsockPort == 0 {
		if port, err = findPort(p.control, 10*time.Second); err != nil {
			return nil, err
		}
		mark("control port " + port)
	}
	env := &Env{Hold: p.hold, workdirMB: p.workdirMB}
	if err := setupLoopback(); err != nil {
		return nil, err
	}
	if p.net != nil {
		if err := setupNIC(p.net, 10*time.Second); err != nil {
			return nil, err
		}
		env.Proxy = p.proxy
		mark("network " + p.net.String() + ", proxy " + p.proxy)
	}
	if p.rootfs != "" {
		m, err := mountStore(p)
		if err != nil {
			return nil, err
		}
		env.Measurements = map[string]string{"rootfs": m}
	}
	if !p.hold {
		// A template's clones each mount their own after the wake-up.
		if err := mountWorkdir(p.workdirMB); err != nil {
			return nil, err
		}
	}
	mark("ready")
	if p.vsockPort != 0 {
		// Firecracker: the host connects to the guest's vsock port (its
		// "CONNECT PORT" handshake on the VM's Unix socket).
		if env.Port, err = AcceptVsock(p.vsockPort); err != nil {
			return nil, err
		}
		mark(fmt.Sprintf("control connection on vsock port %d", p.vsockPort))
		return env, nil
	}
	if env.Port, err = openPort(port); err != nil {
		return nil, fmt.Errorf("open control port: %w", err)
	}
	env.portPath = port
	return env, nil
}

// AcceptVsock listens on the vsock port and returns the first connection.
func AcceptVsock(port uint32) (*os.File, error) {
	fd, err := unix.Socket(unix.AF_VSOCK, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("vsock socket (are the vsock modules in the initramfs?): %w", err)
	}
	defer unix.Close(fd)
	if err := unix.Bind(fd, &unix.SockaddrVM{CID: unix.VMADDR_CID_ANY, Port: port}); err != nil {
		return nil, fmt.Errorf("vsock bind port %d: %w", port, err)
	}
	if err := unix.Listen(fd, 1); err != nil {
		return nil, fmt.Errorf("vsock listen: %w", err)
	}
	nfd, _, err := unix.Accept4(fd, unix.SOCK_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("vsock accept: %w", err)
	}
	return os.NewFile(uintptr(nfd), "vsock"), nil
}

// openPort opens the control port non-blocking, so that Go's poller
// serves it and closing it interrupts a read or write in progress: a
// transport the link has dropped can then never deliver stale bytes when
// the host comes back.
func openPort(path string) (*os.File, error) {
	fd, err := unix.Open(path, unix.O_RDWR|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("open control port: %w", err)
	}
	return os.NewFile(uintptr(fd), path), nil
}

// hostConnected reports whether the host end of the port is connected
// (virtio-serial reports POLLHUP while it is not). It polls through the
// file's raw connection, which leaves the descriptor non-blocking (the
// port can be open only once at a time, so it cannot be opened twice).
func hostConnected(f *os.File) bool {
	rc, err := f.SyscallConn()
	if err != nil {
		return false
	}
	ok := false
	rc.Control(func(fd uintptr) {
		fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLOUT}}
		n, err := unix.Poll(fds, 0)
		ok = err == nil && n > 0 && fds[0].Revents&unix.POLLHUP == 0
	})
	return ok
}

// Link returns the control stream. Over virtio-serial (QEMU) it is a link
// (package control/link) that survives the host side of the channel going
// away; over vsock (Firecracker) it is the connection itself.
// When the port reads EOF (the host's connection broke; QEMU reconnects),
// the port is opened again and attached, every 20 ms until it works, so
// nothing written either way is lost or repeated.
func (e *Env) Link() io.ReadWriteCloser {
	if e.portPath == "" {
		// A vsock connection (Firecracker): the host's provider speaks the
		// protocol directly on it.
		return e.Port
	}
	l := link.New(0)
	l.Attach(e.Port)
	go func() {
		for {
			if errors.Is(l.WaitDetached(), link.ErrClosed) {
				return
			}
			for {
				time.Sleep(20 * time.Millisecond)
				f, err := openPort(e.portPath)
				if err != nil {
					continue
				}
				if !hostConnected(f) {
					f.Close()
					continue
				}
				if errors.Is(l.Attach(f), link.ErrClosed) {
					f.Close()
					return
				}
				break
			}
		}
	}()
	return l
}

// console is the kernel console, once devtmpfs is mounted.
var console io.Writer = os.Stderr

// mark logs a boot milestone with the guest's uptime (CLOCK_BOOTTIME, the
// time since the kernel started, to the millisecond), so the console log
// shows where boot time goes; the host reads these lines back (package
// sandbox/qemu, ParseGuestMarks).
func mark(what string) {
	var ts unix.Timespec
	_ = unix.ClockGettime(unix.CLOCK_BOOTTIME, &ts)
	logf("ccos-init: %s at %d.%03ds", what, ts.Sec, ts.Nsec/1e6)
}

func logf(format string, args ...any) {
	fmt.Fprintf(console, format+"\n", args...)
}

func mountBase() error {
	for _, m := range []struct{ src, dst, fstype, data string }{
		{"devtmpfs", "/dev", "devtmpfs", "mode=0755"},
		{"proc", "/proc", "proc", ""},
		{"sysfs", "/sys", "sysfs", ""},
	} {
		if err := os.MkdirAll(m.dst, 0o755); err != nil {
			return err
		}
		if err := unix.Mount(m.src, m.dst, m.fstype, unix.MS_NOSUID|unix.MS_NOEXEC, m.data); err != nil && !errors.Is(err, unix.EBUSY) {
			return fmt.Errorf("mount %s: %w", m.dst, err)
		}
	}
	// Without a console (console=none) the kernel starts init with no
	// standard descriptors; fill them with /dev/null so that no file
	// opened later (the control port) becomes "standard error".
	for fd := 0; fd <= 2; fd++ {
		if _, err := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0); err == nil {
			continue
		}
		null, err := unix.Open("/dev/null", unix.O_RDWR, 0)
		if err != nil {
			return fmt.Errorf("open /dev/null: %w", err)
		}
		if null != fd {
			unix.Dup2(null, fd)
			unix.Close(null)
		}
	}
	if c, err := os.OpenFile("/dev/console", os.O_WRONLY, 0); err == nil {
		console = c
		// The guest agent writes its diagnostics to standard error.
		_ = unix.Dup2(int(c.Fd()), 2)
	}
	return nil
}

func readParams(path string) (bootParams, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return bootParams{}, err
	}
	return parseParams(string(b))
}

// parseParams reads the ccos.* words of a kernel command line.
func parseParams(cmdline string) (bootParams, error) {
	p := bootParams{control: "ctl", rootfsFS: "squashfs", workdirMB: 64}
	for _, w := range strings.Fields(cmdline) {
		k, v, ok := strings.Cut(w, "=")
		if !ok {
			continue
		}
		switch k {
		case "root":
			p.rootfs = v
			continue
		case "rootfstype":
			p.rootfsFS = v
			continue
		}
		if !strings.HasPrefix(k, "ccos.") {
			continue
		}
		switch k {
		case "ccos.control":
			if port, ok := strings.CutPrefix(v, "vsock:"); ok {
				n, err := strconv.ParseUint(port, 10, 32)
				if err != nil || n == 0 || n == math.MaxUint32 {
					return p, fmt.Errorf("kernel command line: bad ccos.control=%q (want vsock:PORT)", v)
				}
				p.vsockPort, p.control = uint32(n), "vsock"
				continue
			}
			name, ok := strings.CutPrefix(v, "virtio-serial:")
			if !ok {
				return p, fmt.Errorf("kernel command line: ccos.control=%q: this init speaks virtio-serial:NAME or vsock:PORT", v)
			}
			p.control = name
		case "ccos.net":
			ip, n, err := net.ParseCIDR(v)
			if err != nil || ip.To4() == nil {
				return p, fmt.Errorf("kernel command line: bad ccos.net=%q (want an IPv4 address/prefix)", v)
			}
			n.IP = ip.To4()
			p.net = n
		case "ccos.proxy":
			host, port, err := net.SplitHostPort(v)
			if err != nil || net.ParseIP(host).To4() == nil || port == "" {
				return p, fmt.Errorf("kernel command line: bad ccos.proxy=%q (want IPv4:port)", v)
			}
			p.proxy = v
		case "ccos.hold":
			if v != "1" {
				return p, fmt.Errorf("kernel command line: bad ccos.hold=%q (want 1)", v)
			}
			p.hold = true
		case "ccos.workdir_mb":
			n, err := strconv.Atoi(v)
			if err != nil || n <= 0 || n > 1<<16 {
				return p, fmt.Errorf("kernel command line: bad ccos.workdir_mb=%q", v)
			}
			p.workdirMB = n
		default:
			return p, fmt.Errorf("kernel command line: unknown parameter %s", k)
		}
	}
	if p.control == "" || strings.ContainsAny(p.control, "/\x00") {
		return p, fmt.Errorf("kernel command line: bad ccos.control=%q", p.control)
	}
	if (p.net == nil) != (p.proxy == "") {
		return p, errors.New("kernel command line: ccos.net and ccos.proxy go together")
	}
	if p.rootfs != "" && !strings.HasPrefix(p.rootfs, "/dev/") {
		return p, fmt.Errorf("kernel command line: root=%q is not a device", p.rootfs)
	}
	return p, nil
}

// loadModules loads each module file listed in order; a module that is
// already loaded (built in) is fine.
func loadModules(order string) error {
	f, err := os.Open(order)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		path := strings.TrimSpace(sc.Text())
		if path == "" || strings.HasPrefix(path, "#") {
			continue
		}
		if err := loadModule(path); err != nil {
			return err
		}
	}
	return sc.Err()
}

func loadModule(path string) error {
	m, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("module: %w", err)
	}
	defer m.Close()
	if err := unix.FinitModule(int(m.Fd()), "", 0); err != nil && !errors.Is(err, unix.EEXIST) {
		return fmt.Errorf("load module %s: %w", filepath.Base(path), err)
	}
	return nil
}

// findPort waits for the virtio-serial port called name and returns its
// device path.
func findPort(name string, wait time.Duration) (string, error) {
	deadline := time.Now().Add(wait)
	for {
		dirs, _ := filepath.Glob("/sys/class/virtio-ports/*")
		for _, d := range dirs {
			b, err := os.ReadFile(filepath.Join(d, "name"))
			if err != nil || strings.TrimSpace(string(b)) != name {
				continue
			}
			dev := "/dev/" + filepath.Base(d)
			if _, err := os.Stat(dev); err == nil {
				return dev, nil
			}
		}
		if time.Now().After(deadline) {
			return "", fmt.Errorf("no virtio-serial port named %q appeared within %v", name, wait)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// mountStore measures the rootfs device and mounts it read-only at /store.
func mountStore(p bootParams) (string, error) {
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, err := os.Stat(p.rootfs); err == nil {
			break
		}
		if time.Now().After(deadline) {
			return "", fmt.Errorf("rootfs device %s did not appear", p.rootfs)
		}
		time.Sleep(5 * time.Millisecond)
	}
	dev, err := os.Open(p.rootfs)
	if err != nil {
		return "", err
	}
	h := sha256.New()
	_, err = io.Copy(h, dev)
	dev.Close()
	if err != nil {
		return "", fmt.Errorf("measure %s: %w", p.rootfs, err)
	}
	sum := "sha256:" + hex.EncodeToString(h.Sum(nil))
	if err := os.MkdirAll("/store", 0o755); err != nil {
		return "", err
	}
	flags := uintptr(unix.MS_RDONLY | unix.MS_NODEV | unix.MS_NOSUID)
	if err := unix.Mount(p.rootfs, "/store", p.rootfsFS, flags, ""); err != nil {
		return "", fmt.Errorf("mount %s (%s) read-only at /store: %w", p.rootfs, p.rootfsFS, err)
	}
	if _, err := os.Lstat("/capabilities"); errors.Is(err, os.ErrNotExist) {
		_ = os.Symlink("/store/capabilities", "/capabilities")
	}
	return sum, nil
}

func mountWorkdir(mb int) error {
	if err := os.MkdirAll(guest.Workdir, 0o755); err != nil {
		return err
	}
	data := fmt.Sprintf("size=%dm,mode=0700", mb)
	if err := unix.Mount("tmpfs", guest.Workdir, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV, data); err != nil {
		return fmt.Errorf("mount workdir: %w", err)
	}
	return nil
}

// HoldForRestore is the template side of a snapshot start (the exchange
// is specified in package control, control.ReadWake): it tells the host
// the guest is warmed up and ready (the host then saves the VM) and waits.
// A clone restored from the snapshot continues here: it reads the host's
// wake-up, mixes its entropy into the kernel's pool and makes the kernel
// reseed its generator, takes the hostname and machine id it carries, and
// only then mounts its own empty workdir, so that no two clones share
// random numbers, an identity or files.
func (e *Env) HoldForRestore() error {
	if _, err := e.Port.Write([]byte{control.WakeReady}); err != nil {
		return fmt.Errorf("snapshot hold: %w", err)
	}
	// No host on the port (the template's host went away, or the clone's
	// has not attached yet) reads as nothing: wait.
	w, err := control.ReadWake(e.Port.Read, func() { time.Sleep(2 * time.Millisecond) })
	if err != nil {
		return err
	}
	mark("woken")
	if err := addEntropy(w.Entropy[:]); err != nil {
		return fmt.Errorf("snapshot wake-up: %w", err)
	}
	if err := takeIdentity(w); err != nil {
		return fmt.Errorf("snapshot wake-up: %w", err)
	}
	if err := mountWorkdir(e.workdirMB); err != nil {
		return err
	}
	mark("restored from snapshot as " + w.Hostname)
	e.clone = true
	return nil
}

// takeIdentity makes the wake-up's hostname and machine id the clone's.
func takeIdentity(w *control.Wake) error {
	if err := unix.Sethostname([]byte(w.Hostname)); err != nil {
		return fmt.Errorf("sethostname: %w", err)
	}
	if err := os.MkdirAll("/etc", 0o755); err != nil {
		return err
	}
	return os.WriteFile("/etc/machine-id", []byte(hex.EncodeToString(w.MachineID[:])+"\n"), 0o444)
}

// Linux's RNDADDENTROPY (_IOW('R', 3, int[2])) and RNDRESEEDCRNG
// (_IO('R', 7)).
const (
	ioctlRNDADDENTROPY = 0x40085203
	ioctlRNDRESEEDCRNG = 0x5207
)

// addEntropy credits the bytes to the kernel's pool and reseeds its
// generator at once.
func addEntropy(b []byte) error {
	f, err := os.OpenFile("/dev/urandom", os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	// struct rand_pool_info { int entropy_count; int buf_size; __u32 buf[]; }
	info := make([]byte, 8+len(b))
	binary.LittleEndian.PutUint32(info[0:4], uint32(8*len(b)))
	binary.LittleEndian.PutUint32(info[4:8], uint32(len(b)))
	copy(info[8:], b)
	if _, _, e := unix.Syscall(unix.SYS_IOCTL, f.Fd(), ioctlRNDADDENTROPY, uintptr(unsafe.Pointer(&info[0]))); e != 0 {
		return fmt.Errorf("RNDADDENTROPY: %w", e)
	}
	if _, _, e := unix.Syscall(unix.SYS_IOCTL, f.Fd(), ioctlRNDRESEEDCRNG, 0); e != 0 {
		return fmt.Errorf("RNDRESEEDCRNG: %w", e)
	}
	return nil
}
