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
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/ccos-project/ccos/config"
	"github.com/ccos-project/ccos/control"
	"github.com/ccos-project/ccos/control/link"
	"github.com/ccos-project/ccos/sandbox"
	"github.com/ccos-project/ccos/vmspec"
)

// The image files are QEMU's descriptors 3, 4 and 5; descriptors a role
// adds (a template's memory, a clone's device state) follow.
const (
	fdKernel = "/proc/self/fd/3"
	fdInitrd = "/proc/self/fd/4"
	fdRootfs = "/proc/self/fd/5"
)

// role is what one QEMU start is for.
type role int

const (
	// roleBoot boots the guest from its image.
	roleBoot role = iota
	// roleTemplate boots a snapshot template: its RAM is a memfd mapped
	// shared, its guest warms up and waits for a wake-up (ccos.hold=1).
	roleTemplate
	// roleClone restores a clone of a template: the template's RAM
	// mapped private (copy on write), only the device state read.
	roleClone
)

// starter holds what the steps of one start build; on failure undo
// releases it.
type starter struct {
	p    *Provider
	ctx  context.Context
	spec sandbox.Spec
	lim  sandbox.Limits
	cfg  *config.Config
	role role

	img   Image
	files []*os.File // the image files, measured; QEMU's descriptors 3-5
	meas  map[string]string
	tmpl  *template // roleClone: the template; roleTemplate: its memory
	mem   *os.File  // roleTemplate: the memfd that becomes the template's RAM
	state *os.File  // roleClone: the template's device state, opened for this clone
	// extra are the descriptors QEMU inherits from 3 on; stateFD is the
	// state's among them.
	extra   []*os.File
	stateFD int

	host  vmspec.Host
	paths vmspec.VMPaths
	dir   string
	ln    *net.UnixListener
	argv  []string
	nic   *nicNet
	b     *box
	// exited is closed when QEMU has exited.
	exited <-chan struct{}
	conn   *net.UnixConn
	// times are the steps' durations so far.
	times []StepTime
}

// step is one named step of a start.
type step struct {
	name string
	run  func(*starter) error
}

// imageSteps resolve, measure and attest the guest image.
var imageSteps = []step{
	{"resolve-image", (*starter).resolveImage},
	{"measure-image", (*starter).measureImage},
	{"attest-rootfs", (*starter).attestRootfs},
}

// launchSteps start QEMU and accept its control connection, for every
// role.
var launchSteps = []step{
	{"make-runtime-dir", (*starter).makeRuntimeDir},
	{"listen-control", (*starter).listenControl},
	{"synthesise-command-line", (*starter).synthesise},
	{"setup-nic", (*starter).setupNIC},
	{"start-qemu", (*starter).startQEMU},
	{"restore-device-state", (*starter).restoreDeviceState},
	{"accept-control", (*starter).acceptControl},
}

// startSteps is Start, in order: a boot, or (with Options.SnapshotDir) a
// clone of the template, which find-template makes on first use.
var startSteps = concat(imageSteps, []step{{"find-template", (*starter).findTemplate}}, launchSteps, []step{
	{"wake-clone", (*starter).wakeClone},
	{"await-hello", (*starter).awaitHello},
})

// templateSteps boot a template guest and save it (see makeTemplate).
var templateSteps = concat([]step{{"create-template-memory", (*starter).createTemplateMemory}}, launchSteps, []step{
	{"await-template-ready", (*starter).awaitTemplateReady},
})

func concat(lists ...[]step) []step {
	var out []step
	for _, l := range lists {
		out = append(out, l...)
	}
	return out
}

// StepNames lists the names of Start's steps, in order.
func StepNames() []string {
	out := make([]string, len(startSteps))
	for i, s := range startSteps {
		out[i] = s.name
	}
	return out
}

// run runs steps in order; a failed step undoes what the steps built and
// is named in the error.
func (st *starter) run(steps []step) error {
	for _, s := range steps {
		t0 := time.Now()
		if err := s.run(st); err != nil {
			st.undo(err)
			err = fmt.Errorf("qemu sandbox %q: %s: %w", st.spec.ID, s.name, err)
			if st.b != nil {
				// What QEMU and the guest's console said says why.
				if tail := strings.TrimSpace(string(st.b.Log())); tail != "" {
					if len(tail) > 2000 {
						tail = "..." + tail[len(tail)-2000:]
					}
					err = fmt.Errorf("%w\nQEMU log:\n%s", err, tail)
				}
			}
			return err
		}
		st.times = append(st.times, StepTime{Name: s.name, Took: time.Since(t0)})
	}
	if st.b != nil {
		st.b.steps = st.times
	}
	return nil
}

// undo releases whatever the steps built, after a failed step. Once QEMU
// has started, its box owns the runtime directory, the listener and the
// NIC, and releases them when QEMU has exited.
func (st *starter) undo(cause error) {
	if st.b != nil && st.b.cmd.Process != nil {
		st.b.Stop(sandbox.ExitSetup, cause.Error())
		<-st.b.Done()
		return
	}
	if st.ln != nil {
		st.ln.Close()
	}
	st.nic.close()
	if st.dir != "" {
		os.RemoveAll(st.dir)
	}
}

// release closes the descriptors the start opened for QEMU, which has its
// own copies once it runs.
func (st *starter) release() {
	closeAll(st.files)
	if st.state != nil {
		st.state.Close()
	}
	if st.mem != nil {
		st.mem.Close()
	}
}

// Start boots a guest VM, or clones one from a template (see
// Options.SnapshotDir), and returns once the guest has said hello.
func (p *Provider) Start(ctx context.Context, sp sandbox.Spec) (sandbox.Sandbox, error) {
	if p.o.Image == nil {
		return nil, fmt.Errorf("%w: qemu: no guest image source configured", sandbox.ErrUnavailable)
	}
	st := &starter{p: p, ctx: ctx, spec: sp, lim: sp.Limits.WithDefaults(), role: roleBoot}
	st.cfg = p.vmConfig(st.lim)
	defer st.release()
	if err := st.run(startSteps); err != nil {
		return nil, err
	}
	st.b.Arm(ctx, st.lim.Deadline)
	return st.b, nil
}

func (st *starter) resolveImage() (err error) {
	st.img, err = st.p.o.Image(st.ctx)
	return err
}

func (st *starter) measureImage() (err error) {
	st.files, st.meas, err = st.p.openMeasured(st.img)
	return err
}

// attestRootfs refuses a rootfs that differs from the config's
// :expect_rootfs_hash when :microvm :attestation is on.
func (st *starter) attestRootfs() error {
	if a := st.cfg.MicroVM.Attestation; a.Enabled && a.ExpectRootfsHash != nil && *a.ExpectRootfsHash != st.meas["rootfs"] {
		return &sandbox.AttestationError{Artifact: "rootfs " + st.img.Rootfs, Expected: *a.ExpectRootfsHash,
			Actual: st.meas["rootfs"], Measurements: st.meas}
	}
	return nil
}

// findTemplate makes this start a clone of the VM's template when
// snapshots are on, making the template first if there is none; the
// template's measurements join the image's.
func (st *starter) findTemplate() error {
	if !st.p.snapshots(st.cfg) {
		return nil
	}
	t, err := st.p.template(st.ctx, st.spec, st.cfg, st.lim, st.files, st.meas)
	if err != nil {
		return err
	}
	if st.state, err = t.openState(); err != nil {
		return err
	}
	st.role, st.tmpl = roleClone, t
	for k, v := range t.meas {
		st.meas[k] = v
	}
	return nil
}

func (st *starter) makeRuntimeDir() error {
	root := st.p.o.RuntimeDir
	if root == "" {
		root = os.TempDir()
	}
	if err := reachable(root); err != nil {
		return err
	}
	dir, err := os.MkdirTemp(root, "ccos-q")
	if err != nil {
		return err
	}
	st.dir = dir
	accel, _ := st.p.accel()
	st.host = vmspec.Host{RuntimeDir: dir, Initrd: fdInitrd, Accel: accel, QEMUBinary: st.p.binary(), TSCKHz: tscKHz(),
		WorkdirMiB: int(st.lim.WorkdirBytes >> 20), TBSizeMiB: st.p.o.TBSizeMiB}
	st.extra = append([]*os.File(nil), st.files...)
	switch st.role {
	case roleTemplate:
		st.host.Hold = true
		st.host.MemoryBackend, st.host.MemoryShared = fdPath(st.passFD(st.mem)), true
	case roleClone:
		st.host.Hold = true
		st.host.MemoryBackend = fdPath(st.passFD(st.tmpl.mem))
		st.stateFD = st.passFD(st.state)
		st.host.Incoming = "defer"
	}
	st.paths = st.host.Paths(st.cfg)
	// QEMU (unprivileged) creates its monitor socket and console log in
	// the VM's directory and connects to the control socket there.
	return prepareDirs(dir, st.paths.Dir, st.p.o.UID, st.p.o.GID)
}

// passFD passes f to QEMU and returns its descriptor number there.
func (st *starter) passFD(f *os.File) int {
	st.extra = append(st.extra, f)
	return 2 + len(st.extra)
}

func fdPath(fd int) string { return "/proc/self/fd/" + strconv.Itoa(fd) }

func (st *starter) listenControl() (err error) {
	st.ln, err = net.ListenUnix("unix", &net.UnixAddr{Name: st.paths.ControlSocket, Net: "unix"})
	if err != nil {
		return err
	}
	return os.Chown(st.paths.ControlSocket, int(st.p.o.UID), int(st.p.o.GID))
}

func (st *starter) synthesise() (err error) {
	st.argv, err = vmspec.QEMU(st.cfg, st.host)
	return err
}

func (st *starter) setupNIC() (err error) {
	nic := st.cfg.MicroVM.Devices.NIC
	if !nic.Enabled {
		return nil
	}
	nsName := "ccos-" + filepath.Base(st.dir)
	if nic.ProxyNS != nil && *nic.ProxyNS != "" {
		nsName = *nic.ProxyNS + "-" + filepath.Base(st.dir)
	}
	st.nic, err = setupNIC(nsName, vmspec.TapName(vmspec.VMName(st.cfg.AgentID, st.host.Instance)), st.p.o.UID, st.p.o.GID, st.p.o.Proxy)
	return err
}

// startQEMU starts QEMU as the unprivileged user in its own process group;
// from here on the box owns the runtime directory, listener and NIC.
func (st *starter) startQEMU() error {
	b := &box{id: st.spec.ID, dir: st.dir, qmpPath: st.paths.QMPSocket, serialLog: st.paths.SerialLog, lim: st.lim,
		meas: st.meas, log: &sandbox.LogBuffer{Max: st.lim.LogBytes}, ln: st.ln, nic: st.nic, role: st.role}
	b.Init(b.kill)
	cmd := exec.Command(st.argv[0], st.argv[1:]...)
	cmd.Dir = st.paths.Dir
	cmd.Env = []string{"PATH=/usr/bin:/bin"}
	cmd.Stdout, cmd.Stderr = b.log, b.log
	cmd.ExtraFiles = st.extra
	cred := &syscall.Credential{Uid: st.p.o.UID, Gid: st.p.o.GID}
	if st.host.Accel == "kvm" {
		if g, err := user.LookupGroup("kvm"); err == nil {
			if gid, err := strconv.Atoi(g.Gid); err == nil {
				cred.Groups = []uint32{uint32(gid)}
			}
		}
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL, Credential: cred}
	b.cmd = cmd
	start := cmd.Start
	if st.nic != nil {
		start = func() error { return st.nic.startIn(cmd) }
	}
	b.started = time.Now()
	if err := start(); err != nil {
		return fmt.Errorf("starting %s: %w", st.argv[0], err)
	}
	st.b = b
	exited := make(chan struct{})
	st.exited = exited
	go b.monitor(exited)
	return nil
}

// restoreDeviceState has a clone's QEMU (started with -incoming defer) map
// the template's RAM as it is and read only the device state: the
// x-ignore-shared capability leaves out RAM the source shared, which is
// the template's memory file.
func (st *starter) restoreDeviceState() error {
	if st.role != roleClone {
		return nil
	}
	m, err := dialMonitor(st.paths.QMPSocket, st.p.o.BootTimeout, 5*time.Second)
	if err != nil {
		return fmt.Errorf("%w%s", err, logSuffix(st.b.Log()))
	}
	defer m.close()
	if err := m.setCapability("x-ignore-shared", true); err != nil {
		return err
	}
	return m.migrateIncoming("fd:" + strconv.Itoa(st.stateFD))
}

func (st *starter) acceptControl() (err error) {
	st.conn, err = accept(st.ctx, st.ln, st.exited, st.p.o.BootTimeout)
	if err != nil {
		return fmt.Errorf("%w%s", err, logSuffix(st.b.Log()))
	}
	st.b.connected = time.Now()
	return nil
}

// wakeClone hands the restored guest, still waiting in the template's
// hold, fresh entropy and an identity of its own (control.Wake).
func (st *starter) wakeClone() error {
	if st.role != roleClone {
		return nil
	}
	w := &control.Wake{}
	rand.Read(w.Entropy[:])
	rand.Read(w.MachineID[:])
	w.Hostname = "ccos-" + hex.EncodeToString(w.MachineID[:6])
	st.b.hostname, st.b.machineID = w.Hostname, hex.EncodeToString(w.MachineID[:])
	if err := control.WriteWake(st.conn, w); err != nil {
		return fmt.Errorf("waking the clone: %w%s", err, logSuffix(st.b.Log()))
	}
	return nil
}

// awaitHello puts the control connection on a link and waits for the
// guest's first bytes (its hello): the sandbox is then ready, so a pool
// holds booted guests, not booting ones. The bytes are kept for the reader
// of Control.
func (st *starter) awaitHello() error {
	b := st.b
	// When the connection breaks, QEMU reconnects to the socket
	// (reconnect=1), the next connection is attached, and nothing is lost
	// or repeated.
	b.link = link.New(0)
	b.link.Attach(st.conn)
	go b.reattach(b.ln)
	first, err := firstBytes(b.link, st.exited, st.p.o.BootTimeout)
	if err != nil {
		return fmt.Errorf("%w%s", err, logSuffix(b.Log()))
	}
	b.ready = time.Now()
	b.readyCPU = processCPU(b.cmd.Process.Pid)
	b.conn = &readyConn{ReadWriteCloser: b.link, first: first}
	return nil
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
func (p *Provider) openMeasured(img Image) ([]*os.File, map[string]string, error) {
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
		m, err := p.measure(f, fi)
		if err != nil {
			closeAll(files)
			return nil, nil, fmt.Errorf("qemu: measuring %s: %w", a.path, err)
		}
		meas[a.name] = m
	}
	return files, meas, nil
}

type fileID struct {
	dev, ino     uint64
	size         int64
	mtime, ctime int64
}

// measure hashes f, or returns the measurement the provider remembers for
// it: a file whose device, inode, size, modification and change times are
// all the same has not been written since (any write moves its ctime,
// which only the kernel sets), so it is not hashed again. The VM still
// boots the open descriptor that was checked.
func (p *Provider) measure(f *os.File, fi os.FileInfo) (string, error) {
	var id fileID
	st, ok := fi.Sys().(*syscall.Stat_t)
	if ok {
		id = fileID{dev: st.Dev, ino: st.Ino, size: st.Size, mtime: st.Mtim.Nano(), ctime: st.Ctim.Nano()}
		if m, ok := p.measured.Load(id); ok {
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
			p.measured.Store(id, m)
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
	nic                         *nicNet // nil without a NIC
	role                        role
	// started, connected and ready are when QEMU was started, made its
	// control connection and the guest's first bytes arrived.
	started, connected, ready time.Time
	// readyCPU is the CPU time QEMU had used when the guest was ready.
	readyCPU time.Duration
	// hostname and machineID are a clone's identity (empty for a boot).
	hostname, machineID string
	// steps are how long each step of the start took.
	steps []StepTime

	// Wait, Kill and the stop bookkeeping.
	sandbox.Lifecycle
}

// A pool holds QEMU sandboxes (boots or clones) until a run takes them.
var _ sandbox.Holdable = (*box)(nil)

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
// group if QMP failed, or QEMU is still there a second later.
func (b *box) kill() {
	go func() {
		quitErr := make(chan error, 1)
		go func() {
			m, err := dialMonitor(b.qmpPath, 0, 500*time.Millisecond)
			if err == nil {
				err = m.quit()
				m.close()
			}
			quitErr <- err
		}()
		timer := time.NewTimer(time.Second)
		defer timer.Stop()
		select {
		case <-b.Done():
			return
		case err := <-quitErr:
			if err == nil {
				select {
				case <-b.Done():
					return
				case <-timer.C:
				}
			}
		case <-timer.C:
		}
		_ = syscall.Kill(-b.cmd.Process.Pid, syscall.SIGKILL)
	}()
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
