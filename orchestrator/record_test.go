package orchestrator

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/ccos-project/ccos/capability"
	"github.com/ccos-project/ccos/chain"
	"github.com/ccos-project/ccos/guest"
	"github.com/ccos-project/ccos/rtfs"
	"github.com/ccos-project/ccos/sandbox"
	"github.com/ccos-project/ccos/sandbox/mock"
	"golang.org/x/mod/sumdb/note"
)

// Every run is recorded: what was admitted, the sandbox's life, each step
// (its outcome as the guest's claim), host capability calls and results,
// the guest's report, the outcome, and a signed checkpoint.
func TestRunIsRecorded(t *testing.T) {
	skey, vkey, err := chain.GenerateKey("ccos-test")
	if err != nil {
		t.Fatal(err)
	}
	signer, err := note.NewSigner(skey)
	if err != nil {
		t.Fatal(err)
	}
	store := chain.NewMemoryStore()
	rec, err := chain.NewRecorder(store, signer, chain.Options{})
	if err != nil {
		t.Fatal(err)
	}
	caps := capability.Builtins(func() time.Time { return time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC) })
	p, a := admit(t, `(plan "rec" :body (do (step "a" (call :ccos.math.add 1 2)) (step "b" (call :ccos.system.current-time))))`, caps)
	rep, err := Run(context.Background(), Request{Plan: p, Admission: a, Provider: &mock.Provider{Guest: guest.Run},
		Caps: caps, Recorder: rec, Spec: sandbox.Spec{Limits: sandbox.Limits{Deadline: 10 * time.Second}}})
	if err != nil || rtfs.Print(rep.Value) != "2026-01-01T00:00:00Z" {
		t.Fatalf("run: %v %v", rep, err)
	}
	var got []string
	err = store.Records(func(i uint64, data []byte) error {
		e, err := chain.Decode(data)
		if err != nil {
			return err
		}
		got = append(got, string(e.Type)+"/"+e.Origin.String()+"/"+e.Step)
		if e.Plan != a.PlanHash && e.Type != chain.TypeCheckpoint {
			t.Errorf("event %d is not tied to the plan hash: %q", i, e.Plan)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"plan.admitted/host/", "sandbox.lifecycle/host/",
		"step.started/host/a", "capability.call/guest/a", "capability.result/guest/a", "step.finished/guest/a",
		"step.started/host/b", "capability.call/host/b", "capability.result/host/b", "step.finished/guest/b",
		"guest.event/guest/", "sandbox.lifecycle/host/", "plan.finished/host/", "checkpoint/host/",
	}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("events:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	verifier, _ := note.NewVerifier(vkey)
	if _, err := chain.Verify(store, verifier); err != nil {
		t.Errorf("verify: %v", err)
	}
}
