package process

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/ccos-project/ccos/sandbox"
)

// procSandbox is one running process sandbox.
type procSandbox struct {
	id      string
	lim     sandbox.Limits
	cmd     *exec.Cmd
	cg      *cgroup
	control *os.File
	setup   *os.File
	log     *sandbox.LogBuffer

	logDone   chan struct{}
	setupDone chan string // the child's setup report
	done      chan struct{}
	err       error // valid once done is closed

	stopOnce   sync.Once
	mu         sync.Mutex
	stopReason sandbox.ExitReason // set when the host ended the guest
	stopDetail string
}

// watch turns a started child into a Sandbox: it drains stderr, reads the
// setup report, arms the deadline and waits for the end.
func (st *starter) watch() *procSandbox {
	s := &procSandbox{
		id: st.spec.ID, lim: st.lim, cmd: st.cmd, cg: st.cg,
		control: st.control, setup: st.setup,
		log:       &sandbox.LogBuffer{Max: st.lim.LogBytes},
		logDone:   make(chan struct{}),
		setupDone: make(chan string, 1),
		done:      make(chan struct{}),
	}
	go s.drainLog(st.stderr)
	go s.readSetupReport()
	timer := time.AfterFunc(st.lim.Deadline, func() {
		s.stop(sandbox.ExitDeadline, fmt.Sprintf("deadline of %v passed", st.lim.Deadline))
	})
	stopCtx := context.AfterFunc(st.ctx, func() {
		s.stop(sandbox.ExitKilled, "start context ended: "+context.Cause(st.ctx).Error())
	})
	go s.monitor(timer, stopCtx)
	return s
}

// Control returns the host end of the control connection. It reads EOF
// once the guest has ended (after anything the guest sent before); the
// caller closes it when done, which Wait and Kill do not do, so that no
// answer sent just before the exit is lost.
func (s *procSandbox) Control() io.ReadWriteCloser { return s.control }

// Wait waits for the end of the guest and the cleanup of the sandbox.
func (s *procSandbox) Wait() error {
	<-s.done
	return s.err
}

// Kill ends the guest and everything in its sandbox and waits for cleanup.
func (s *procSandbox) Kill() error {
	s.stop(sandbox.ExitKilled, "killed by the host")
	<-s.done
	return nil
}

// Log returns the first Limits.LogBytes of the guest's standard error.
func (s *procSandbox) Log() []byte { return s.log.Bytes() }

// stop kills the whole sandbox once, remembering why. Killing the pid
// namespace's init makes the kernel kill every process in it; the cgroup
// kill catches the rest.
func (s *procSandbox) stop(reason sandbox.ExitReason, detail string) {
	s.stopOnce.Do(func() {
		s.mu.Lock()
		s.stopReason, s.stopDetail = reason, detail
		s.mu.Unlock()
		_ = s.cmd.Process.Signal(syscall.SIGKILL)
		s.cg.kill()
	})
}

// monitor waits for the child, then cleans up on every path and records
// how it ended.
func (s *procSandbox) monitor(timer *time.Timer, stopCtx func() bool) {
	waitErr := s.cmd.Wait()
	s.stopOnce.Do(func() {}) // a later deadline or Kill has nothing left to kill
	timer.Stop()
	stopCtx()
	s.cg.kill()
	<-s.logDone
	report := <-s.setupDone
	oom := s.cg.oomKills()
	cleanupErr := s.cg.remove()
	s.setup.Close()
	s.err = s.classify(waitErr, report, oom)
	if s.err == nil && cleanupErr != nil {
		s.err = fmt.Errorf("process sandbox %q: cleanup: %w", s.id, cleanupErr)
	}
	close(s.done)
}

// classify decides the ExitError, most specific cause first: a failed
// setup step, then a host decision (deadline, Kill), then the memory
// limit (when the guest failed), then the guest's own signal or status.
func (s *procSandbox) classify(waitErr error, report string, oomKills int) error {
	if step, ok := strings.CutPrefix(report, "fail "); ok {
		return &sandbox.ExitError{Reason: sandbox.ExitSetup, Status: exitCode(s.cmd), Detail: "setup step " + strings.TrimSpace(step)}
	}
	s.mu.Lock()
	reason, detail := s.stopReason, s.stopDetail
	s.mu.Unlock()
	if reason != "" {
		return &sandbox.ExitError{Reason: reason, Status: int(syscall.SIGKILL), Detail: detail}
	}
	ps := s.cmd.ProcessState
	if ps == nil {
		return &sandbox.ExitError{Reason: sandbox.ExitStatus, Status: -1, Detail: fmt.Sprint(waitErr)}
	}
	// An OOM kill explains a failed guest; a guest that lost a child of its
	// own to the limit but still exited 0 succeeded.
	if oomKills > 0 && !ps.Success() {
		return &sandbox.ExitError{Reason: sandbox.ExitMemory, Status: int(syscall.SIGKILL),
			Detail: fmt.Sprintf("the memory cgroup killed %d process(es) at the limit of %d bytes", oomKills, s.lim.MemoryBytes)}
	}
	if ws, ok := ps.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		return &sandbox.ExitError{Reason: sandbox.ExitSignal, Status: int(ws.Signal()), Detail: ws.Signal().String()}
	}
	if code := ps.ExitCode(); code != 0 {
		return &sandbox.ExitError{Reason: sandbox.ExitStatus, Status: code}
	}
	return nil
}

func exitCode(cmd *exec.Cmd) int {
	if cmd.ProcessState == nil {
		return 0
	}
	return cmd.ProcessState.ExitCode()
}

func (s *procSandbox) drainLog(r *os.File) {
	defer close(s.logDone)
	defer r.Close()
	_, _ = io.Copy(s.log, r)
}

func (s *procSandbox) readSetupReport() {
	var buf bytes.Buffer
	_, _ = io.Copy(&buf, io.LimitReader(s.setup, setupLimit))
	s.setupDone <- buf.String()
}
