package replay

import (
	"context"
	"errors"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ccos-project/ccos/capability"
	"github.com/ccos-project/ccos/chain"
	"github.com/ccos-project/ccos/config"
	"github.com/ccos-project/ccos/governance"
	"github.com/ccos-project/ccos/guest"
	"github.com/ccos-project/ccos/orchestrator"
	"github.com/ccos-project/ccos/plan"
	"github.com/ccos-project/ccos/rtfs"
	"github.com/ccos-project/ccos/sandbox"
	"github.com/ccos-project/ccos/sandbox/process"
	"github.com/ccos-project/ccos/sandbox/wasm"
	"golang.org/x/mod/sumdb/note"
)

// TestMain makes this test binary the guest of the process provider.
func TestMain(m *testing.M) {
	sandbox.GuestMain = guest.Run
	process.InitIfChild()
	os.Exit(m.Run())
}

const testPlan = `(plan "replay-test" :body
  (let [t (step "clock" (call :ccos.system.current-time))
        s (step "add" (call :ccos.math.add 1 2))]
    [t s]))`

type recorded struct {
	events   []*chain.Event
	signer   note.Signer
	verifier note.Verifier
	session  string
	plan     *plan.Plan
	adm      *governance.Admission
	caps     *capability.Registry
	value    string
}

func admit(t *testing.T, src string) (*plan.Plan, *governance.Admission, *capability.Registry) {
	t.Helper()
	p, err := plan.Read([]byte(src), "plan.rtfs")
	if err != nil {
		t.Fatal(err)
	}
	res := config.Load([]byte(`(profile:minimal "agent.replay")`), "cfg", config.RTFSEvaluator{})
	caps := capability.Builtins(nil) // the real clock
	a, err := governance.Admit(p, res.Config, caps, nil)
	if err != nil {
		t.Fatal(err)
	}
	return p, a, caps
}

func provider(t *testing.T, name string) sandbox.Provider {
	t.Helper()
	var p sandbox.Provider
	switch name {
	case "process":
		p = &process.Provider{}
	case "wasm":
		p = wasmProvider()
	default:
		t.Fatalf("no provider %s in these tests", name)
	}
	if ok, why := p.Available(); !ok {
		if os.Getenv("CI") != "" {
			t.Fatalf("%s provider unavailable: %s", name, why)
		}
		t.Skipf("%s provider unavailable: %s", name, why)
	}
	return p
}

// record runs testPlan in the process sandbox with a signing recorder.
func record(t *testing.T) *recorded {
	t.Helper()
	skey, vkey, _ := chain.GenerateKey("replay.test")
	signer, _ := chain.ParseSigner(skey)
	verifier, _ := chain.ParseVerifier(vkey)
	store := chain.NewMemoryStore()
	rec, _ := chain.NewRecorder(store, signer, chain.Options{})
	p, a, caps := admit(t, testPlan)
	rep, err := orchestrator.Run(context.Background(), orchestrator.Request{Plan: p, Admission: a, Provider: provider(t, "process"),
		Spec: sandbox.Spec{ID: "ccos-replay-1", Limits: sandbox.Limits{Deadline: 20 * time.Second}}, Caps: caps, Recorder: rec})
	if err != nil {
		t.Fatal(err)
	}
	events, _, _, err := chain.Load(store, verifier)
	if err != nil {
		t.Fatal(err)
	}
	return &recorded{events: events, signer: signer, verifier: verifier, session: "ccos-replay-1", plan: p, adm: a, caps: caps, value: rtfs.Print(rep.Value)}
}

func (r *recorded) replay(t *testing.T, events []*chain.Event, prov string) *Report {
	t.Helper()
	rep, err := Run(context.Background(), Request{Events: events, Run: r.session, Plan: r.plan, Admission: r.adm, Caps: r.caps,
		Provider: provider(t, prov), Spec: sandbox.Spec{Limits: sandbox.Limits{Deadline: time.Minute}}})
	if err != nil {
		t.Fatal(err)
	}
	return rep
}

// rerecord writes events again into a new signed chain, with change
// applied to each: a chain that verifies but says something else.
func (r *recorded) rerecord(t *testing.T, change func(e *chain.Event)) []*chain.Event {
	t.Helper()
	store := chain.NewMemoryStore()
	rec, _ := chain.NewRecorder(store, r.signer, chain.Options{})
	for _, e := range r.events {
		if e.Type == chain.TypeCheckpoint {
			if _, err := rec.Checkpoint(context.Background()); err != nil {
				t.Fatal(err)
			}
			continue
		}
		c := *e
		change(&c)
		if _, err := rec.Append(context.Background(), c); err != nil {
			t.Fatal(err)
		}
	}
	events, _, _, err := chain.Load(store, r.verifier)
	if err != nil {
		t.Fatal(err)
	}
	return events
}

func TestReplayIsTheSame(t *testing.T) {
	r := record(t)
	time.Sleep(1100 * time.Millisecond) // the real clock has moved on
	for _, prov := range []string{"process", "wasm"} {
		t.Run(prov, func(t *testing.T) {
			rep := r.replay(t, r.events, prov)
			if !rep.Same || rep.Calls != 1 || rtfs.Print(rep.Value) != r.value {
				t.Fatalf("replay: same=%v divergence=%v calls=%d value=%s (recorded %s) failure=%q", rep.Same, rep.Divergence, rep.Calls, rtfs.Print(rep.Value), r.value, rep.Failure)
			}
		})
	}
}

// A chain with one recorded result changed (and signed again, so that it
// verifies): the replay gets the changed answer and its value differs.
func TestReplayWithAChangedResult(t *testing.T) {
	r := record(t)
	events := r.rerecord(t, func(e *chain.Event) {
		if e.Type == chain.TypeCapabilityResult && e.Origin == chain.OriginHost {
			e.Payload = (&chain.CapabilityResult{Capability: "ccos.system.current-time", OK: true, Value: rtfs.String{V: "1999-12-31T23:59:59Z"}}).Encode()
		}
	})
	rep := r.replay(t, events, "process")
	if rep.Same || rep.Divergence == nil || !strings.Contains(rep.Divergence.Recorded, "value") ||
		!strings.Contains(rep.Divergence.Replayed, "1999-12-31") {
		t.Fatalf("got %+v", rep.Divergence)
	}
}

// A chain whose recorded call differs from what the plan asks: the call is
// refused, not answered, and named with its step and number.
func TestReplayNamesTheDivergentCall(t *testing.T) {
	r := record(t)
	events := r.rerecord(t, func(e *chain.Event) {
		if e.Type == chain.TypeCapabilityCall && e.Origin == chain.OriginHost {
			e.Payload = (&chain.CapabilityCall{Capability: "ccos.system.current-time", Args: []rtfs.Value{rtfs.String{V: "1"}}}).Encode()
		}
	})
	rep := r.replay(t, events, "process")
	d := rep.Divergence
	if rep.Same || d == nil || d.Step != "clock" || d.Call != 1 || !strings.Contains(d.Replayed, "differs from the record") {
		t.Fatalf("got %+v", d)
	}
	if !strings.Contains(d.String(), `step "clock", host call 1`) {
		t.Errorf("message %q", d.String())
	}
}

// A changed record that was not signed again fails verification, before
// any replay.
func TestTamperedChainIsNotReplayed(t *testing.T) {
	r := record(t)
	store := chain.NewMemoryStore()
	for _, e := range r.events {
		c := *e
		if c.Type == chain.TypeCapabilityResult {
			c.Payload = (&chain.CapabilityResult{Capability: "ccos.system.current-time", OK: true, Value: rtfs.String{V: "x"}}).Encode()
		}
		b, _ := chain.Encode(&c)
		<-store.Append(b)
	}
	_, _, _, err := chain.Load(store, r.verifier)
	var ve *chain.VerifyError
	if !errors.As(err, &ve) {
		t.Fatalf("tampered chain loads: %v", err)
	}
}

func TestReplayRefusesAnotherPlan(t *testing.T) {
	r := record(t)
	p, a, caps := admit(t, `(step "clock" (call :ccos.system.current-time))`)
	_, err := Run(context.Background(), Request{Events: r.events, Run: r.session, Plan: p, Admission: a, Caps: caps, Provider: provider(t, "process")})
	if !errors.Is(err, ErrOtherPlan) {
		t.Errorf("got %v", err)
	}
	_, err = Run(context.Background(), Request{Events: r.events, Run: "nope", Plan: p, Admission: a, Caps: caps, Provider: provider(t, "process")})
	if !errors.Is(err, ErrNoRun) {
		t.Errorf("got %v", err)
	}
}

// wasmProvider is one wasm provider for the package's tests (its compiled
// module is cached).
var wasmProvider = sync.OnceValue(func() *wasm.Provider { return wasm.New(wasm.Options{}) })
