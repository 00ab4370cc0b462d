package sandbox

import (
	"context"
	"fmt"
	"sync"
	"time"
)

// Lifecycle is the end-of-life bookkeeping the providers share: one stop
// (kill, remembering why) however many of the deadline, the start
// context, Kill and the guest's own exit race for it; the wait for the
// end; the final error. A provider's sandbox embeds it, calls Init with
// its kill function, Arm once started, Exited from its monitor when the
// guest's process has ended, and Finish with the classified outcome.
type Lifecycle struct {
	done chan struct{}
	err  error

	once   sync.Once
	kill   func()
	mu     sync.Mutex
	reason ExitReason
	detail string

	timer   *time.Timer
	stopCtx func() bool
}

// Init prepares the lifecycle; kill ends everything of the sandbox.
func (l *Lifecycle) Init(kill func()) {
	l.done = make(chan struct{})
	l.kill = kill
}

// Arm stops the sandbox at its deadline (ExitDeadline) and when ctx ends
// (ExitKilled).
func (l *Lifecycle) Arm(ctx context.Context, deadline time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.timer = time.AfterFunc(deadline, func() {
		l.Stop(ExitDeadline, fmt.Sprintf("deadline of %v passed", deadline))
	})
	l.stopCtx = context.AfterFunc(ctx, func() {
		l.Stop(ExitKilled, "start context ended: "+context.Cause(ctx).Error())
	})
}

// Rearm restarts the deadline: the sandbox now ends deadline from now. A
// pool calls it when it hands a waiting sandbox to a run, so that the run
// gets its whole deadline whatever time the sandbox spent waiting. It
// reports false when the sandbox has already been stopped.
func (l *Lifecycle) Rearm(deadline time.Duration) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.reason != "" || l.timer == nil {
		return false
	}
	if !l.timer.Stop() {
		return false // the deadline fired already
	}
	l.timer = time.AfterFunc(deadline, func() {
		l.Stop(ExitDeadline, fmt.Sprintf("deadline of %v passed", deadline))
	})
	select {
	case <-l.done:
		return false
	default:
		return true
	}
}

// Stop ends the sandbox once, remembering why; later calls do nothing.
func (l *Lifecycle) Stop(reason ExitReason, detail string) {
	l.once.Do(func() {
		l.mu.Lock()
		l.reason, l.detail = reason, detail
		l.mu.Unlock()
		l.kill()
	})
}

// Exited tells the lifecycle the guest's process has ended: a later
// deadline, context end or Kill has nothing left to stop.
func (l *Lifecycle) Exited() {
	l.once.Do(func() {})
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.timer != nil {
		l.timer.Stop()
	}
	if l.stopCtx != nil {
		l.stopCtx()
	}
}

// Cause returns why the host stopped the sandbox; "" when it did not.
func (l *Lifecycle) Cause() (ExitReason, string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.reason, l.detail
}

// HostError is the ExitError of a sandbox the host stopped, or nil.
func (l *Lifecycle) HostError(status int) error {
	if reason, detail := l.Cause(); reason != "" {
		return &ExitError{Reason: reason, Status: status, Detail: detail}
	}
	return nil
}

// Finish records the outcome and releases Wait.
func (l *Lifecycle) Finish(err error) {
	l.err = err
	close(l.done)
}

// Done is closed once the sandbox has ended and is cleaned up.
func (l *Lifecycle) Done() <-chan struct{} { return l.done }

// Wait waits for the end of the guest and the cleanup of the sandbox.
func (l *Lifecycle) Wait() error {
	<-l.done
	return l.err
}

// Kill ends the guest and the whole sandbox and waits for the cleanup.
func (l *Lifecycle) Kill() error {
	l.Stop(ExitKilled, "killed by the host")
	<-l.done
	return nil
}
