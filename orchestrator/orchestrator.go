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
	// MaxOutput bounds the plan output the host keeps (1 MiB if 0); past
	// it the output is cut and Report.Truncated set.
	MaxOutput int
	// Bounds bound what the guest can make the host hold or record in one
	// run (DefaultBounds where zero); a guest past one ends the run with a
	// LimitExceeded.
	Bounds Bounds
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
// failed (the guest crashed, broke the protocol, went past a limit
// (LimitExceeded) or ran out of time); with such an error it also returns
// what the host saw until then (output, steps) when the sandbox started.
// A crashed sandbox is replaced up to Request.Restarts times; the plan
// then runs again from its start, and the side-effecting calls the host
// already ran are answered from its record instead of running again.
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
	req.Bounds = req.Bounds.withDefaults()
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
			s.record(ctx, chain.OriginHost, "", &chain.Attestation{Verdict: "refused", Measurements: ae.Measurements,
				Artifact: ae.Artifact, Expected: ae.Expected, Actual: ae.Actual})
		}
		s.record(ctx, chain.OriginHost, "", &chain.SandboxLifecycle{Event: "start-failed",
			Provider: req.Provider.Name(), Error: err.Error()})
		return nil, fmt.Errorf("starting the %s sandbox: %w", req.Provider.Name(), err)
	}
	s.sb, s.c, s.start = sb, control.NewConn(sb.Control(), control.HostSide, 0), start
	err = s.record(ctx, chain.OriginHost, "", &chain.SandboxLifecycle{Event: "started",
		Provider: req.Provider.Name(), Sandbox: req.Spec.ID})
	if a, ok := sb.(sandbox.Attested); ok && err == nil {
		s.measured = a.Measurements()
		s.rep.Measurements = s.measured
		err = s.record(ctx, chain.OriginHost, "", attestationPayload("measured", s.measured))
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
	s.steps.stopTimers()
	s.rep.Total = time.Since(start)
	fail := s.failure(ctx, serr, werr, lim)
	if err := s.recordEnd(ctx, fail, werr); err != nil && fail == nil {
		fail = err
	}
	switch {
	case fail == nil:
		return s.rep, nil
	case errors.Is(fail, ErrChain), errors.Is(fail, ErrStepTimeout):
		return s.rep, fail
	}
	return s.rep, fmt.Errorf("%w%s", fail, logTail(sb))
}

// failure says why a session that did not end with the guest's done
// failed, the most telling reason first: a step's or the sandbox's
// limit, a bound of the host, a crash, or the session's own error.
func (s *session) failure(ctx context.Context, serr, werr error, lim sandbox.Limits) error {
	var le *LimitExceeded
	switch {
	case serr == nil:
		return nil
	case errors.Is(serr, ErrChain):
		return serr
	case s.steps.expiredStep() != nil:
		p := s.steps.expiredStep()
		return fmt.Errorf("%w: step %q exceeded its time limit of %d ms and was stopped", ErrStepTimeout, p.Step, p.MaxTimeMS)
	case errors.As(serr, &le):
		return fmt.Errorf("%w: %w", ErrGuest, serr)
	case sandboxLimit(werr, lim) != nil:
		return fmt.Errorf("%w: %w", ErrGuest, sandboxLimit(werr, lim))
	case werr != nil && !s.gotDone && !errors.Is(serr, control.ErrProtocol) && ctx.Err() == nil:
		return fmt.Errorf("%w: %w: %w (%w)", ErrGuest, ErrCrashed, serr, werr)
	case werr != nil:
		return fmt.Errorf("%w: %w (%w)", ErrGuest, serr, werr)
	}
	return fmt.Errorf("%w: %w", ErrGuest, serr)
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
	req   Request
	sb    sandbox.Sandbox
	c     *control.Conn
	steps steps
	rep   *Report
	start time.Time
	// gotDone is set once the guest reported its result.
	gotDone bool
	outSeq  uint64
	// lastEvent is the sequence number of the guest's last recorded
	// event; events and eventBytes count what was recorded of the guest's
	// events, calls and callBytes the calls it yielded.
	lastEvent             uint64
	events, calls         int
	eventBytes, callBytes int64
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
	if _, err := s.c.Send(s.runMessage(), 0); err != nil {
		return err
	}
	for {
		m, err := s.c.Recv()
		if err != nil {
			if ctx.Err() != nil && s.steps.expiredStep() == nil {
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

// runMessage is the plan handed to the guest, with each step's grant: the
// capabilities the host's decision lets the step call (for a step that
// declared its effects, every capability whose contract fits them and
// that the security context allows), so that the guest runs locally only
// what the host would run.
func (s *session) runMessage() *control.Run {
	run := &control.Run{Plan: string(s.req.Plan.Source), File: s.req.Plan.File, PlanHash: s.req.Admission.PlanHash, Steps: s.req.Plan.StepNames(),
		Unstepped: s.req.Admission.Unstepped, Limits: s.req.Limits}
	for _, p := range s.req.Admission.Profiles {
		run.Grants = append(run.Grants, control.Grant{Step: p.Step, Capabilities: s.req.Admission.Granted(p.Step, s.req.Caps), Dynamic: p.Dynamic})
	}
	return run
}

// handle answers one guest message; it returns true at done. An error is a
// violation that ends the session.
func (s *session) handle(ctx context.Context, m *control.Message) (bool, error) {
	switch b := m.Body.(type) {
	case *control.StepBegin:
		return false, s.stepBegin(ctx, m.ID, b)
	case *control.StepEnd:
		return false, s.stepEnd(ctx, m.ID, b)
	case *control.StepRetry:
		return false, s.stepRetry(ctx, m.ID, b)
	case *control.Call:
		return false, s.hostCall(ctx, m.ID, b)
	case *control.Events:
		return false, s.guestEvents(ctx, m.ID, b)
	case *control.Output:
		return false, s.output(b)
	case *control.Done:
		err := s.done(ctx, b)
		return err == nil, err
	}
	return false, fmt.Errorf("%w: unexpected %s from the guest", control.ErrProtocol, m.Type)
}

// output keeps the plan's output, in sequence, up to MaxOutput bytes.
func (s *session) output(b *control.Output) error {
	if b.Seq != s.outSeq+1 {
		return fmt.Errorf("%w: output %d out of sequence (expected %d)", control.ErrProtocol, b.Seq, s.outSeq+1)
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
	return nil
}

// done takes the plan's value or error.
func (s *session) done(ctx context.Context, b *control.Done) error {
	if n := s.steps.current(); n != "" {
		return fmt.Errorf("%w: the guest finished inside step %q", control.ErrProtocol, n)
	}
	s.gotDone = true
	if s.rep.Dispatch == 0 {
		s.rep.Dispatch = time.Since(s.start)
	}
	if b.Error != nil {
		s.rep.Error = b.Error
		return s.record(ctx, chain.OriginGuest, "", &chain.GuestEvent{Done: "error",
			ErrorType: b.Error.Type, Message: b.Error.Message, Where: b.Error.Where})
	}
	v, err := readValue(*b.Value)
	if err != nil {
		s.gotDone = false
		return fmt.Errorf("%w: the guest's result does not read: %w", control.ErrProtocol, err)
	}
	s.rep.Value = v
	return s.record(ctx, chain.OriginGuest, "", &chain.GuestEvent{Done: "value", Value: v})
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

// recordEnd records how the sandbox ended and the plan's outcome (with
// the limit it went past, if any), then signs a checkpoint when the
// recorder can.
func (s *session) recordEnd(ctx context.Context, fail, werr error) error {
	// The run's own context may be spent (deadline); the record must still
	// be written.
	ctx = context.WithoutCancel(ctx)
	ended := &chain.SandboxLifecycle{Event: "ended", Exited: werr == nil, TotalMS: s.rep.Total.Milliseconds()}
	if werr != nil {
		ended.Reason = werr.Error()
	}
	if err := s.record(ctx, chain.OriginHost, "", ended); err != nil {
		return err
	}
	var le *LimitExceeded
	if errors.As(fail, &le) {
		if err := s.record(ctx, chain.OriginHost, "", &chain.SandboxLifecycle{Event: "limit-exceeded",
			Limit: le.Limit, LimitValue: le.Value, Unit: le.Unit, Detail: le.Detail}); err != nil {
			return err
		}
	}
	outcome := &chain.PlanFinished{OK: fail == nil && s.rep.Error == nil, ValueSHA256: chain.ValueDigest(s.rep.Value)}
	if fail != nil {
		outcome.Failure = fail.Error()
	}
	if err := s.record(ctx, chain.OriginHost, "", outcome); err != nil {
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
