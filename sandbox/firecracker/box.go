package firecracker

import (
	"io"
	"sync"
	"time"

	"github.com/ccos-project/ccos/sandbox"
)

// box is one running Firecracker VM.
type box struct {
	l      *launch
	once   sync.Once
	mu     sync.Mutex
	reason sandbox.ExitReason
	timer  *time.Timer
}

func newBox(l *launch) *box {
	b := &box{l: l}
	b.timer = time.AfterFunc(l.spec.Limits.Deadline, func() { b.kill(sandbox.ExitDeadline) })
	return b
}

func (b *box) Control() io.ReadWriteCloser { return b.l.conn }

// Wait waits for the Firecracker process to end; a guest that powers off
// (reboot=k) ends it with status 0.
func (b *box) Wait() error {
	<-b.l.done
	b.mu.Lock()
	b.timer.Stop()
	b.mu.Unlock()
	b.once.Do(b.l.cleanup)
	b.mu.Lock()
	reason := b.reason
	b.mu.Unlock()
	if reason != "" {
		return &sandbox.ExitError{Reason: reason}
	}
	if st := b.l.cmd.ProcessState; st != nil && !st.Success() {
		return &sandbox.ExitError{Reason: sandbox.ExitStatus, Status: st.ExitCode(), Detail: b.l.stderr.String()}
	}
	return nil
}

// Kill ends the VM; safe to call more than once.
func (b *box) Kill() error {
	b.kill(sandbox.ExitKilled)
	return nil
}

func (b *box) kill(reason sandbox.ExitReason) {
	b.mu.Lock()
	if b.reason == "" {
		b.reason = reason
	}
	b.mu.Unlock()
	b.l.conn.Close()
	_ = b.l.cmd.Process.Kill()
	<-b.l.done
	b.once.Do(b.l.cleanup)
}

// Rearm restarts the deadline (see sandbox.Holdable).
func (b *box) Rearm(d time.Duration) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.reason != "" || !b.timer.Stop() {
		return false
	}
	b.timer = time.AfterFunc(d, func() { b.kill(sandbox.ExitDeadline) })
	return true
}

// Done is closed once the Firecracker process has ended.
func (b *box) Done() <-chan struct{} { return b.l.done }

// Log returns the jailer's output and Firecracker's log.
func (b *box) Log() []byte { return b.l.readLog() }
