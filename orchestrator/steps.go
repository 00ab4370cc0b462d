package orchestrator

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/ccos-project/ccos/chain"
	"github.com/ccos-project/ccos/control"
	"github.com/ccos-project/ccos/governance"
)

// running is one step in progress.
type running struct {
	prof  *governance.StepProfile
	begun time.Time
	// at is the index in steps.order of this entry of the step.
	at int
	// timer enforces the step's declared :max_time_ms (nil without one).
	timer *time.Timer
}

// steps is the host's view of a run's steps: those in progress,
// innermost last; those entered in this run (a step runs at most once,
// but for the steps nested in a failed attempt of a retried step); the
// retries of each; and the first step whose time limit expired.
type steps struct {
	stack    []running
	order    []string
	entered  map[string]bool
	attempts map[string]int

	mu      sync.Mutex
	expired *governance.StepProfile
}

// current returns the name of the innermost step in progress, or "".
func (st *steps) current() string {
	if n := len(st.stack); n > 0 {
		return st.stack[n-1].prof.Step
	}
	return ""
}

// inProgress reports whether name is the innermost step in progress.
func (st *steps) inProgress(name string) bool { return st.current() == name && name != "" }

// push enters a step; kill stops the sandbox when the step's own time
// limit expires, whatever steps around it allow.
func (st *steps) push(prof *governance.StepProfile, kill func()) {
	if st.entered == nil {
		st.entered = map[string]bool{}
	}
	st.entered[prof.Step] = true
	st.order = append(st.order, prof.Step)
	r := running{prof: prof, begun: time.Now(), at: len(st.order) - 1}
	if prof.MaxTimeMS > 0 {
		r.timer = time.AfterFunc(time.Duration(prof.MaxTimeMS)*time.Millisecond, func() {
			st.mu.Lock()
			if st.expired == nil {
				st.expired = prof
			}
			st.mu.Unlock()
			kill()
		})
	}
	st.stack = append(st.stack, r)
}

// pop leaves the innermost step and returns it.
func (st *steps) pop() running {
	n := len(st.stack)
	r := st.stack[n-1]
	if r.timer != nil {
		r.timer.Stop()
	}
	st.stack = st.stack[:n-1]
	return r
}

// retried forgets the steps entered during the failed attempt of the
// innermost step: they may be entered again.
func (st *steps) retried() {
	r := st.stack[len(st.stack)-1]
	for _, inner := range st.order[r.at+1:] {
		delete(st.entered, inner)
	}
	st.order = st.order[:r.at+1]
}

// stopTimers stops every time limit still running.
func (st *steps) stopTimers() {
	for _, r := range st.stack {
		if r.timer != nil {
			r.timer.Stop()
		}
	}
}

// expiredStep returns the step whose time limit stopped the sandbox, or
// nil.
func (st *steps) expiredStep() *governance.StepProfile {
	st.mu.Lock()
	defer st.mu.Unlock()
	return st.expired
}

// stepBegin lets the guest enter an admitted step it has not entered yet.
// A step refused is refused before anything is recorded of it.
func (s *session) stepBegin(ctx context.Context, id uint64, b *control.StepBegin) error {
	prof := s.req.Admission.Profile(b.Name)
	if prof == nil {
		return fmt.Errorf("%w: the guest asked to enter step %q, which was not admitted", control.ErrProtocol, b.Name)
	}
	if s.steps.entered[b.Name] {
		return fmt.Errorf("%w: the guest asked to enter step %q a second time", control.ErrProtocol, b.Name)
	}
	if err := s.record(ctx, chain.OriginHost, b.Name, &chain.StepStarted{}); err != nil {
		return err
	}
	if s.rep.Dispatch == 0 {
		s.rep.Dispatch = time.Since(s.start)
	}
	s.steps.push(prof, func() { s.sb.Kill() })
	_, err := s.c.Send(&control.OK{}, id)
	return err
}

// stepEnd closes the step in progress.
func (s *session) stepEnd(ctx context.Context, id uint64, b *control.StepEnd) error {
	if !s.steps.inProgress(b.Name) {
		return fmt.Errorf("%w: the guest ended step %q, which is not the step in progress", control.ErrProtocol, b.Name)
	}
	r := s.steps.pop()
	took := time.Since(r.begun)
	s.rep.Steps = append(s.rep.Steps, StepRecord{Name: b.Name, OK: b.OK, Error: b.Error, Duration: took})
	// How the step went is the guest's claim; that it ended, when, is the
	// host's observation.
	if err := s.record(ctx, chain.OriginGuest, b.Name, &chain.StepFinished{OK: b.OK, Error: b.Error, DurationMS: took.Milliseconds()}); err != nil {
		return err
	}
	_, err := s.c.Send(&control.OK{}, id)
	return err
}

// stepRetry lets the step in progress run again, up to its admitted
// :retry; the steps entered during the failed attempt may be entered
// again. Its time limit, if any, keeps running: it bounds every attempt
// together.
func (s *session) stepRetry(ctx context.Context, id uint64, b *control.StepRetry) error {
	if !s.steps.inProgress(b.Name) {
		return fmt.Errorf("%w: the guest retried step %q, which is not the step in progress", control.ErrProtocol, b.Name)
	}
	if s.steps.attempts == nil {
		s.steps.attempts = map[string]int{}
	}
	allowed := s.req.Admission.Profile(b.Name).Retry
	done := s.steps.attempts[b.Name]
	if b.Attempt != done+1 || b.Attempt > allowed {
		return fmt.Errorf("%w: the guest asked for attempt %d of step %q, which was admitted with :retry %d and has been retried %d time(s)",
			control.ErrProtocol, b.Attempt+1, b.Name, allowed, done)
	}
	s.steps.attempts[b.Name] = b.Attempt
	s.steps.retried()
	if err := s.record(ctx, chain.OriginHost, b.Name, &chain.StepStarted{Attempt: int64(b.Attempt) + 1, Cause: b.Error}); err != nil {
		return err
	}
	_, err := s.c.Send(&control.OK{}, id)
	return err
}
