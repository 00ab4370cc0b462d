//go:build linux

package qemu

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/ccos-project/ccos/config"
	"github.com/ccos-project/ccos/control/link"
	"github.com/ccos-project/ccos/guest/vminit"
	"github.com/ccos-project/ccos/sandbox"
	"github.com/ccos-project/ccos/vmspec"
	"github.com/digitalocean/go-qemu/qmp"
)

// The image files are QEMU's descriptors 3, 4 and 5.
const (
	fdKernel = "/proc/self/fd/3"
	fdInitrd = "/proc/self/fd/4"
	fdRootfs = "/proc/self/fd/5"
	// fdSnapshot is the descriptor of a snapshot file, saved to or
	// restored from.
	fdSnapshot = 6
)

// Start boots a guest VM (or restores one from a snapshot, see
// Options.SnapshotDir) and returns once the guest has said hello.
func (p *Provider) Start(ctx context.Context, sp sandbox.Spec) (sandbox.Sandbox, error) {
	if p.o.Image == nil {
		return nil, fmt.Errorf("%w: qemu: no guest image source configured", sandbox.ErrUnavailable)
	}
	lim := sp.Limits.WithDefaults()
	img, err := p.o.Image(ctx)
	if err != nil {
		return nil, fmt.Errorf("qemu: guest image: %w", err)
	}
	files, meas, err := openMeasured(img)
	if err != nil {
		return nil, err
	}
	defer closeAll(files)
	cfg := p.vmConfig(lim)
	if a := cfg.MicroVM.Attestation; a.Enabled && a.ExpectRootfsHash != nil && *a.ExpectRootfsHash != meas["rootfs"] {
		return nil, &sandbox.AttestationError{Artifact: "rootfs " + img.Rootfs, Expected: *a.ExpectRootfsHash,
			Actual: meas["rootfs"], Measurements: meas}
	}
	var l launch
	if p.snapshots(cfg) {
		snap, err := p.snapshot(ctx, sp, cfg, lim, files, meas)
		if err != nil {
			return nil, err
		}
		defer snap.Close()
		l = launch{hold: true, incoming: snap}
	}
	b, conn, exited, err := p.launch(ctx, sp, cfg, lim, files, meas, l)
	if err != nil {
		return nil, err
	}
	if l.incoming != nil {
		// The restored guest waits on the raw port for the go and fresh
		// entropy (vminit.HoldForRestore); then the link starts.
		msg := make([]byte, 1+vminit.HoldEntropy)
		msg[0] = 'G'
		rand.Read(msg[1:])
		if _, err := conn.Write(msg); err != nil {
			b.Stop(sandbox.ExitSetup, err.Error())
			<-b.Done()
			return nil, fmt.Errorf("qemu: waking the restored guest: %w%s", err, logSuffix(b.Log()))
		}
	}
	// The control stream runs over a link (package control/link): when the
	// connection breaks, QEMU reconnects to the socket (reconnect=1), the
	// next connection is attached, and nothing is lost or repeated.
	b.link = link.New(0)
	b.link.Attach(conn)
	go b.reattach(b.ln)
	// The sandbox is started when the guest is ready: its first bytes (the
	// hello) have arrived. They are kept for the reader of Control, so a
	// pool holds booted guests, not booting ones.
	first, err := firstBytes(b.link, exited, p.o.BootTimeout)
	if err != nil {
		b.Stop(sandbox.ExitSetup, err.Error())
		<-b.Done()
		return nil, fmt.Errorf("qemu: %w%s", err, logSuffix(b.Log()))
	}
	b.conn = &readyConn{ReadWriteCloser: b.link, first: first}
	b.Arm(ctx, lim.Deadline)
	return b, nil
}

// launch says how to start QEMU beyond the config: hold (a snapshot
// template, or a copy of one: ccos.hold=1 on the kernel command line) and
// incoming (restore the VM saved in this file, QEMU's descriptor 6).
type launch struct {
	hold     bool
	incoming *os.File
}

// launch starts QEMU for cfg and returns the box and the first control
// connection QEMU made (raw: the caller decides what runs on it), and a
// channel closed when QEMU exits.
func (p *Provider) launch(ctx context.Context, sp sandbox.Spec, cfg *config.Config, lim sandbox.Limits, files []*os.File, meas map[string]string, l launch) (*box, *net.UnixConn, <-chan struct{}, error) {
	accel, _ := p.accel()
	root := p.o.RuntimeDir
	if root == "" {
		root = os.TempDir()
	}
	if err := reachable(root); err != nil {
		return nil, nil, nil, fmt.Errorf("qemu: runtime directory: %w", err)
	}
	dir, err := os.MkdirTemp(root, "ccos-q")
	if err != nil {
		return nil, nil, nil, fmt.Errorf("qemu: runtime directory: %w", err)
	}
	host := vmspec.Host{RuntimeDir: dir, Initrd: fdInitrd, Accel: accel, QEMUBinary: p.binary(), TSCKHz: tscKHz(),
		WorkdirMiB: int(lim.WorkdirBytes >> 20), Hold: l.hold}
	extra := append([]*os.File(nil), files...)
	if l.incoming != nil {
		host.Incoming = fdSnapshot
		extra = append(extra, l.incoming)
	}
	paths := host.Paths(cfg)
	b := &box{id: sp.ID, dir: dir, qmpPath: paths.QMPSocket, serialLog: paths.SerialLog, lim: lim, meas: meas,
		log: &sandbox.LogBuffer{Max: lim.LogBytes}}
	b.Init(b.kill)
	fail := func(err error) (*box, *net.UnixConn, <-chan struct{}, error) {
		os.RemoveAll(dir)
		return nil, nil, nil, err
	}
	// QEMU (unprivileged) creates its monitor socket and console log in
	// the VM's directory and connects to the control socket there.
	if err := prepareDirs(dir, paths.Dir, p.o.UID, p.o.GID); err != nil {
		return fail(fmt.Errorf("qemu: runtime directory: %w", err))
	}
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: paths.ControlSocket, Net: "unix"})
	if err != nil {
		return fail(fmt.Errorf("qemu: control socket: %w", err))
	}
	b.ln = ln
	if err := os.Chown(paths.ControlSocket, int(p.o.UID), int(p.o.GID)); err != nil {
		ln.Close()
		return fail(fmt.Errorf("qemu: control socket: %w", err))
	}
	argv, err := vmspec.QEMU(cfg, host)
	if err != nil {
		ln.Close()
		return fail(fmt.Errorf("qemu: %w", err))
	}
	if nic := cfg.MicroVM.Devices.NIC; nic.Enabled {
		nsName := "ccos-" + filepath.Base(dir)
		if nic.ProxyNS != nil && *nic.ProxyNS != "" {
			nsName = *nic.ProxyNS + "-" + filepath.Base(dir)
		}
		if b.nic, err = setupNIC(nsName, vmspec.TapName(vmspec.VMName(cfg.AgentID, host.Instance)), p.o.UID, p.o.GID, p.o.Proxy); err != nil {
			ln.Close()
			return fail(fmt.Errorf("qemu: %w", err))
		}
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Dir = paths.Dir
	cmd.Env = []string{"PATH=/usr/bin:/bin"}
	cmd.Stdin = nil
	cmd.Stdout, cmd.Stderr = b.log, b.log
	cmd.ExtraFiles = extra
	cred := &syscall.Credential{Uid: p.o.UID, Gid: p.o.GID}
	if accel == "kvm" {
		if g, err := user.LookupGroup("kvm"); err == nil {
			if gid, err := strconv.Atoi(g.Gid); err == nil {
				cred.Groups = []uint32{uint32(gid)}
			}
		}
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL, Credential: cred}
	b.cmd = cmd
	b.started = time.Now()
	start := cmd.Start
	if b.nic != nil {
		start = func() error { return b.nic.startIn(cmd) }
	}
	if err := start(); err != nil {
		ln.Close()
		b.nic.close()
		return fail(fmt.Errorf("qemu: starting %s: %w", argv[0], err))
	}
	exited := make(chan struct{})
	go b.monitor(exited)
	conn, err := accept(ctx, ln, exited, p.o.BootTimeout)
	if err != nil {
		b.Stop(sandbox.ExitSetup, err.Error())
		<-b.Done()
		return nil, nil, nil, fmt.Errorf("qemu: %w%s", err, logSuffix(b.Log()))
	}
	return b, conn, exited, nil
}

// vmConfig is the config the command line is synthesised from: the
// provider's, with the image files replaced by QEMU's inherited
// descriptors, and defaults where :microvm says nothing.
func (p *Provider) vmConfig(lim sandbox.Limits) *config.Config {
	var cfg config.Config
	if p.o.Config != nil {
		cfg = *p.o.Config
	}
	var vm config.MicroVM
	if cfg.MicroVM != nil {
		vm = *cfg.MicroVM
	}
	vm.Kernel.Image = fdKernel
	vm.Rootfs = config.Rootfs{Image: fdRootfs, RO: true}
	if vm.Resources.VCPUs <= 0 {
		vm.Resources.VCPUs = 1
	}
	if vm.Resources.MemMB <= 0 {
		vm.Resources.MemMB = int(lim.MemoryBytes >> 20)
	}
	cfg.MicroVM = &vm
	if cfg.AgentID == "" {
		cfg.AgentID = "ccos"
	}
	return &cfg
}

// openMeasured opens the image files and measures them through the open
// descriptors that QEMU inherits, so what boots is what was measured even
// if a path is replaced in between.
func openMeasured(img Image) ([]*os.File, map[string]string, error) {
	var files []*os.File
	meas := map[string]string{}
	for _, a := range []struct{ name, path string }{{"kernel", img.Kernel}, {"initrd", img.Initrd}, {"rootfs", img.Rootfs}} {
		f, err := os.Open(a.path)
		if err != nil {
			closeAll(files)
			return nil, nil, fmt.Errorf("qemu: guest %s: %w", a.name, err)
		}
		files = append(files, f)
		fi, err := f.Stat()
		if err != nil || !fi.Mode().IsRegular() {
			closeAll(files)
			return nil, nil, fmt.Errorf("qemu: guest %s %s is not a regular file", a.name, a.path)
		}
		if fi.Mode().Perm()&0o004 == 0 {
			closeAll(files)
			return nil, nil, fmt.Errorf("qemu: guest %s %s is not world-readable; QEMU runs unprivileged and must read it (chmod 0644)", a.name, a.path)
		}
		m, err := measure(f, fi)
		if err != nil {
			closeAll(files)
			return nil, nil, fmt.Errorf("qemu: measuring %s: %w", a.path, err)
		}
		meas[a.name] = m
	}
	return files, meas, nil
}

// measured remembers measurements by file identity and change time: a
// file whose device, inode, size, modification and change times are all
// the same has not been written since (any write moves its ctime, which
// only the kernel sets), so it is not hashed again. The VM still boots the
// open descriptor that was checked.
var measured sync.Map // fileID -> string

type fileID struct {
	dev, ino     uint64
	size         int64
	mtime, ctime int64
}

func measure(f *os.File, fi os.FileInfo) (string, error) {
	var id fileID
	st, ok := fi.Sys().(*syscall.Stat_t)
	if ok {
		id = fileID{dev: st.Dev, ino: st.Ino, size: st.Size, mtime: st.Mtim.Nano(), ctime: st.Ctim.Nano()}
		if m, ok := measured.Load(id); ok {
			return m.(string), nil
		}
	}
	h := sha256.New()
	if _, err := io.Copy(h, io.NewSectionReader(f, 0, fi.Size())); err != nil {
		return "", err
	}
	m := "sha256:" + hex.EncodeToString(h.Sum(nil))
	// Keep it only if nothing changed while hashing.
	if after, err := f.Stat(); ok && err == nil {
		if st2, ok2 := after.Sys().(*syscall.Stat_t); ok2 && st2.Ctim.Nano() == id.ctime && st2.Size == id.size {
			measured.Store(id, m)
		}
	}
	return m, nil
}

func closeAll(files []*os.File) {
	for _, f := range files {
		f.Close()
	}
}

// reachable checks that every directory from / to dir lets others
// traverse it: QEMU runs unprivileged and must reach its sockets.
func reachable(dir string) error {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return err
	}
	for d := abs; ; d = filepath.Dir(d) {
		fi, err := os.Stat(d)
		if err != nil {
			return err
		}
		if fi.Mode().Perm()&0o001 == 0 {
			return fmt.Errorf("%s is not reachable by QEMU's unprivileged user (it lacks the others-execute bit); choose another runtime directory or chmod o+x it", d)
		}
		if d == "/" {
			return nil
		}
	}
}

// prepareDirs makes the runtime directory traversable and the VM's own
// directory QEMU's.
func prepareDirs(root, vmDir string, uid, gid uint32) error {
	if err := os.Chmod(root, 0o711); err != nil {
		return err
	}
	if err := os.MkdirAll(vmDir, 0o700); err != nil {
		return err
	}
	for d := vmDir; d != root && len(d) > len(root); d = filepath.Dir(d) {
		if err := os.Chmod(d, 0o711); err != nil {
			return err
		}
	}
	if err := os.Chmod(vmDir, 0o700); err != nil {
		return err
	}
	return os.Chown(vmDir, int(uid), int(gid))
}

// accept waits for QEMU's connection to the control socket.
func accept(ctx context.Context, ln *net.UnixListener, exited <-chan struct{}, timeout time.Duration) (*net.UnixConn, error) {
	type result struct {
		c   *net.UnixConn
		err error
	}
	ch := make(chan result, 1)
	go func() {
		c, err := ln.AcceptUnix()
		ch <- result{c, err}
	}()
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case r := <-ch:
		if r.err != nil {
			return nil, fmt.Errorf("control socket: %w", r.err)
		}
		return r.c, nil
	case <-exited:
		ln.Close()
		return nil, errors.New("QEMU exited before connecting the control channel")
	case <-t.C:
		ln.Close()
		return nil, fmt.Errorf("QEMU did not connect the control channel within %v", timeout)
	case <-ctx.Done():
		ln.Close()
		return nil, context.Cause(ctx)
	}
}

// firstBytes waits for the guest's first bytes on the control stream.
func firstBytes(l *link.Conn, exited <-chan struct{}, timeout time.Duration) ([]byte, error) {
	type result struct {
		b   []byte
		err error
	}
	ch := make(chan result, 1)
	go func() {
		buf := make([]byte, 4096)
		n, err := l.Read(buf)
		ch <- result{buf[:n], err}
	}()
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case r := <-ch:
		if len(r.b) > 0 {
			return r.b, nil
		}
		return nil, fmt.Errorf("the guest ended before it was ready: %v", r.err)
	case <-exited:
		l.Abort()
		return nil, errors.New("the guest ended before it was ready (QEMU exited)")
	case <-t.C:
		l.Abort()
		return nil, fmt.Errorf("the guest did not become ready within %v", timeout)
	}
}

// reattach attaches every later connection QEMU makes to the control
// socket (after the previous one broke) to the link, until the VM ends.
func (b *box) reattach(ln *net.UnixListener) {
	for {
		c, err := ln.AcceptUnix()
		if err != nil {
			return
		}
		if b.link.Attach(c) != nil {
			return
		}
	}
}

// readyConn is the control stream with the guest's first bytes, read
// while waiting for it to be ready, put back in front.
type readyConn struct {
	io.ReadWriteCloser
	mu    sync.Mutex
	first []byte
}

func (c *readyConn) Read(p []byte) (int, error) {
	c.mu.Lock()
	if len(c.first) > 0 {
		n := copy(p, c.first)
		c.first = c.first[n:]
		c.mu.Unlock()
		return n, nil
	}
	c.mu.Unlock()
	return c.ReadWriteCloser.Read(p)
}

func logSuffix(log []byte) string {
	if len(log) == 0 {
		return ""
	}
	if len(log) > 2000 {
		log = log[len(log)-2000:]
	}
	return "\nQEMU and console log:\n" + string(log)
}

// box is one running VM.
type box struct {
	id, dir, qmpPath, serialLog string
	lim                         sandbox.Limits
	meas                        map[string]string
	cmd                         *exec.Cmd
	conn                        *readyConn
	link                        *link.Conn
	ln                          *net.UnixListener
	log                         *sandbox.LogBuffer
	started                     time.Time
	nic                         *nicNet // nil without a NIC

	// Wait, Kill and the stop bookkeeping.
	sandbox.Lifecycle
}

// Control returns the host end of the virtio-serial control port.
func (b *box) Control() io.ReadWriteCloser { return b.conn }

// Measurements returns the host's measurements of the booted image.
func (b *box) Measurements() map[string]string {
	out := make(map[string]string, len(b.meas))
	for k, v := range b.meas {
		out[k] = v
	}
	return out
}

// HostPIDs returns QEMU's process id.
func (b *box) HostPIDs() []int { return []int{b.cmd.Process.Pid} }

// Log returns QEMU's own messages and, once it has exited, the guest
// console, bounded by Limits.LogBytes.
func (b *box) Log() []byte { return b.log.Bytes() }

// kill ends the VM: QMP "quit" first, then SIGKILL to QEMU's process
// group if it is still there a second later.
func (b *box) kill() {
	go func() {
		if err := quit(b.qmpPath); err == nil {
			select {
			case <-b.Done():
				return
			case <-time.After(time.Second):
			}
		}
		_ = syscall.Kill(-b.cmd.Process.Pid, syscall.SIGKILL)
	}()
}

// quit asks QEMU to exit over its monitor socket.
func quit(path string) error {
	m, err := qmp.NewSocketMonitor("unix", path, 500*time.Millisecond)
	if err != nil {
		return err
	}
	if err := m.Connect(); err != nil {
		return err
	}
	defer m.Disconnect()
	_, err = m.Run([]byte(`{"execute":"quit"}`))
	return err
}

// monitor waits for QEMU, collects the console log and removes the VM's
// directory.
func (b *box) monitor(exited chan<- struct{}) {
	waitErr := b.cmd.Wait()
	close(exited)
	if b.ln != nil {
		b.ln.Close()
	}
	if b.link != nil {
		// The guest is gone: whoever reads the stream gets what arrived,
		// then EOF.
		b.link.Abort()
	}
	b.Exited()
	if f, err := os.Open(b.serialLog); err == nil {
		io.Copy(b.log, io.LimitReader(f, b.lim.LogBytes))
		f.Close()
	}
	cleanupErr := errors.Join(b.nic.close(), os.RemoveAll(b.dir))
	err := b.classify(waitErr)
	if err == nil && cleanupErr != nil {
		err = fmt.Errorf("qemu sandbox %q: cleanup: %w", b.id, cleanupErr)
	}
	b.Finish(err)
}

// classify says how the VM ended: a host decision first, then QEMU's exit.
// QEMU exits 0 when the guest powers off.
func (b *box) classify(waitErr error) error {
	if err := b.HostError(int(syscall.SIGKILL)); err != nil {
		return err
	}
	ps := b.cmd.ProcessState
	if ps == nil {
		return &sandbox.ExitError{Reason: sandbox.ExitSetup, Status: -1, Detail: fmt.Sprint(waitErr)}
	}
	if ps.Success() {
		return nil
	}
	if ws, ok := ps.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		return &sandbox.ExitError{Reason: sandbox.ExitSignal, Status: int(ws.Signal()), Detail: "QEMU was killed"}
	}
	return &sandbox.ExitError{Reason: sandbox.ExitStatus, Status: ps.ExitCode(), Detail: "QEMU failed"}
}
