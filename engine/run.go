package engine

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/ccos-project/ccos/archive"
	"github.com/ccos-project/ccos/chain"
	"github.com/ccos-project/ccos/control"
	"github.com/ccos-project/ccos/egress"
	"github.com/ccos-project/ccos/orchestrator"
	"github.com/ccos-project/ccos/receipt"
	"github.com/ccos-project/ccos/rtfs"
	"github.com/ccos-project/ccos/sandbox"
)

// RunRequest is one plan to admit and run.
type RunRequest struct {
	// ID names the run (the chain's session, the egress decisions' run);
	// a new one when empty.
	ID string
	PlanInput
	// Admitted, when set, is the plan already admitted by Admit (for this
	// agent); PlanInput is then not read again.
	Admitted *Admitted
	// Restarts is how many times the plan runs again in a new sandbox
	// after its sandbox crashed, without repeating recorded side effects.
	Restarts int
	// Calls is the record of side-effecting host calls the run shares
	// with earlier attempts (a resumed run's, from a durable journal); a
	// new one in memory when nil.
	Calls *orchestrator.CallRecord
	// OnEvent is told of everything the run records, as it happens (it
	// must not block).
	OnEvent func(Event)
}

// Event is one thing that happened in a run, as a live observer sees it:
// a chain event (Type is its type: plan.admitted, step.started,
// capability.call, proxy.decision, ...; Data its payload as JSON) or the
// plan's output (Type "output", Text).
type Event struct {
	Run    string          `json:"run"`
	Seq    int             `json:"seq"`
	Time   time.Time       `json:"time"`
	Type   string          `json:"type"`
	Origin string          `json:"origin,omitempty"`
	Step   string          `json:"step,omitempty"`
	Data   json.RawMessage `json:"data,omitempty"`
	Text   string          `json:"text,omitempty"`
}

// EventOutput is the Type of an Event carrying plan output.
const EventOutput = "output"

// RunResult is the outcome of a run that started.
type RunResult struct {
	ID       string `json:"run_id"`
	Agent    string `json:"agent"`
	Plan     string `json:"plan"`
	PlanHash string `json:"plan_hash"`
	Provider string `json:"provider"`
	// Value is the plan's value in canonical RTFS, nil when it failed.
	Value *string `json:"value,omitempty"`
	// Error is the plan's error, when it reported one.
	Error           *control.ErrorInfo        `json:"error,omitempty"`
	Output          string                    `json:"output"`
	OutputTruncated bool                      `json:"output_truncated,omitempty"`
	Steps           []orchestrator.StepRecord `json:"steps"`
	// Checkpoint is the chain's signed checkpoint at the end of the run.
	Checkpoint string `json:"checkpoint,omitempty"`
	// InDoubt are the idempotency keys of side-effecting calls the run
	// asked for that were started earlier and never finished: they were
	// not repeated, and the run reports them.
	InDoubt      []string          `json:"in_doubt,omitempty"`
	Measurements map[string]string `json:"measurements,omitempty"`
	Timings      Timings           `json:"timings_ms"`
	// Receipt is the run's signed receipt (a DSSE envelope, see package
	// receipt) when the agent's chain has a signing key; nil otherwise.
	Receipt []byte `json:"-"`
	// Report is the orchestrator's report (nil when the sandbox failed).
	Report *orchestrator.Report `json:"-"`
}

// Timings are the run's phases in milliseconds.
type Timings struct {
	Startup  float64 `json:"startup"`
	Dispatch float64 `json:"dispatch"`
	Total    float64 `json:"total"`
}

// OK reports whether the plan ran and returned a value.
func (r *RunResult) OK() bool { return r.Value != nil && r.Error == nil }

// NewRunID returns a new run id.
func NewRunID() string {
	var b [8]byte
	rand.Read(b[:])
	return "ccos-" + hex.EncodeToString(b[:])
}

// Run admits the plan (unless req.Admitted is given) and runs it in a
// sandbox of the agent's provider (never weaker than the config asks),
// recording everything in the agent's chain and archive. It returns a
// result whenever the run started, with an error when the sandbox or the
// session failed (the guest crashed, broke the protocol, ran out of
// time); a plan that reported an error is a result with Error set, not an
// error. A plan that is not admitted is an *AdmissionError, recorded in
// the chain as plan.rejected.
func (a *Agent) Run(ctx context.Context, req RunRequest) (*RunResult, error) {
	if req.ID == "" {
		req.ID = NewRunID()
	}
	rec, err := a.recorder()
	if err != nil {
		return nil, err
	}
	ad := req.Admitted
	if ad == nil {
		if ad, err = a.Admit(req.PlanInput); err != nil {
			a.RecordRejected(ctx, req.ID, req.PlanInput, err)
			return nil, err
		}
	}
	prov, err := a.Provider(ad.Context.Isolation)
	if err != nil {
		return nil, err
	}
	arc, err := a.archive()
	if err != nil {
		return nil, err
	}
	var planID string
	setIntent := func(string) error { return nil }
	if arc != nil {
		p := ad.Plan
		if planID, err = arc.PutPlan(archive.Plan{Name: p.Name, Source: string(p.Source), Steps: p.StepNames(), File: p.File}); err != nil {
			return nil, fmt.Errorf("storing the plan: %w", err)
		}
		if setIntent, err = archiveIntent(arc, p, planID); err != nil {
			return nil, fmt.Errorf("storing the plan's intent: %w", err)
		}
	}
	rs := &runState{id: req.ID, agent: a, planHash: ad.Admission.PlanHash, rec: rec, observe: req.OnEvent}
	a.e.mu.Lock()
	if _, dup := a.e.runs[req.ID]; dup {
		a.e.mu.Unlock()
		return nil, fmt.Errorf("engine: a run with id %s is in progress", req.ID)
	}
	a.e.runs[req.ID] = rs
	a.e.mu.Unlock()
	defer func() {
		a.e.mu.Lock()
		delete(a.e.runs, req.ID)
		a.e.mu.Unlock()
	}()
	calls := req.Calls
	if calls == nil {
		calls = orchestrator.NewCallRecord()
	}
	from := rec.Size() // the run's events come after this
	rep, runErr := orchestrator.Run(withRun(ctx, rs), orchestrator.Request{
		Plan:      ad.Plan,
		Admission: ad.Admission,
		Provider:  prov,
		Spec:      sandbox.Spec{ID: req.ID, Limits: a.o.Limits},
		Limits:    a.o.Evaluation,
		Caps:      a.caps,
		Recorder:  rec,
		Calls:     calls,
		Restarts:  req.Restarts,
		OnEvent:   rs.event,
		OnOutput:  rs.output,
	})
	res := &RunResult{ID: req.ID, Agent: a.ID(), Plan: ad.Plan.Name, PlanHash: ad.Admission.PlanHash, Provider: prov.Name(),
		Steps: []orchestrator.StepRecord{}, InDoubt: calls.InDoubt(), Report: rep}
	if rep != nil {
		res.Provider, res.Output, res.OutputTruncated, res.Error = rep.Provider, rep.Output, rep.Truncated, rep.Error
		if rep.Steps != nil {
			res.Steps = rep.Steps
		}
		if rep.Value != nil {
			v := rtfs.Print(rep.Value)
			res.Value = &v
		}
		res.Checkpoint, res.Measurements = string(rep.Checkpoint), rep.Measurements
		res.Timings = Timings{Startup: ms(rep.Startup), Dispatch: ms(rep.Dispatch), Total: ms(rep.Total)}
	}
	status := "completed"
	if runErr != nil || !res.OK() {
		status = "failed"
	}
	if ierr := setIntent(status); ierr != nil && runErr == nil {
		runErr = fmt.Errorf("recording the intent's status: %w", ierr)
	}
	if arc != nil && res.Checkpoint != "" {
		if _, err := arc.PutCheckpoint(archive.Checkpoint{Note: res.Checkpoint, Plan: planID}); err != nil && runErr == nil {
			runErr = fmt.Errorf("storing the checkpoint: %w", err)
		}
	}
	if err := a.receipt(ctx, res, rec, from, arc, planID); err != nil && runErr == nil {
		runErr = err
	}
	a.mu.Lock()
	a.runs++
	a.mu.Unlock()
	return res, runErr
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// receipt makes the signed receipt of a run whose chain has a key (also
// of a run whose sandbox failed, once its end and checkpoint are
// recorded), and keeps it in the archive when the agent has one.
func (a *Agent) receipt(ctx context.Context, res *RunResult, rec *chain.Recorder, from uint64, arc *archive.Archive, planID string) error {
	if a.o.Signer == nil {
		return nil
	}
	env, err := receipt.ForRecorder(context.WithoutCancel(ctx), rec, from, res.ID, a.o.Signer)
	if errors.Is(err, receipt.ErrNoCheckpoint) && res.Checkpoint == "" {
		return nil // the sandbox never started: nothing signed to prove
	}
	if err != nil {
		return fmt.Errorf("making the run's receipt: %w", err)
	}
	res.Receipt = env
	if arc != nil {
		if _, err := arc.PutReceipt(archive.Receipt{Envelope: string(env), Run: res.ID, Plan: planID}); err != nil {
			return fmt.Errorf("storing the receipt: %w", err)
		}
	}
	return nil
}

// RecordRejected records in the agent's chain a plan the governance kernel
// refused (run is the id the run would have had); errors of other stages
// (a plan that does not read) are not recorded.
func (a *Agent) RecordRejected(ctx context.Context, run string, in PlanInput, err error) {
	var ae *AdmissionError
	if !errors.As(err, &ae) || ae.Stage != "admission" {
		return
	}
	rec, rerr := a.recorder()
	if rerr != nil {
		return
	}
	hash := planHashOf(in.Source)
	if _, rerr := rec.Append(ctx, chain.Event{Type: chain.TypePlanRejected, Origin: chain.OriginHost, Session: run,
		Plan: hash, Payload: (&chain.PlanRejected{Error: ae.Err.Error()}).Encode()}); rerr != nil {
		a.env.Logger.Warn("recording a rejected plan in the causal chain", "run", run, "error", rerr)
	}
}

// runState is what the engine knows of a run in progress: where its
// egress decisions and live events go.
type runState struct {
	id       string
	agent    *Agent
	planHash string
	rec      *chain.Recorder
	observe  func(Event)

	mu     sync.Mutex
	seq    int
	grants map[string]*egress.Grant
}

type runKey struct{}

func withRun(ctx context.Context, rs *runState) context.Context {
	return context.WithValue(ctx, runKey{}, rs)
}

func runFrom(ctx context.Context) *runState {
	rs, _ := ctx.Value(runKey{}).(*runState)
	return rs
}

// grant returns the run's egress grant for a step, compiling it once.
func (rs *runState) grant(eg *agentEgress, step string, acl egress.StepACL) (*egress.Grant, error) {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	if g, ok := rs.grants[step]; ok {
		return g, nil
	}
	g, err := eg.proxy.Grant(eg.agent, step, rs.id, rs.planHash, acl)
	if err != nil {
		return nil, err
	}
	if rs.grants == nil {
		rs.grants = map[string]*egress.Grant{}
	}
	rs.grants[step] = g
	return g, nil
}

// event passes a recorded chain event to the observer.
func (rs *runState) event(ev chain.Event) {
	if rs.observe == nil {
		return
	}
	e := Event{Type: string(ev.Type), Origin: ev.Origin.String(), Step: ev.Step, Time: ev.Time}
	if ev.Payload != nil {
		e.Data = payloadJSON(ev.Payload)
	}
	rs.emit(e)
}

func (rs *runState) output(text string) {
	if rs.observe != nil {
		rs.emit(Event{Type: EventOutput, Text: text})
	}
}

func (rs *runState) emit(e Event) {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	rs.seq++
	e.Run, e.Seq = rs.id, rs.seq
	if e.Time.IsZero() {
		e.Time = time.Now().UTC()
	}
	rs.observe(e)
}

// decision records one of the run's egress decisions in its chain and
// tells the observer.
func (rs *runState) decision(d egress.Decision) {
	ev := decisionEvent(d)
	ev.Session, ev.Plan = rs.id, rs.planHash
	if _, err := rs.rec.Append(context.Background(), ev); err != nil {
		rs.agent.env.Logger.Warn("recording an egress decision in the causal chain", "run", rs.id, "error", err)
	}
	rs.event(ev)
}

// recordDecision records a decision no run's grant carried.
func (a *Agent) recordDecision(d egress.Decision) {
	rec, err := a.recorder()
	if err != nil {
		return
	}
	if _, err := rec.Append(context.Background(), decisionEvent(d)); err != nil {
		a.env.Logger.Warn("recording an egress decision in the causal chain", "error", err)
	}
}

// decisionEvent is the chain event of an egress decision: a host fact.
func decisionEvent(d egress.Decision) chain.Event {
	p := &chain.ProxyDecision{Action: string(d.Action), Kind: d.Kind, Method: d.Method, Host: d.Host, Port: int64(d.Port),
		Rule: string(d.Rule), Reason: d.Reason, Status: int64(d.Status), DLP: d.DLP, Error: d.Err, Secrets: d.Secrets}
	if d.Addr.IsValid() {
		p.Addr = d.Addr.String()
	}
	return chain.Event{Type: chain.TypeProxyDecision, Origin: chain.OriginHost, Session: d.Run, Plan: d.Plan, Step: d.Step,
		Payload: p.Encode()}
}
