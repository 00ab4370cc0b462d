package process

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"syscall"

	"github.com/ccos-project/ccos/sandbox"
	"github.com/ccos-project/ccos/sandbox/cgroup"
)

// procSandbox is one running process sandbox.
type procSandbox struct {
	id      string
	lim     sandbox.Limits
	cmd     *exec.Cmd
	cg      *cgroup.Group
	control *os.File
	setup   *os.File
	log     *sandbox.LogBuffer

	logDone   chan struct{}
	setupDone chan string // the child's setup report

	// Wait, Kill and the stop bookkeeping.
	sandbox.Lifecycle
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
	}
	// Killing the pid namespace's init makes the kernel kill every process
	// in it; the cgroup kill catches the rest.
	s.Init(func() {
		_ = s.cmd.Process.Signal(syscall.SIGKILL)
		s.cg.Kill()
	})
	go s.drainLog(st.stderr)
	go s.readSetupReport()
	s.Arm(st.ctx, st.lim.Deadline)
	go s.monitor()
	return s
}

// Control returns the host end of the control connection. It reads EOF
// once the guest has ended (after anything the guest sent before); the
// caller closes it when done, which Wait and Kill do not do, so that no
// answer sent just before the exit is lost.
func (s *procSandbox) Control() io.ReadWriteCloser { return s.control }

// Log returns the first Limits.LogBytes of the guest's standard error.
func (s *procSandbox) Log() []byte { return s.log.Bytes() }

// monitor waits for the child, then cleans up on every path and records
// how it ended.
func (s *procSandbox) monitor() {
	waitErr := s.cmd.Wait()
	s.Exited()
	s.cg.Kill()
	<-s.logDone
	report := <-s.setupDone
	oom := s.cg.OOMKills()
	cleanupErr := s.cg.Remove()
	s.setup.Close()
	err := s.classify(waitErr, report, oom)
	if err == nil && cleanupErr != nil {
		err = fmt.Errorf("process sandbox %q: cleanup: %w", s.id, cleanupErr)
	}
	s.Finish(err)
}

// classify decides the ExitError, most specific cause first: a failed
// setup step, then the memory limit (when the guest failed: the host that
// sees its guest die kills what is left, and the limit is still why),
// then a host decision (deadline, Kill), then the guest's own signal or
// status.
func (s *procSandbox) classify(waitErr error, report string, oomKills int) error {
	if step, ok := strings.CutPrefix(report, "fail "); ok {
		return &sandbox.ExitError{Reason: sandbox.ExitSetup, Status: exitCode(s.cmd), Detail: "setup step " + strings.TrimSpace(step)}
	}
	ps := s.cmd.ProcessState
	// An OOM kill explains a failed guest; a guest that lost a child of its
	// own to the limit but still exited 0 succeeded.
	if oomKills > 0 && (ps == nil || !ps.Success()) {
		return &sandbox.ExitError{Reason: sandbox.ExitMemory, Status: int(syscall.SIGKILL),
			Detail: fmt.Sprintf("the memory cgroup killed %d process(es) at the limit of %d bytes", oomKills, s.lim.MemoryBytes)}
	}
	if err := s.HostError(int(syscall.SIGKILL)); err != nil {
		return err
	}
	if ps == nil {
		return &sandbox.ExitError{Reason: sandbox.ExitStatus, Status: -1, Detail: fmt.Sprint(waitErr)}
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
