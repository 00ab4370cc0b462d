package wasm

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sync"
	"time"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/experimental"
	"github.com/tetratelabs/wazero/experimental/sysfs"
	"github.com/tetratelabs/wazero/sys"

	"github.com/ccos-project/ccos/sandbox"
)

// errKilled is the cancellation cause Kill records.
var errKilled = errors.New("killed by the host")

// ErrGuestEnded is what writes to the control channel return once the
// guest has ended (or is being stopped).
var ErrGuestEnded = errors.New("wasm guest has ended")

// guestSandbox is one instantiation of the guest module.
type guestSandbox struct {
	id      string
	limits  sandbox.Limits
	control *hostEnd
	// stdin and stdout are the guest's ends of the control pipes.
	stdin  *io.PipeReader
	stdout *io.PipeWriter
	log    *sandbox.LogBuffer
	mem    *memoryLimit
	work   string

	// ctx ends at the deadline, on Kill (cause errKilled) or with the
	// context given to Start.
	ctx    context.Context
	cancel context.CancelCauseFunc
	// deadline ends ctx with context.DeadlineExceeded; Rearm moves it.
	deadlineMu sync.Mutex
	deadline   *time.Timer
	deadlineD  time.Duration

	stopOnce sync.Once
	done     chan struct{}
	err      error
}

// start prepares the sandbox's workdir and pipes, in that order, and runs
// the guest in its own goroutine.
func start(ctx context.Context, prep *prepared, spec sandbox.Spec, limits sandbox.Limits) (*guestSandbox, error) {
	work, err := os.MkdirTemp("", "ccos-wasm-work-")
	if err != nil {
		return nil, fmt.Errorf("wasm: creating the workdir: %w", err)
	}
	fsConfig, err := guestFS(work, spec.CapabilitiesDir, limits.WorkdirBytes)
	if err != nil {
		removeWorkdir(work)
		return nil, err
	}
	s := &guestSandbox{
		id:     spec.ID,
		limits: limits,
		log:    &sandbox.LogBuffer{Max: limits.LogBytes},
		mem:    &memoryLimit{limit: uint64(limits.MemoryBytes)},
		work:   work,
		done:   make(chan struct{}),
	}
	hostOut, guestOut := io.Pipe()
	guestIn, hostIn := io.Pipe()
	s.stdin, s.stdout = guestIn, guestOut
	s.control = &hostEnd{r: hostOut, w: hostIn}

	s.ctx, s.cancel = context.WithCancelCause(ctx)
	s.deadlineD = limits.Deadline
	s.deadline = time.AfterFunc(limits.Deadline, func() { s.cancel(context.DeadlineExceeded) })
	// Guest code stops at the next function call or loop iteration when
	// the context ends (WithCloseOnContextDone), but a guest blocked in a
	// host call (reading its stdin, sleeping) is released by closing its
	// pipes; the sleep watches the context itself.
	context.AfterFunc(s.ctx, s.stopIO)

	config := wazero.NewModuleConfig().
		WithName("").
		WithArgs(GuestProgramName).
		WithStdin(s.stdin).
		WithStdout(s.stdout).
		WithStderr(s.log).
		WithFSConfig(fsConfig).
		WithSysWalltime().
		WithSysNanotime().
		WithNanosleep(s.sleep).
		WithRandSource(rand.Reader)
	go s.run(experimental.WithMemoryAllocator(s.ctx, s.mem), prep, config)
	return s, nil
}

// guestFS mounts the workdir at /work and the capabilities read-only at
// /capabilities; nothing else of the host is visible.
func guestFS(work, capabilities string, workdirBytes int64) (wazero.FSConfig, error) {
	config := wazero.NewFSConfig().(sysfs.FSConfig).WithSysFSMount(newWorkdirFS(work, workdirBytes), "/work")
	if capabilities == "" {
		return config, nil
	}
	info, err := os.Stat(capabilities)
	if err != nil {
		return nil, fmt.Errorf("wasm: capabilities directory: %w", err)
	}
	if !info.IsDir() {
		return nil, fmt.Errorf("wasm: capabilities directory %s is not a directory", capabilities)
	}
	return config.WithReadOnlyDirMount(capabilities, "/capabilities"), nil
}

// Rearm restarts the deadline (see sandbox.Holdable).
func (s *guestSandbox) Rearm(d time.Duration) bool {
	s.deadlineMu.Lock()
	defer s.deadlineMu.Unlock()
	if !s.deadline.Stop() || s.ctx.Err() != nil {
		return false
	}
	s.deadlineD = d
	s.deadline = time.AfterFunc(d, func() { s.cancel(context.DeadlineExceeded) })
	return true
}

// Done is closed once the guest has ended and the sandbox is cleaned up.
func (s *guestSandbox) Done() <-chan struct{} { return s.done }

// run instantiates the module, which runs _start to the guest's exit, then
// classifies the end and cleans up.
func (s *guestSandbox) run(ctx context.Context, prep *prepared, config wazero.ModuleConfig) {
	mod, err := prep.rt.InstantiateModule(ctx, prep.compiled, config)
	cause := context.Cause(s.ctx)
	if mod != nil {
		mod.Close(context.Background())
	}
	s.err = s.classify(err, cause)
	s.deadlineMu.Lock()
	s.deadline.Stop()
	s.deadlineMu.Unlock()
	s.cancel(nil)
	s.stopIO()
	if rmErr := removeWorkdir(s.work); rmErr != nil {
		slog.Warn("wasm sandbox: removing the workdir", "sandbox", s.id, "dir", s.work, "err", rmErr)
	}
	close(s.done)
}

// classify turns the instantiation result into Wait's answer. A refused
// memory growth explains a guest that failed, even one the host then
// killed (it sees the guest die); otherwise the host's own record
// (deadline, Kill) decides the reason first, and the guest's exit status
// only says how it ended otherwise.
func (s *guestSandbox) classify(err, cause error) error {
	var exit *sys.ExitError
	isExit := errors.As(err, &exit)
	clean := err == nil || isExit && exit.ExitCode() == 0
	switch {
	case s.mem.refused.Load() && !clean:
		e := &sandbox.ExitError{Reason: sandbox.ExitMemory, Detail: fmt.Sprintf(
			"memory growth to %d bytes refused (limit %d): %v", s.mem.requested.Load(), s.limits.MemoryBytes, err)}
		if isExit {
			e.Status = int(exit.ExitCode())
		}
		return e
	case errors.Is(cause, context.DeadlineExceeded):
		s.deadlineMu.Lock()
		d := s.deadlineD
		s.deadlineMu.Unlock()
		return &sandbox.ExitError{Reason: sandbox.ExitDeadline, Detail: fmt.Sprintf("deadline of %s passed", d)}
	case errors.Is(cause, errKilled):
		return &sandbox.ExitError{Reason: sandbox.ExitKilled}
	case cause != nil:
		return &sandbox.ExitError{Reason: sandbox.ExitKilled, Detail: "start context ended: " + cause.Error()}
	case clean:
		return nil
	case isExit:
		return &sandbox.ExitError{Reason: sandbox.ExitStatus, Status: int(exit.ExitCode())}
	default:
		// A trap: the WebAssembly machine stopped the guest, as a signal
		// would stop a process.
		return &sandbox.ExitError{Reason: sandbox.ExitSignal, Detail: "wasm trap: " + err.Error()}
	}
}

// stopIO closes the guest's ends of the control pipes: the guest's reads
// and writes fail, and the host reads end of file.
func (s *guestSandbox) stopIO() {
	s.stopOnce.Do(func() {
		s.stdin.CloseWithError(ErrGuestEnded)
		s.stdout.Close()
	})
}

// sleep is the guest's nanosleep: real time, cut short when the sandbox
// ends so that a sleeping guest cannot outlive its deadline.
func (s *guestSandbox) sleep(ns int64) {
	t := time.NewTimer(time.Duration(ns))
	defer t.Stop()
	select {
	case <-t.C:
	case <-s.ctx.Done():
	}
}

// Control implements sandbox.Sandbox.
func (s *guestSandbox) Control() io.ReadWriteCloser { return s.control }

// Wait implements sandbox.Sandbox.
func (s *guestSandbox) Wait() error {
	<-s.done
	return s.err
}

// Kill implements sandbox.Sandbox.
func (s *guestSandbox) Kill() error {
	s.cancel(errKilled)
	<-s.done
	return nil
}

// Log implements sandbox.Sandbox.
func (s *guestSandbox) Log() []byte {
	b := s.log.Bytes()
	return b
}

// hostEnd is the host's end of the control channel: it reads the guest's
// standard output and writes its standard input.
type hostEnd struct {
	r *io.PipeReader
	w *io.PipeWriter
}

// Read implements io.Reader.
func (h *hostEnd) Read(p []byte) (int, error) { return h.r.Read(p) }

// Write implements io.Writer.
func (h *hostEnd) Write(p []byte) (int, error) { return h.w.Write(p) }

// Close implements io.Closer: the guest reads end of file and its writes
// fail.
func (h *hostEnd) Close() error {
	return errors.Join(h.w.Close(), h.r.Close())
}
