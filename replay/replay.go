// Package replay runs a recorded plan again and says whether it did the
// same thing.
//
// A replay takes the events of one run from a verified causal chain, the
// plan (which must be the one recorded: same plan hash) admitted again by
// the governance kernel, and a sandbox provider. It runs the plan in a
// fresh sandbox through the orchestrator, with every host capability
// answered from the run's recorded results in order: nothing the plan asks
// of the host is done again, so nothing leaves the host. Step seeds are
// derived from the plan hash and the step name, and must equal the ones
// recorded at admission.
//
// The recorded run and the replay are each reduced to the same list of
// observations, in the order they happened: every step's end (ok, error),
// every host capability call (step, capability, arguments, outcome), the
// value or error the guest reported, and the host's verdict. The first
// index where the lists differ is the divergence, named by its step and,
// for a call, its number in the run. A call the record does not have, or
// that differs from the recorded one, is refused (the guest gets an error)
// and reported.
//
// The chain must be verified before it is replayed (chain.Load with the
// chain's key): a recorded result that was changed fails there, before
// anything runs.
package replay

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"

	"github.com/ccos-project/ccos/capability"
	"github.com/ccos-project/ccos/chain"
	"github.com/ccos-project/ccos/governance"
	"github.com/ccos-project/ccos/orchestrator"
	"github.com/ccos-project/ccos/plan"
	"github.com/ccos-project/ccos/rtfs"
	"github.com/ccos-project/ccos/sandbox"
)

// Request is one replay.
type Request struct {
	// Events are a verified chain's events; Run is the session id of the
	// run to replay.
	Events []*chain.Event
	Run    string
	// Plan and Admission are the plan and its admission now (the config
	// may have changed; the admission must still allow the plan).
	Plan      *plan.Plan
	Admission *governance.Admission
	// Caps are the capabilities the plan was admitted with; their host
	// capabilities are replaced by the record's answers.
	Caps     *capability.Registry
	Provider sandbox.Provider
	Spec     sandbox.Spec
}

// Report is the outcome of a replay.
type Report struct {
	// Same is true when every observation of the replay matched the
	// record; Divergence names the first that did not.
	Same       bool
	Divergence *Divergence
	// Observations is how many observations were compared; Calls how many
	// host calls were answered from the record.
	Observations int
	Calls        int
	// Value is the replay's value (nil when the plan failed).
	Value rtfs.Value
	// Provider is the provider the replay ran in.
	Provider string
	// Failure is why the replay's guest failed, if it did (a crash, a
	// protocol violation, its deadline): the observations then stop early.
	Failure string
}

// Divergence is the first difference between a run and its replay.
type Divergence struct {
	// Index is the observation's position (from 0); Step its step ("" for
	// the plan as a whole); Call the host call's number in the run (from
	// 1; 0 when the observation is not a call).
	Index    int
	Step     string
	Call     int
	Recorded string // what the record says ("nothing" when it has no more)
	Replayed string // what the replay did
}

func (d *Divergence) String() string {
	where := "the plan"
	if d.Step != "" {
		where = fmt.Sprintf("step %q", d.Step)
	}
	if d.Call > 0 {
		where += fmt.Sprintf(", host call %d", d.Call)
	}
	return fmt.Sprintf("%s: recorded %s; replayed %s", where, d.Recorded, d.Replayed)
}

// The replay errors.
var (
	ErrNoRun       = errors.New("replay: the chain has no run with that session id")
	ErrOtherPlan   = errors.New("replay: the plan is not the one the run recorded")
	ErrNotReplayed = errors.New("replay: call not answered from the record")
)

// Run replays one recorded run.
func Run(ctx context.Context, req Request) (*Report, error) {
	rec, err := recordedRun(req.Events, req.Run)
	if err != nil {
		return nil, err
	}
	if rec.admitted.PlanHash != req.Admission.PlanHash {
		return nil, fmt.Errorf("%w: recorded %s, given %s", ErrOtherPlan, rec.admitted.PlanHash, req.Admission.PlanHash)
	}
	if d := compareAdmission(rec.admitted, req.Admission); d != nil {
		return &Report{Divergence: d, Provider: req.Provider.Name()}, nil
	}
	t := &tape{calls: rec.calls}
	store := chain.NewMemoryStore()
	recorder, err := chain.NewRecorder(store, nil, chain.Options{})
	if err != nil {
		return nil, err
	}
	spec := req.Spec
	if spec.ID == "" {
		spec.ID = "replay-" + req.Run
	}
	rep, runErr := orchestrator.Run(ctx, orchestrator.Request{Plan: req.Plan, Admission: req.Admission,
		Provider: req.Provider, Spec: spec, Caps: t.registry(req.Caps), Recorder: recorder})
	recorder.Close()
	if runErr != nil && !errors.Is(runErr, orchestrator.ErrGuest) {
		return nil, fmt.Errorf("replay: %w", runErr)
	}
	events, _, _, err := chain.Load(store, nil)
	if err != nil {
		return nil, fmt.Errorf("replay: reading the replay's own record: %w", err)
	}
	got, err := recordedRun(events, spec.ID)
	if err != nil {
		return nil, err
	}
	out := &Report{Provider: req.Provider.Name(), Observations: max(len(rec.obs), len(got.obs)), Calls: t.answered()}
	if rep != nil {
		out.Value = rep.Value
	}
	if runErr != nil {
		out.Failure = runErr.Error()
	}
	out.Divergence = firstDivergence(rec.obs, got.obs)
	out.Same = out.Divergence == nil
	return out, nil
}

// observation is one comparable fact of a run.
type observation struct {
	step string
	call int // host call number in the run, 0 for other facts
	text string
}

// run is what one run recorded.
type run struct {
	admitted *chain.PlanAdmitted
	calls    []hostCall
	obs      []observation
}

// hostCall is a host capability call and its recorded result.
type hostCall struct {
	step   string
	call   *chain.CapabilityCall
	result *chain.CapabilityResult // nil when no result was recorded
}

// recordedRun reduces the events of run to observations. When a crashed
// sandbox was replaced, only the last sandbox's events count (the
// earlier attempts' calls were answered from the call record there).
func recordedRun(events []*chain.Event, id string) (*run, error) {
	all := chain.RunEvents(events, id, ^uint64(0))
	if len(all) == 0 {
		return nil, fmt.Errorf("%w: %q", ErrNoRun, id)
	}
	r := &run{}
	last := all[0].Session
	for _, e := range all {
		if e.Type == chain.TypeSandboxLifecycle && e.Session != last {
			last = e.Session
		}
	}
	var pending *hostCall
	for _, e := range all {
		p, err := e.DecodedPayload()
		if err != nil {
			return nil, fmt.Errorf("replay: event %d: %w", e.Seq, err)
		}
		if a, ok := p.(*chain.PlanAdmitted); ok && r.admitted == nil {
			r.admitted = a
			continue
		}
		if e.Session != last {
			continue
		}
		host := e.Origin == chain.OriginHost
		switch p := p.(type) {
		case *chain.StepFinished:
			r.obs = append(r.obs, observation{step: e.Step, text: fmt.Sprintf("step end ok=%v error=%q", p.OK, p.Error)})
		case *chain.CapabilityCall:
			if host {
				r.calls = append(r.calls, hostCall{step: e.Step, call: p})
				pending = &r.calls[len(r.calls)-1]
			}
		case *chain.CapabilityResult:
			if host && pending != nil {
				pending.result = p
				n := len(r.calls)
				r.obs = append(r.obs, observation{step: e.Step, call: n, text: callText(pending.call, p)})
				pending = nil
			}
		case *chain.Truncated:
			if p.Kind == chain.TypeCapabilityResult && host && pending != nil {
				r.obs = append(r.obs, observation{step: e.Step, call: len(r.calls), text: "call with a result too large to record (truncated)"})
				pending = nil
			}
		case *chain.GuestEvent:
			switch p.Done {
			case "value":
				r.obs = append(r.obs, observation{text: "value " + rtfs.Print(p.Value)})
			case "error":
				r.obs = append(r.obs, observation{text: fmt.Sprintf("plan error %s: %s", p.ErrorType, p.Message)})
			}
		case *chain.PlanFinished:
			r.obs = append(r.obs, observation{text: fmt.Sprintf("finished ok=%v", p.OK)})
		}
	}
	if r.admitted == nil {
		return nil, fmt.Errorf("replay: run %q has no plan.admitted event", id)
	}
	return r, nil
}

func callText(c *chain.CapabilityCall, res *chain.CapabilityResult) string {
	args := make([]string, len(c.Args))
	for i, a := range c.Args {
		args[i] = rtfs.Print(a)
	}
	out := "-> error " + fmt.Sprintf("%q", res.Error)
	if res.OK {
		out = "-> " + rtfs.Print(res.Value)
	}
	return fmt.Sprintf("call %s [%s] %s", c.Capability, strings.Join(args, " "), out)
}

func compareAdmission(rec *chain.PlanAdmitted, a *governance.Admission) *Divergence {
	for i, s := range rec.Steps {
		if i >= len(a.Profiles) || a.Profiles[i].Step != s.Name {
			return &Divergence{Index: -1, Step: s.Name, Recorded: "an admitted step", Replayed: "no such step admitted"}
		}
		if s.Seed != "" && a.Profiles[i].Determinism.Seed != s.Seed {
			return &Divergence{Index: -1, Step: s.Name, Recorded: "seed " + s.Seed, Replayed: "seed " + a.Profiles[i].Determinism.Seed}
		}
	}
	return nil
}

func firstDivergence(rec, got []observation) *Divergence {
	for i := 0; i < len(rec) || i < len(got); i++ {
		var r, g observation
		if i < len(rec) {
			r = rec[i]
		}
		if i < len(got) {
			g = got[i]
		}
		if i < len(rec) && i < len(got) && r == g {
			continue
		}
		d := &Divergence{Index: i, Step: r.step, Call: r.call, Recorded: describe(r, i < len(rec)), Replayed: describe(g, i < len(got))}
		if i >= len(rec) {
			d.Step, d.Call = g.step, g.call
		}
		return d
	}
	return nil
}

func describe(o observation, present bool) string {
	if !present {
		return "nothing"
	}
	return o.text
}

// tape answers host capability calls from the record, in order.
type tape struct {
	mu    sync.Mutex
	calls []hostCall
	next  int
}

func (t *tape) answered() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.next
}

// registry returns caps with every host capability answering from the
// tape.
func (t *tape) registry(caps *capability.Registry) *capability.Registry {
	out := capability.NewRegistry()
	for _, id := range caps.IDs() {
		c, _ := caps.Lookup(id)
		if c.Class == capability.Host {
			cc := *c
			cc.Fn = t.answer(c.ID)
			c = &cc
		}
		out.Add(c)
	}
	return out
}

func (t *tape) answer(id string) capability.Func {
	return func(ctx context.Context, args []rtfs.Value) (rtfs.Value, error) {
		t.mu.Lock()
		defer t.mu.Unlock()
		scope, _ := capability.ScopeFrom(ctx)
		if t.next >= len(t.calls) {
			return nil, fmt.Errorf("%w: the run recorded %d host calls; this is one more (%s in step %q)", ErrNotReplayed, len(t.calls), id, scope.Step)
		}
		rec := t.calls[t.next]
		if rec.call.Capability != id || rec.step != scope.Step || !sameArgs(rec.call.Args, args) {
			return nil, fmt.Errorf("%w: host call %d differs from the record (%s in step %q)", ErrNotReplayed, t.next+1, rec.call.Capability, rec.step)
		}
		if rec.result == nil {
			return nil, fmt.Errorf("%w: host call %d has no recorded result", ErrNotReplayed, t.next+1)
		}
		t.next++
		if !rec.result.OK {
			return nil, errors.New(rec.result.Error)
		}
		return rec.result.Value, nil
	}
}

// sameArgs compares recorded arguments (the host records the RTFS text of
// each as a string) with the replay's values.
func sameArgs(recorded, args []rtfs.Value) bool {
	if len(recorded) != len(args) {
		return false
	}
	for i, r := range recorded {
		text := rtfs.Print(r)
		if s, ok := r.(rtfs.String); ok {
			text = s.V
		}
		if text != rtfs.Print(args[i]) {
			return false
		}
	}
	return true
}
