// Package orchestrator runs admitted plans in sandboxes: it starts the
// sandbox, speaks the host side of the control protocol, checks every
// request of the guest against what it admitted, runs the capabilities that
// belong to the host, and reports the plan's value, output and steps.
package orchestrator

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync/atomic"
	"time"

	"github.com/ccos-project/ccos/capability"
	"github.com/ccos-project/ccos/chain"
	"github.com/ccos-project/ccos/control"
	"github.com/ccos-project/ccos/governance"
	"github.com/ccos-project/ccos/plan"
	"github.com/ccos-project/ccos/rtfs"
	"github.com/ccos-project/ccos/sandbox"
)

// Request is one plan to run.
type Request struct {
	Plan *plan.Plan
	// Admission is the governance kernel's admission of Plan: the steps the
	// guest may enter and each step's profile.
	Admission *governance.Admission
	Provider  sandbox.Provider
	// Spec describes the sandbox; its ID is filled in if empty.
	Spec sandbox.Spec
	// Caps are the capabilities the host may run for the guest.
	Caps *capability.Registry
	// Limits are the evaluation limits the guest is asked to apply.
	Limits control.RunLimits
	// MaxOutput bounds the plan output the host keeps (1 MiB if 0).
	MaxOutput int
	// Recorder, when set, receives every fact of the run and the guest's
	// claims (marked as such); a failure to record stops the run.
	Recorder *chain.Recorder
	// OnEvent, when set, is told of every event of the run as it is
	// recorded (with or without a Recorder), and OnOutput of the plan's
	// output as it arrives: the live view of a run. They are called from
	// the run's goroutine and must not block.
	OnEvent  func(chain.Event)
	OnOutput func(text string)
	// Calls is the host's record of the side-effecting calls it ran, by
	// idempotency key (a new one if nil); a plan run again with the same
	// record does not repeat them.
	Calls *CallRecord
	// Restarts is how many times the plan is run again, in a new sandbox
	// with the same call record, after its sandbox crashed (ErrCrashed).
	Restarts int
}

// StepRecord is what the host saw of one step.
type StepRecord struct {
	Name     string        `json:"name"`
	OK       bool          `json:"ok"`
	Error    string        `json:"error,omitempty"`
	Duration time.Duration `json:"duration_ns"`
}

// Report is the outcome of a plan that ran to its end (successfully or
// with a plan error).
type Report struct {
	// Value is the plan's value; nil when the plan failed.
	Value rtfs.Value
	// Error is the plan's error; nil when it succeeded.
	Error *control.ErrorInfo
	// Output is what the plan printed (bounded; Truncated says if cut).
	Output    string
	Truncated bool
	Steps     []StepRecord
	Provider  string
	// Checkpoint is the signed note of the chain checkpoint taken at the end
	// of the run (nil without a recorder that can sign).
	Checkpoint []byte
	// Startup is the time from starting the sandbox to the guest's hello;
	// Dispatch, from starting the sandbox to the plan running (its first
	// step entered, or its end if it has no step); Total, from start to the
	// guest's exit.
	Startup, Dispatch, Total time.Duration
	// Measurements are the host's measurements of the guest image, for
	// providers that attest what they boot (sandbox.Attested).
	Measurements map[string]string
}

// ExitGrace is how long a guest may take to exit after reporting its
// result before the host kills it.
const ExitGrace = 2 * time.Second

// ErrStepTimeout is wrapped when a step ran past its declared time limit.
var ErrStepTimeout = errors.New("step time limit exceeded")

// ErrGuest is wrapped by errors caused by the guest: a broken protocol, a
// request for something not admitted, a crash.
var ErrGuest = errors.New("guest failure")

// ErrCrashed is wrapped, with ErrGuest, when the sandbox ended before the
// guest reported a result without breaking the protocol: a crash, which
// Request.Restarts may retry.
var ErrCrashed = errors.New("the sandbox crashed")

// Run runs one plan to its end. It returns a Report when the guest reported
// a value or a plan error, and an error when the sandbox or the session
// failed (the guest crashed, broke the protocol, or ran out of time). A
// crashed sandbox is replaced up to Request.Restarts times; the plan then
// runs again from its start, and the side-effecting calls the host already
// ran are answered from its record instead of running again.
func Run(ctx context.Context, req Request) (*Report, error) {
	if req.Admission == nil {
		return nil, errors.New("orchestrator: the plan was not admitted (Request.Admission is nil)")
	}
	if req.Spec.ID == "" {
		req.Spec.ID = newID()
	}
	if req.MaxOutput <= 0 {
		req.MaxOutput = 1 << 20
	}
	if req.Calls == nil {
		req.Calls = NewCallRecord()
	}
	if err := (&session{req: req}).recordAdmission(ctx); err != nil {
		return nil, err
	}
	base := req.Spec.ID
	for attempt := 0; ; attempt++ {
		if attempt > 0 {
			req.Spec.ID = fmt.Sprintf("%s-r%d", base, attempt)
		}
		rep, err := runOnce(ctx, req)
		if err == nil || !errors.Is(err, ErrCrashed) || attempt >= req.Restarts || ctx.Err() != nil {
			return rep, err
		}
	}
}

// runOnce runs the plan in one sandbox.
func runOnce(ctx context.Context, req Request) (*Report, error) {
	lim := req.Spec.Limits.WithDefaults()
	ctx, cancel := context.WithTimeout(ctx, lim.Deadline+5*time.Second)
	defer cancel()
	s := &session{req: req, rep: &Report{Provider: req.Provider.Name()}}
	start := time.Now()
	sb, err := req.Provider.Start(ctx, req.Spec)
	if err != nil {
		var ae *sandbox.AttestationError
		if errors.As(err, &ae) {
			s.record(ctx, chain.TypeAttestation, chain.OriginHost, "", attestationPayload("refused", ae.Measurements,
				kw("artifact"), str(ae.Artifact), kw("expected"), str(ae.Expected), kw("actual"), str(ae.Actual)))
		}
		s.record(ctx, chain.TypeSandboxLifecycle, chain.OriginHost, "", rtfs.MapOf(kw("event"), kw("start-failed"),
			kw("provider"), str(req.Provider.Name()), kw("error"), str(err.Error())))
		return nil, fmt.Errorf("starting the %s sandbox: %w", req.Provider.Name(), err)
	}
	s.sb, s.c, s.start = sb, control.NewConn(sb.Control(), control.HostSide, 0), start
	err = s.record(ctx, chain.TypeSandboxLifecycle, chain.OriginHost, "", rtfs.MapOf(kw("event"), kw("started"),
		kw("provider"), str(req.Provider.Name()), kw("sandbox"), str(req.Spec.ID)))
	if a, ok := sb.(sandbox.Attested); ok && err == nil {
		s.measured = a.Measurements()
		s.rep.Measurements = s.measured
		err = s.record(ctx, chain.TypeAttestation, chain.OriginHost, "", attestationPayload("measured", s.measured))
	}
	if err != nil {
		sb.Kill()
		sb.Wait()
		return nil, err
	}
	stop := context.AfterFunc(ctx, func() { sb.Kill() })
	defer stop()
	serr := s.serve(ctx)
	if serr != nil {
		sb.Kill()
	} else {
		// The guest has reported; it has nothing more to say. Closing the
		// channel tells it so, and a guest that lingers past the grace
		// period is killed rather than left to its deadline.
		sb.Control().Close()
		grace := time.AfterFunc(ExitGrace, func() { sb.Kill() })
		defer grace.Stop()
	}
	werr := sb.Wait()
	s.rep.Total = time.Since(start)
	if err := s.recordEnd(ctx, serr, werr); err != nil && serr == nil {
		serr = err
	}
	switch {
	case errors.Is(serr, ErrStepTimeout), errors.Is(serr, ErrChain):
		return nil, serr
	case serr != nil && werr != nil && !s.gotDone && !errors.Is(serr, control.ErrProtocol) && ctx.Err() == nil:
		return nil, fmt.Errorf("%w: %w: %w (%w)%s", ErrGuest, ErrCrashed, serr, werr, logTail(sb))
	case serr != nil && werr != nil:
		return nil, fmt.Errorf("%w: %w (%w)%s", ErrGuest, serr, werr, logTail(sb))
	case serr != nil:
		return nil, fmt.Errorf("%w: %w%s", ErrGuest, serr, logTail(sb))
	case werr != nil && !s.gotDone:
		return nil, fmt.Errorf("%w: %w: %w%s", ErrGuest, ErrCrashed, werr, logTail(sb))
	}
	return s.rep, nil
}

func logTail(sb sandbox.Sandbox) string {
	log := strings.TrimSpace(string(sb.Log()))
	if log == "" {
		return ""
	}
	if len(log) > 2000 {
		log = "..." + log[len(log)-2000:]
	}
	return "\nguest log:\n" + log
}

func newID() string {
	var b [8]byte
	rand.Read(b[:])
	return "ccos-" + hex.EncodeToString(b[:])
}

type session struct {
	req Request
	sb  sandbox.Sandbox
	c   *control.Conn
	ran map[string]bool
	// stepTimer enforces the running step's declared time limit; timedOut
	// names the step it stopped.
	stepTimer *time.Timer
	timedOut  atomic.Value
	stack     []string
	begun     []time.Time
	// order lists the steps entered in this run, and at[i] is the index
	// in order of stack[i]; attempts counts each step's retries.
	order    []string
	at       []int
	attempts map[string]int
	rep      *Report
	start    time.Time
	gotDone  bool
	outSeq   uint64
	// lastEvent is the sequence number of the guest's last recorded event.
	lastEvent uint64
	// measured is what the provider measured before boot (nil when it
	// does not attest).
	measured map[string]string
}

// serve runs the host side of the session until the guest's done.
func (s *session) serve(ctx context.Context) error {
	m, err := s.c.Recv()
	if err != nil {
		return fmt.Errorf("waiting for the guest's hello: %w", err)
	}
	h, ok := m.Body.(*control.Hello)
	if !ok {
		return fmt.Errorf("%w: the guest's first message is %s, not hello", control.ErrProtocol, m.Type)
	}
	if h.Protocol != control.ProtocolVersion {
		s.c.Send(&control.Error{Message: fmt.Sprintf("protocol %d is not supported (host speaks %d)", h.Protocol, control.ProtocolVersion)}, 0)
		return fmt.Errorf("%w: guest speaks protocol %d", control.ErrProtocol, h.Protocol)
	}
	s.rep.Startup = time.Since(s.start)
	if err := s.checkGuestMeasurements(ctx, h.Measurements); err != nil {
		s.c.Send(&control.Error{Message: err.Error()}, 0)
		return err
	}
	if _, err := s.c.Send(&control.Welcome{Protocol: control.ProtocolVersion, Session: s.req.Spec.ID}, 0); err != nil {
		return err
	}
	run := &control.Run{Plan: string(s.req.Plan.Source), File: s.req.Plan.File, PlanHash: s.req.Admission.PlanHash, Steps: s.req.Plan.StepNames(),
		Unstepped: s.req.Admission.Unstepped, Limits: s.req.Limits}
	for _, p := range s.req.Admission.Profiles {
		run.Grants = append(run.Grants, control.Grant{Step: p.Step, Capabilities: p.Capabilities, Dynamic: p.Dynamic})
	}
	if _, err := s.c.Send(run, 0); err != nil {
		return err
	}
	s.ran = map[string]bool{}
	for {
		m, err := s.c.Recv()
		if err != nil {
			if step, ok := s.timedOut.Load().(string); ok {
				return fmt.Errorf("%w: step %q exceeded its time limit of %d ms and was stopped", ErrStepTimeout, step, s.req.Admission.Profile(step).MaxTimeMS)
			}
			if ctx.Err() != nil {
				return fmt.Errorf("the run exceeded its deadline: %w", ctx.Err())
			}
			if errors.Is(err, io.EOF) {
				return errors.New("the guest closed the control channel before reporting a result")
			}
			return err
		}
		done, err := s.handle(ctx, m)
		if err != nil {
			s.c.Send(&control.Error{Message: err.Error()}, 0)
			return err
		}
		if done {
			return nil
		}
	}
}

// handle answers one guest message; it returns true at done. An error is a
// violation that ends the session.
func (s *session) handle(ctx context.Context, m *control.Message) (bool, error) {
	switch b := m.Body.(type) {
	case *control.StepBegin:
		prof := s.req.Admission.Profile(b.Name)
		if prof == nil {
			return false, fmt.Errorf("%w: the guest asked to enter step %q, which was not admitted", control.ErrProtocol, b.Name)
		}
		if err := s.record(ctx, chain.TypeStepStarted, chain.OriginHost, b.Name, rtfs.Nil{}); err != nil {
			return false, err
		}
		if s.ran[b.Name] {
			return false, fmt.Errorf("%w: the guest asked to enter step %q a second time", control.ErrProtocol, b.Name)
		}
		s.ran[b.Name] = true
		if s.rep.Dispatch == 0 {
			s.rep.Dispatch = time.Since(s.start)
		}
		s.stack = append(s.stack, b.Name)
		s.begun = append(s.begun, time.Now())
		s.order = append(s.order, b.Name)
		s.at = append(s.at, len(s.order)-1)
		if prof.MaxTimeMS > 0 && s.stepTimer == nil {
			name := b.Name
			s.stepTimer = time.AfterFunc(time.Duration(prof.MaxTimeMS)*time.Millisecond, func() {
				s.timedOut.Store(name)
				s.sb.Kill()
			})
		}
		_, err := s.c.Send(&control.OK{}, m.ID)
		return false, err
	case *control.StepEnd:
		n := len(s.stack)
		if n == 0 || s.stack[n-1] != b.Name {
			return false, fmt.Errorf("%w: the guest ended step %q, which is not the step in progress", control.ErrProtocol, b.Name)
		}
		s.rep.Steps = append(s.rep.Steps, StepRecord{Name: b.Name, OK: b.OK, Error: b.Error, Duration: time.Since(s.begun[n-1])})
		// How the step went is the guest's claim; that it ended, when, is
		// the host's observation.
		if err := s.record(ctx, chain.TypeStepFinished, chain.OriginGuest, b.Name, rtfs.MapOf(kw("ok"), rtfs.Bool{V: b.OK},
			kw("error"), str(b.Error), kw("duration-ms"), ms(time.Since(s.begun[n-1])))); err != nil {
			return false, err
		}
		if s.stepTimer != nil && s.req.Admission.Profile(b.Name).MaxTimeMS > 0 && n == s.timerDepth() {
			s.stepTimer.Stop()
			s.stepTimer = nil
		}
		s.stack, s.begun, s.at = s.stack[:n-1], s.begun[:n-1], s.at[:n-1]
		_, err := s.c.Send(&control.OK{}, m.ID)
		return false, err
	case *control.StepRetry:
		if err := s.retry(ctx, b); err != nil {
			return false, err
		}
		_, err := s.c.Send(&control.OK{}, m.ID)
		return false, err
	case *control.Call:
		step := ""
		if len(s.stack) > 0 {
			step = s.stack[len(s.stack)-1]
		}
		args := make([]rtfs.Value, len(b.Args))
		for i, a := range b.Args {
			args[i] = str(a)
		}
		if err := s.record(ctx, chain.TypeCapabilityCall, chain.OriginHost, step, rtfs.MapOf(
			kw("capability"), kw(b.Capability), kw("args"), rtfs.NewVector(args...))); err != nil {
			return false, err
		}
		v, replayed, err := s.call(ctx, b)
		if errors.Is(err, control.ErrProtocol) {
			return false, err
		}
		result := rtfs.MapOf(kw("capability"), kw(b.Capability), kw("ok"), rtfs.Bool{V: err == nil})
		if replayed {
			result.Set(kw("replayed"), str(b.Key))
		}
		if err != nil {
			result.Set(kw("error"), str(err.Error()))
		} else {
			result.Set(kw("value"), v)
		}
		if rerr := s.record(ctx, chain.TypeCapabilityResult, chain.OriginHost, step, result); rerr != nil {
			return false, rerr
		}
		if err != nil {
			_, serr := s.c.Send(&control.Error{Message: err.Error()}, m.ID)
			return false, serr
		}
		_, err = s.c.Send(&control.Result{Value: rtfs.Print(v)}, m.ID)
		return false, err
	case *control.Events:
		if err := s.recordGuestEvents(ctx, b.Items); err != nil {
			return false, err
		}
		_, err := s.c.Send(&control.OK{}, m.ID)
		return false, err
	case *control.Output:
		if b.Seq != s.outSeq+1 {
			return false, fmt.Errorf("%w: output %d out of sequence (expected %d)", control.ErrProtocol, b.Seq, s.outSeq+1)
		}
		s.outSeq = b.Seq
		if s.req.OnOutput != nil {
			s.req.OnOutput(b.Text)
		}
		room := s.req.MaxOutput - len(s.rep.Output)
		if len(b.Text) > room {
			s.rep.Output += b.Text[:max(room, 0)]
			s.rep.Truncated = true
		} else {
			s.rep.Output += b.Text
		}
		return false, nil
	case *control.Done:
		if len(s.stack) > 0 {
			return false, fmt.Errorf("%w: the guest finished inside step %q", control.ErrProtocol, s.stack[len(s.stack)-1])
		}
		s.gotDone = true
		if s.rep.Dispatch == 0 {
			s.rep.Dispatch = time.Since(s.start)
		}
		if b.Error != nil {
			s.rep.Error = b.Error
			return true, s.record(ctx, chain.TypeGuestEvent, chain.OriginGuest, "", rtfs.MapOf(kw("done"), kw("error"),
				kw("type"), str(b.Error.Type), kw("message"), str(b.Error.Message), kw("where"), str(b.Error.Where)))
		}
		v, err := readValue(*b.Value)
		if err != nil {
			return false, fmt.Errorf("%w: the guest's result does not read: %w", control.ErrProtocol, err)
		}
		s.rep.Value = v
		return true, s.record(ctx, chain.TypeGuestEvent, chain.OriginGuest, "", rtfs.MapOf(kw("done"), kw("value"), kw("value"), v))
	}
	return false, fmt.Errorf("%w: unexpected %s from the guest", control.ErrProtocol, m.Type)
}

// call runs a capability the guest yielded, after checking it; replayed
// is set when the outcome comes from the call record. An error wrapping
// control.ErrProtocol ends the session.
func (s *session) call(ctx context.Context, b *control.Call) (v rtfs.Value, replayed bool, err error) {
	if len(s.stack) == 0 {
		return nil, false, fmt.Errorf("capability %s called outside any step; capabilities that need the host may run only inside an admitted step", b.Capability)
	}
	step := s.stack[len(s.stack)-1]
	if b.Key != "" && b.Key != control.CallKey(s.req.Admission.PlanHash, step, b.Ordinal) {
		return nil, false, fmt.Errorf("%w: call %d of step %q carries idempotency key %s, which is not the key of that call", control.ErrProtocol, b.Ordinal, step, b.Key)
	}
	c, err := s.req.Caps.Lookup(b.Capability)
	if err != nil {
		return nil, false, err
	}
	if c.Class != capability.Host {
		// A hostile guest could yield a guest capability to have the host
		// run it on the host's own files.
		return nil, false, fmt.Errorf("capability %s runs inside the sandbox; the host runs only host capabilities", c.ID)
	}
	prof := s.req.Admission.Profile(step)
	if !prof.Allows(c.ID, c.Contract) {
		return nil, false, fmt.Errorf("capability %s is outside the profile admitted for step %q", c.ID, step)
	}
	args := make([]rtfs.Value, len(b.Args))
	for i, a := range b.Args {
		v, err := readValue(a)
		if err != nil {
			return nil, false, fmt.Errorf("argument %d of %s does not read: %w", i+1, b.Capability, err)
		}
		args[i] = v
	}
	run := func() (rtfs.Value, error) {
		return c.Fn(capability.WithScope(ctx, capability.Scope{Step: step, Effects: prof.Effects,
			NetDomains: prof.Network.Domains, NetMethods: prof.Network.Methods}), args)
	}
	if !c.Mutates {
		v, err := run()
		return v, false, err
	}
	if b.Key == "" {
		return nil, false, fmt.Errorf("capability %s changes things beyond the sandbox, and the call carries no idempotency key", c.ID)
	}
	return s.req.Calls.Once(b.Key, c.ID, b.Args, run)
}

// retry lets the step in progress run again, up to its admitted :retry.
// The steps entered during the failed attempt may be entered again.
func (s *session) retry(ctx context.Context, b *control.StepRetry) error {
	n := len(s.stack)
	if n == 0 || s.stack[n-1] != b.Name {
		return fmt.Errorf("%w: the guest retried step %q, which is not the step in progress", control.ErrProtocol, b.Name)
	}
	if s.attempts == nil {
		s.attempts = map[string]int{}
	}
	allowed := s.req.Admission.Profile(b.Name).Retry
	if b.Attempt != s.attempts[b.Name]+1 || b.Attempt > allowed {
		return fmt.Errorf("%w: the guest asked for attempt %d of step %q, which was admitted with :retry %d and has been retried %d time(s)",
			control.ErrProtocol, b.Attempt+1, b.Name, allowed, s.attempts[b.Name])
	}
	s.attempts[b.Name] = b.Attempt
	for _, inner := range s.order[s.at[n-1]+1:] {
		delete(s.ran, inner)
	}
	s.order = s.order[:s.at[n-1]+1]
	return s.record(ctx, chain.TypeStepStarted, chain.OriginHost, b.Name, rtfs.MapOf(kw("attempt"), rtfs.Int{V: int64(b.Attempt) + 1},
		kw("cause"), str(b.Error)))
}

// readValue reads one value sent by the guest, with the reader's bounds.
func readValue(text string) (rtfs.Value, error) {
	src, err := rtfs.Read([]byte(text), "<guest>", rtfs.ReadOptions{MaxDepth: 200, MaxErrors: 1})
	if err != nil {
		return nil, err
	}
	if len(src.Forms) != 1 {
		return nil, fmt.Errorf("expected one value, found %d", len(src.Forms))
	}
	return src.Forms[0], nil
}

// timerDepth is the depth of the step whose time limit the timer enforces:
// the outermost step in progress that declared one.
func (s *session) timerDepth() int {
	for i, name := range s.stack {
		if s.req.Admission.Profile(name).MaxTimeMS > 0 {
			return i + 1
		}
	}
	return 0
}

// recordEnd records how the sandbox ended and the plan's outcome, then
// signs a checkpoint when the recorder can.
func (s *session) recordEnd(ctx context.Context, serr, werr error) error {
	// The run's own context may be spent (deadline); the record must still
	// be written.
	ctx = context.WithoutCancel(ctx)
	reason := rtfs.Value(kw("exited"))
	if werr != nil {
		reason = str(werr.Error())
	}
	if err := s.record(ctx, chain.TypeSandboxLifecycle, chain.OriginHost, "", rtfs.MapOf(kw("event"), kw("ended"),
		kw("reason"), reason, kw("total-ms"), ms(s.rep.Total))); err != nil {
		return err
	}
	outcome := rtfs.MapOf(kw("ok"), rtfs.Bool{V: serr == nil && s.rep.Error == nil})
	if serr != nil {
		outcome.Set(kw("failure"), str(serr.Error()))
	}
	if err := s.record(ctx, chain.TypePlanFinished, chain.OriginHost, "", outcome); err != nil {
		return err
	}
	if s.req.Recorder != nil && s.req.Recorder.CanCheckpoint() {
		cp, err := s.req.Recorder.Checkpoint(ctx)
		if err != nil {
			return fmt.Errorf("%w: checkpoint: %w", ErrChain, err)
		}
		s.rep.Checkpoint = cp.Note
	}
	return nil
}
