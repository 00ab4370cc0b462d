//go:build linux

package gvisor

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"time"

	"github.com/ccos-project/ccos/sandbox"
	"github.com/ccos-project/ccos/sandbox/cgroup"
)

// gvSandbox is one running gVisor sandbox.
type gvSandbox struct {
	id      string
	name    string
	lim     sandbox.Limits
	dir     string
	cmd     *exec.Cmd
	cg      *cgroup.Group
	control *pipeConn
	log     *sandbox.LogBuffer

	logDone chan struct{}

	// Wait, Kill and the stop bookkeeping.
	sandbox.Lifecycle
}

// pipeConn is the host end of the control channel: runsc's standard input
// and output.
type pipeConn struct {
	r, w *os.File
	// first holds the guest's first bytes, read while waiting for it to
	// be ready.
	first []byte
}

func (c *pipeConn) Read(p []byte) (int, error) {
	if len(c.first) > 0 {
		n := copy(p, c.first)
		c.first = c.first[n:]
		return n, nil
	}
	return c.r.Read(p)
}
func (c *pipeConn) Write(p []byte) (int, error) { return c.w.Write(p) }

// Close closes both directions.
func (c *pipeConn) Close() error {
	err := c.w.Close()
	if rerr := c.r.Close(); err == nil {
		err = rerr
	}
	return err
}

// SetDeadline sets the read and write deadlines (the pipes are
// non-blocking), so that control connections can time out.
func (c *pipeConn) SetDeadline(t time.Time) error {
	return errors.Join(c.r.SetDeadline(t), c.w.SetDeadline(t))
}

// watch turns a started runsc into a Sandbox: it drains stderr, arms the
// deadline and waits for the end.
func (st *starter) watch() *gvSandbox {
	s := &gvSandbox{
		id: st.spec.ID, name: st.name, lim: st.lim, dir: st.dir,
		cmd: st.cmd, cg: st.cg,
		control: &pipeConn{r: st.stdout, w: st.stdin},
		log:     &sandbox.LogBuffer{Max: st.lim.LogBytes},
		logDone: make(chan struct{}),
	}
	// Stopping kills every process in the sandbox's cgroup (the sentry,
	// the gofer, the ptrace stubs) and runsc's process group. It does not
	// go through "runsc kill", which needs a responsive sentry and costs
	// another runsc start.
	s.Init(func() {
		s.cg.Kill()
		_ = syscall.Kill(-s.cmd.Process.Pid, syscall.SIGKILL)
	})
	go s.drainLog(st.stderr)
	s.Arm(st.ctx, st.lim.Deadline)
	go s.monitor()
	return s
}

// waitReady reads the guest's first bytes and keeps them for the reader
// of Control.
func (s *gvSandbox) waitReady(timeout time.Duration) error {
	buf := make([]byte, 4096)
	s.control.SetDeadline(time.Now().Add(timeout))
	n, err := s.control.r.Read(buf)
	s.control.SetDeadline(time.Time{})
	if n == 0 {
		if errors.Is(err, os.ErrDeadlineExceeded) {
			return fmt.Errorf("the guest did not become ready within %v", timeout)
		}
		return fmt.Errorf("the guest ended before it was ready (%v)", err)
	}
	s.control.first = buf[:n]
	return nil
}

// Control returns the host end of the control channel. It reads EOF once
// the guest has ended; the caller closes it (Wait and Kill do not, so that
// an answer sent just before the exit is not lost).
func (s *gvSandbox) Control() io.ReadWriteCloser { return s.control }

// HostPIDs returns runsc's process and every process of the sandbox's
// cgroup (the sentry, the gofer, the platform's stubs).
func (s *gvSandbox) HostPIDs() []int {
	pids := s.cg.PIDs()
	for _, p := range pids {
		if p == s.cmd.Process.Pid {
			return pids
		}
	}
	return append(pids, s.cmd.Process.Pid)
}

// Log returns the first Limits.LogBytes of the guest's (and runsc's)
// standard error.
func (s *gvSandbox) Log() []byte { return s.log.Bytes() }

// monitor waits for runsc, then cleans up on every path and records how
// the guest ended.
func (s *gvSandbox) monitor() {
	waitErr := s.cmd.Wait()
	s.Exited()
	s.cg.Kill()
	<-s.logDone
	oom, pids := s.cg.OOMKills(), s.cg.PIDsRefused()
	runscErr := s.runscError()
	// No "runsc delete": everything runsc keeps is in the private
	// directory (its --root state) and in the cgroups, both removed here,
	// and every process it started was in the cgroup (rmdir fails while
	// one is left). delete --force of a killed sandbox took 1.6 s here.
	cleanupErr := errors.Join(s.cg.Remove(), os.RemoveAll(s.dir))
	err := s.classify(waitErr, oom, pids, runscErr)
	if err == nil && cleanupErr != nil {
		err = fmt.Errorf("gvisor sandbox %q: cleanup: %w", s.id, cleanupErr)
	}
	s.Finish(err)
}

// runscError returns runsc's own error messages from its log: runsc failed
// (a bad bundle, a sandbox that could not start, a lost sandbox) rather
// than the guest ending.
func (s *gvSandbox) runscError() string {
	f, err := os.Open(filepath.Join(s.dir, "runsc.log"))
	if err != nil {
		return ""
	}
	defer f.Close()
	dec := json.NewDecoder(io.LimitReader(f, 1<<20))
	var msgs []string
	for {
		var entry struct{ Msg, Level string }
		if dec.Decode(&entry) != nil {
			break
		}
		if entry.Level == "error" || entry.Level == "fatal" {
			msgs = append(msgs, entry.Msg)
		}
	}
	if len(msgs) == 0 {
		return ""
	}
	// The last message is runsc's summary; the first is the cause.
	if len(msgs) > 1 && msgs[0] != msgs[len(msgs)-1] {
		return msgs[len(msgs)-1] + " (first error: " + msgs[0] + ")"
	}
	return msgs[0]
}

// classify decides the ExitError, most specific cause first: the memory
// limit, a host decision (deadline, Kill), the pids limit, runsc's own
// failure, then the guest's signal or status. runsc reports a guest killed
// by signal N as status 128+N.
func (s *gvSandbox) classify(waitErr error, oomKills, pidsRefused int, runscErr string) error {
	ps := s.cmd.ProcessState
	// The memory limit explains a failed guest even when the host, seeing
	// it die, killed what was left.
	if oomKills > 0 && (ps == nil || !ps.Success()) {
		return &sandbox.ExitError{Reason: sandbox.ExitMemory, Status: exitStatus(ps),
			Detail: fmt.Sprintf("the memory cgroup killed %d process(es) of the sandbox at the limit of %d bytes", oomKills, s.lim.MemoryBytes)}
	}
	if err := s.HostError(int(syscall.SIGKILL)); err != nil {
		return err
	}
	if ps == nil {
		return &sandbox.ExitError{Reason: sandbox.ExitSetup, Status: -1, Detail: fmt.Sprint(waitErr)}
	}
	// The sentry cannot fail a fork it has no host task for: it aborts,
	// ending the whole sandbox (runsc 2022-12-19).
	if pidsRefused > 0 && !ps.Success() {
		return &sandbox.ExitError{Reason: sandbox.ExitStatus, Status: ps.ExitCode(),
			Detail: fmt.Sprintf("the sandbox reached its pids limit of %d host tasks (%d guest processes and threads + %d for gVisor) %d time(s); the gVisor sentry ends the sandbox when it cannot create a task", s.lim.PIDs+pidsOverhead, s.lim.PIDs, pidsOverhead, pidsRefused)}
	}
	if runscErr != "" {
		return &sandbox.ExitError{Reason: sandbox.ExitSetup, Status: ps.ExitCode(), Detail: "runsc: " + runscErr}
	}
	if ws, ok := ps.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		return &sandbox.ExitError{Reason: sandbox.ExitSignal, Status: int(ws.Signal()), Detail: "runsc: " + ws.Signal().String()}
	}
	code := ps.ExitCode()
	if code > 128 && code < 128+65 {
		sig := syscall.Signal(code - 128)
		return &sandbox.ExitError{Reason: sandbox.ExitSignal, Status: int(sig), Detail: sig.String()}
	}
	if code != 0 {
		return &sandbox.ExitError{Reason: sandbox.ExitStatus, Status: code}
	}
	return nil
}

func (s *gvSandbox) drainLog(r *os.File) {
	defer close(s.logDone)
	defer r.Close()
	_, _ = io.Copy(s.log, r)
}

func exitStatus(ps *os.ProcessState) int {
	if ps == nil {
		return -1
	}
	return ps.ExitCode()
}
