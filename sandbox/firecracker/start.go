package firecracker

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/ccos-project/ccos/sandbox"
	"github.com/ccos-project/ccos/sandbox/firecracker/fcapi"
)

// Paths inside the jail, as the jailed Firecracker sees them.
const (
	jailAPISocket = "/api.sock"
	jailVsock     = "/vsock.sock"
	jailLog       = "/firecracker.log"
	jailMetrics   = "/firecracker.metrics"
	jailKernel    = "/kernel"
	jailInitrd    = "/initrd"
)

// vmmOverheadMiB is the memory the cgroup allows Firecracker beyond the
// guest's own.
const vmmOverheadMiB = 64

// maxSocketPath is the longest Unix socket path (sun_path less its NUL).
const maxSocketPath = 107

// apiSocketWait bounds how long Start waits for the API socket.
const apiSocketWait = 5 * time.Second

// launch is the state that the start-up steps build up.
type launch struct {
	p      *Provider
	spec   sandbox.Spec
	vm     fcapi.VMConfig // paths as the jailed Firecracker sees them
	jail   Jail
	root   string // the jail root on the host
	cmd    *exec.Cmd
	stderr *capped
	done   chan struct{}
	client *fcapi.Client
	conn   net.Conn
	// finalLog is Firecracker's log, kept when the jail is removed.
	finalLog []byte
	logMu    sync.Mutex
}

// readLog returns the jailer's output and Firecracker's log file, at most
// Limits.LogBytes of each.
func (l *launch) readLog() []byte {
	l.logMu.Lock()
	final := l.finalLog
	l.logMu.Unlock()
	if final != nil {
		return final
	}
	var out []byte
	if l.stderr != nil {
		out = []byte(l.stderr.String())
	}
	if l.root == "" {
		return out
	}
	if f, err := os.Open(filepath.Join(l.root, jailLog)); err == nil {
		defer f.Close()
		data, _ := io.ReadAll(io.LimitReader(f, l.spec.Limits.LogBytes))
		out = append(out, data...)
	}
	return out
}

// StartStep is one named step of starting a VM.
type StartStep struct {
	Name string
	Run  func(ctx context.Context, l *launch) error
}

// StartSteps is the ordered start-up of a Firecracker sandbox.
func StartSteps() []StartStep {
	return []StartStep{
		{"check-available", stepCheckAvailable},
		{"check-spec", stepCheckSpec},
		{"prepare-jail", stepPrepareJail},
		{"spawn-jailer", stepSpawnJailer},
		{"wait-api-socket", stepWaitAPISocket},
		{"configure-vm", stepConfigure},
		{"connect-control", stepConnectControl},
	}
}

// Start boots a VM and connects to its guest agent. It fails, naming what
// is missing, on a host where the provider is not available.
func (p *Provider) Start(ctx context.Context, spec sandbox.Spec) (sandbox.Sandbox, error) {
	spec.Limits = spec.Limits.WithDefaults()
	l := &launch{p: p, spec: spec}
	for _, s := range StartSteps() {
		if err := s.Run(ctx, l); err != nil {
			l.abort()
			return nil, &StepError{Step: s.Name, Err: err}
		}
	}
	return newBox(l), nil
}

func stepCheckAvailable(_ context.Context, l *launch) error {
	if missing := l.p.missing(); len(missing) > 0 {
		return fmt.Errorf("%w: firecracker: %s", sandbox.ErrUnavailable, strings.Join(missing, "; "))
	}
	return nil
}

func stepCheckSpec(_ context.Context, l *launch) error {
	if l.spec.CapabilitiesDir != "" {
		return errors.New("a host directory cannot be shared with a Firecracker VM (no virtio-fs); build the capability store into a read-only drive image")
	}
	if l.p.opts.VM.Vsock == nil {
		return errors.New("the VM has no vsock device, so the guest would have no control channel")
	}
	if len(l.p.opts.VM.NetworkInterfaces) > 0 && l.p.opts.NetNS == "" {
		return errors.New("the VM has a NIC but no network namespace to join (Options.NetNS, the egress proxy's)")
	}
	return nil
}

// stepPrepareJail builds the jail root: the image files linked in, empty
// log and metrics files, and the VM description rewritten to jail paths.
func stepPrepareJail(_ context.Context, l *launch) error {
	fc, err := exec.LookPath(l.p.opts.Firecracker)
	if err != nil {
		return err
	}
	jl, err := exec.LookPath(l.p.opts.Jailer)
	if err != nil {
		return err
	}
	l.jail = Jail{Jailer: jl, Firecracker: fc, ID: jailID(l.spec.ID), UID: l.p.opts.UID, GID: l.p.opts.GID,
		ChrootBase: l.p.opts.ChrootBase, NetNS: l.p.opts.NetNS, CgroupVersion: l.p.opts.CgroupVersion,
		ResourceLimits:  []string{"no-file=1024"},
		FirecrackerArgs: []string{"--api-sock", jailAPISocket}}
	l.root = l.jail.RootDir()
	// The host reaches the jailed sockets through the jail root; sun_path
	// holds 107 bytes.
	if p := filepath.Join(l.root, jailVsock) + "_" + strconv.Itoa(ControlPort); len(p) > maxSocketPath {
		return fmt.Errorf("socket path %s is %d bytes, the limit is %d: choose a shorter chroot base", p, len(p), maxSocketPath)
	}
	if err := os.MkdirAll(l.root, 0o700); err != nil {
		return err
	}
	vm := *l.p.opts.VM
	if vm.MachineConfig.MemSizeMiB == 0 {
		vm.MachineConfig.MemSizeMiB = int(l.spec.Limits.MemoryBytes >> 20)
	}
	l.jail.Cgroups = cgroupLimits(l.jail.CgroupVersion, vm.MachineConfig.MemSizeMiB, l.spec.Limits.PIDs)
	if err := linkInto(l.root, vm.BootSource.KernelImagePath, jailKernel); err != nil {
		return err
	}
	vm.BootSource.KernelImagePath = jailKernel
	if vm.BootSource.InitrdPath != "" {
		if err := linkInto(l.root, vm.BootSource.InitrdPath, jailInitrd); err != nil {
			return err
		}
		vm.BootSource.InitrdPath = jailInitrd
	}
	vm.Drives = append([]fcapi.Drive(nil), vm.Drives...)
	for i, d := range vm.Drives {
		dst := "/drive-" + jailID(d.DriveID)
		if err := linkInto(l.root, d.PathOnHost, dst); err != nil {
			return err
		}
		vm.Drives[i].PathOnHost = dst
	}
	vs := *vm.Vsock
	vs.UDSPath = jailVsock
	vm.Vsock = &vs
	vm.Logger = &fcapi.Logger{LogPath: jailLog, Level: "Warning", ShowLevel: true}
	vm.Metrics = &fcapi.Metrics{MetricsPath: jailMetrics}
	vm.Balloon = nil
	for _, f := range []string{jailLog, jailMetrics} {
		if err := createOwned(filepath.Join(l.root, f), l.jail.UID, l.jail.GID); err != nil {
			return err
		}
	}
	l.vm = vm
	return nil
}

func stepSpawnJailer(_ context.Context, l *launch) error {
	argv, err := l.jail.Command()
	if err != nil {
		return err
	}
	l.stderr = &capped{max: int(l.spec.Limits.LogBytes)}
	l.cmd = exec.Command(argv[0], argv[1:]...)
	l.cmd.Stdout, l.cmd.Stderr = l.stderr, l.stderr
	if err := l.cmd.Start(); err != nil {
		return fmt.Errorf("starting the jailer: %w", err)
	}
	l.done = make(chan struct{})
	go func() {
		_ = l.cmd.Wait()
		close(l.done)
	}()
	slog.Debug("firecracker: jailer started", "id", l.jail.ID, "pid", l.cmd.Process.Pid)
	return nil
}

func stepWaitAPISocket(ctx context.Context, l *launch) error {
	sock := filepath.Join(l.root, jailAPISocket)
	ctx, cancel := context.WithTimeout(ctx, apiSocketWait)
	defer cancel()
	for {
		if c, err := net.Dial("unix", sock); err == nil {
			c.Close()
			l.client = fcapi.NewClient(sock)
			return nil
		}
		select {
		case <-l.done:
			return fmt.Errorf("firecracker exited before opening its API socket: %s", l.stderr.String())
		case <-ctx.Done():
			return fmt.Errorf("no API socket at %s: %w", sock, ctx.Err())
		case <-time.After(5 * time.Millisecond):
		}
	}
}

func stepConfigure(ctx context.Context, l *launch) error {
	return Configure(ctx, l.client, APISteps(l.vm))
}

func stepConnectControl(ctx context.Context, l *launch) error {
	ctx, cancel := context.WithTimeout(ctx, l.spec.Limits.Deadline)
	defer cancel()
	conn, err := DialVsock(ctx, filepath.Join(l.root, jailVsock), ControlPort)
	if err != nil {
		return err
	}
	l.conn = conn
	return nil
}

// abort undoes a partial start.
func (l *launch) abort() {
	if l.conn != nil {
		l.conn.Close()
	}
	if l.cmd != nil && l.cmd.Process != nil {
		_ = l.cmd.Process.Kill()
		<-l.done
	}
	l.cleanup()
}

func (l *launch) cleanup() {
	final := l.readLog()
	l.logMu.Lock()
	l.finalLog = final
	l.logMu.Unlock()
	if l.root != "" {
		// The jail is <base>/<exec>/<id>/root; remove the <id> directory.
		_ = os.RemoveAll(filepath.Dir(l.root))
	}
}

func cgroupLimits(version, memMiB, pids int) []string {
	mem := strconv.Itoa((memMiB + vmmOverheadMiB) << 20)
	if version == 1 {
		return []string{"memory.limit_in_bytes=" + mem, "pids.max=" + strconv.Itoa(pids)}
	}
	return []string{"memory.max=" + mem, "pids.max=" + strconv.Itoa(pids)}
}

// jailID reduces a sandbox id to the jailer's alphabet (letters, digits,
// hyphens; at most 64 bytes).
func jailID(id string) string {
	var b strings.Builder
	for _, r := range id {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' {
			b.WriteRune(r)
		} else {
			b.WriteByte('-')
		}
	}
	s := b.String()
	if len(s) > 64 {
		s = s[:64]
	}
	if s == "" {
		s = "vm"
	}
	return s
}

// linkInto hard-links src to root+dst, copying when a link is impossible
// (another file system).
func linkInto(root, src, dst string) error {
	if src == "" {
		return fmt.Errorf("no host file for %s", dst)
	}
	target := filepath.Join(root, dst)
	if err := os.Link(src, target); err == nil {
		return nil
	}
	in, err := os.Open(src)
	if err != nil {
		return fmt.Errorf("image file: %w", err)
	}
	defer in.Close()
	out, err := os.OpenFile(target, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o444)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return fmt.Errorf("copying %s into the jail: %w", src, err)
	}
	return out.Close()
}

func createOwned(path string, uid, gid int) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Chown(path, uid, gid)
}

// capped keeps at most max bytes of what is written to it.
type capped struct {
	mu  sync.Mutex
	max int
	buf bytes.Buffer
}

func (c *capped) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if room := c.max - c.buf.Len(); room > 0 {
		if len(p) > room {
			c.buf.Write(p[:room])
		} else {
			c.buf.Write(p)
		}
	}
	return len(p), nil
}

func (c *capped) String() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.buf.String()
}
