package nodeagent

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/ccos-project/ccos/k8s/api/v1alpha1"
	"github.com/ccos-project/ccos/orchestrator"
	coordinationv1 "k8s.io/api/coordination/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/types"
)

// Three agents race for twelve runs: each run is claimed exactly once
// (attempt 1), runs on one node and succeeds; every node gets some.
func TestClaimsAreExclusive(t *testing.T) {
	needAPI(t)
	ns := namespace(t)
	createConfig(t, ns, "calc", netConfig)
	for i := range 3 {
		n := startNode(t, fmt.Sprintf("n%d", i), ns, Options{Capacity: 2})
		select {
		case <-n.Ready():
		case <-time.After(30 * time.Second):
			t.Fatal("node agent not ready")
		}
	}
	// Twelve runs for six slots: every node gets some.
	const runs = 12
	for i := range runs {
		createRun(t, ns, fmt.Sprintf("r%d", i), "calc", fmt.Sprintf(`(plan "p" :body (step "s" (do (sleep 500) (* %d 2))))`, i), "")
	}
	nodes := map[string]int{}
	for i := range runs {
		r := waitRun(t, ns, fmt.Sprintf("r%d", i), 60*time.Second, "the end", final)
		if r.Status.Phase != v1alpha1.PhaseSucceeded || r.Status.Value != fmt.Sprint(i*2) || r.Status.Attempt != 1 {
			t.Errorf("r%d: %s, value %q, attempt %d, error %s", i, r.Status.Phase, r.Status.Value, r.Status.Attempt, r.Status.Error)
		}
		if r.Status.Checkpoint == "" || r.Status.PlanHash == "" || r.Status.Provider != "process" || len(r.Status.Steps) != 1 {
			t.Errorf("r%d: incomplete status %+v", i, r.Status)
		}
		nodes[r.Status.Node]++
	}
	if len(nodes) != 3 {
		t.Errorf("runs per node %v, want all three nodes used", nodes)
	}
}

// A node that stops with runs in progress (its drain time is zero) leaves
// them to another node, which reclaims them once the Lease is gone: the
// POST the first node made and recorded is answered from the call journal
// and not made again; the rest of the plan runs on the new node.
func TestReclaimDoesNotRepeatRecordedCalls(t *testing.T) {
	needAPI(t)
	ns := namespace(t)
	org := startOrigin(t)
	createConfig(t, ns, "net", netConfig)
	first := startNode(t, "first", ns, Options{})
	createRun(t, ns, "r", "net", postPlan(org.port, "reclaim", 3*time.Second), "")
	waitRun(t, ns, "r", 60*time.Second, "the first POST to be journalled", func(r *v1alpha1.AgentRun) bool {
		return len(r.Status.Calls) == 1 && r.Status.Calls[0].Done
	})
	first.halt(t)
	if n := org.count("reclaim"); n != 1 {
		t.Fatalf("the origin saw the first POST %d times before the reclaim", n)
	}
	startNode(t, "second", ns, Options{})
	r := waitRun(t, ns, "r", 60*time.Second, "the end", final)
	if r.Status.Phase != v1alpha1.PhaseSucceeded || r.Status.Node != "second" || r.Status.Attempt != 2 {
		t.Fatalf("after the reclaim: %+v", r.Status)
	}
	if c := meta.FindStatusCondition(r.Status.Conditions, ConditionClaimed); c == nil || c.Reason != ReasonReclaimed {
		t.Errorf("Claimed condition %+v, want reason Reclaimed", c)
	}
	if a, b := org.count("reclaim"), org.count("reclaim-2"); a != 1 || b != 1 {
		t.Errorf("the origin saw the POSTs %d and %d times, want 1 and 1", a, b)
	}
	if len(r.Status.Calls) != 2 || r.Status.Calls[0].Node != "first" || r.Status.Calls[1].Node != "second" {
		t.Errorf("journal %+v", r.Status.Calls)
	}
}

// A call journalled as started and never finished (its node died during
// it) is in doubt: the node that reclaims the run does not make it again,
// and the run ends InDoubt naming the call.
func TestReclaimInDoubt(t *testing.T) {
	needAPI(t)
	ns := namespace(t)
	org := startOrigin(t)
	createConfig(t, ns, "net", netConfig)
	plan := postPlan(org.port, "doubt", 0)
	// A run of the same plan gives the calls' keys and arguments.
	probe := startNode(t, "probe", ns, Options{})
	createRun(t, ns, "probe", "net", plan, "")
	done := waitRun(t, ns, "probe", 60*time.Second, "the end", final)
	probe.halt(t)
	if done.Status.Phase != v1alpha1.PhaseSucceeded || len(done.Status.Calls) != 2 {
		t.Fatalf("probe run: %+v", done.Status)
	}
	// The run as a node that died in its first call left it.
	createRun(t, ns, "r", "net", plan, "")
	r := getRun(t, ns, "r")
	started := done.Status.Calls[0]
	started.Done, started.Value, started.Node = false, "", "ghost"
	r.Status = v1alpha1.AgentRunStatus{Phase: v1alpha1.PhaseRunning, Node: "ghost", Attempt: 1, Calls: []v1alpha1.CallEntry{started}}
	if err := admin.Status().Update(context.Background(), r); err != nil {
		t.Fatal(err)
	}
	startNode(t, "heir", ns, Options{})
	r = waitRun(t, ns, "r", 60*time.Second, "the end", final)
	if r.Status.Phase != v1alpha1.PhaseInDoubt || r.Status.Attempt != 2 || !strings.Contains(r.Status.Error, started.Key) {
		t.Fatalf("after the reclaim: %+v", r.Status)
	}
	if n := org.count("doubt"); n != 1 {
		t.Errorf("the origin saw the in-doubt POST %d times, want only the probe's", n)
	}
}

// A node that lost its run (another node took it over while it ran)
// writes nothing more and runs no further side-effecting call: the journal
// refuses it before it runs.
func TestLostClaimRunsNothingMore(t *testing.T) {
	needAPI(t)
	ns := namespace(t)
	org := startOrigin(t)
	createConfig(t, ns, "net", netConfig)
	startNode(t, "loser", ns, Options{})
	createRun(t, ns, "r", "net", postPlan(org.port, "lost", 2*time.Second), "")
	r := waitRun(t, ns, "r", 60*time.Second, "the first POST to be journalled", func(r *v1alpha1.AgentRun) bool {
		return len(r.Status.Calls) == 1 && r.Status.Calls[0].Done
	})
	// Another node's claim, as it would write it, with a live Lease.
	stopLease := keepLease(t, ns, "winner")
	defer stopLease()
	r.Status.Node, r.Status.Attempt = "winner", r.Status.Attempt+1
	if err := admin.Status().Update(context.Background(), r); err != nil {
		t.Fatal(err)
	}
	time.Sleep(4 * time.Second) // past the plan's pause and second step
	r = getRun(t, ns, "r")
	if r.Status.Node != "winner" || r.Status.Phase != v1alpha1.PhaseRunning || len(r.Status.Calls) != 1 {
		t.Errorf("the node that lost the run wrote to it: %+v", r.Status)
	}
	if n := org.count("lost-2"); n != 0 {
		t.Errorf("the second POST reached the origin %d times after the claim was lost", n)
	}
}

// vmConfig asks for :microvm isolation.
const vmConfig = `(assoc-in (profile:microvm-min "agent.vm") [:microvm :attestation :expect_rootfs_hash]
  "sha256:0000000000000000000000000000000000000000000000000000000000000000")`

// A run that needs :microvm (asked by the run, or by its config when the
// run asks for less) is never claimed by a node that gives only
// :container; a run it can give is claimed beside them.
func TestNeverWeaker(t *testing.T) {
	needAPI(t)
	ns := namespace(t)
	createConfig(t, ns, "calc", netConfig)
	createConfig(t, ns, "vm", vmConfig)
	n := startNode(t, "proc-only", ns, Options{})
	if got := n.Offers().Isolation; got[v1alpha1.IsolationMicroVM] != "" || got[v1alpha1.IsolationContainer] != "process" {
		t.Fatalf("offers %v", got)
	}
	createRun(t, ns, "asks-vm", "calc", `(plan "p" :body 1)`, v1alpha1.IsolationMicroVM)
	createRun(t, ns, "config-vm", "vm", `(plan "p" :body 2)`, v1alpha1.IsolationContainer)
	createRun(t, ns, "plain", "calc", `(plan "p" :body 3)`, "")
	r := waitRun(t, ns, "plain", 60*time.Second, "the end", final)
	if r.Status.Phase != v1alpha1.PhaseSucceeded || r.Status.Provider != "process" {
		t.Errorf("the run this node can give: %+v", r.Status)
	}
	time.Sleep(3 * time.Second)
	for _, name := range []string{"asks-vm", "config-vm"} {
		if r := getRun(t, ns, name); r.Status.Node != "" || r.Status.Phase != "" {
			t.Errorf("%s was claimed by a process-only node: %+v", name, r.Status)
		}
	}
}

// A node agent restarted under the same name resumes the runs it held,
// as a new attempt under the journal rules.
func TestResumeAfterRestart(t *testing.T) {
	needAPI(t)
	ns := namespace(t)
	createConfig(t, ns, "calc", netConfig)
	createRun(t, ns, "r", "calc", `(plan "p" :body (+ 40 2))`, "")
	r := getRun(t, ns, "r")
	r.Status = v1alpha1.AgentRunStatus{Phase: v1alpha1.PhaseRunning, Node: "again", Attempt: 1}
	if err := admin.Status().Update(context.Background(), r); err != nil {
		t.Fatal(err)
	}
	startNode(t, "again", ns, Options{})
	r = waitRun(t, ns, "r", 60*time.Second, "the end", final)
	c := meta.FindStatusCondition(r.Status.Conditions, ConditionClaimed)
	if r.Status.Phase != v1alpha1.PhaseSucceeded || r.Status.Value != "42" || r.Status.Attempt != 2 || c == nil || c.Reason != ReasonResumed {
		t.Errorf("resumed run: %+v", r.Status)
	}
}

// On stop, a node lets its runs finish within the drain time, then deletes
// its Lease.
func TestDrain(t *testing.T) {
	needAPI(t)
	ns := namespace(t)
	createConfig(t, ns, "calc", netConfig)
	n := startNode(t, "drained", ns, Options{DrainTimeout: 30 * time.Second})
	createRun(t, ns, "r", "calc", `(plan "p" :body (step "s" (do (sleep 1500) :done)))`, "")
	waitRun(t, ns, "r", 60*time.Second, "the claim", func(r *v1alpha1.AgentRun) bool { return r.Status.Phase == v1alpha1.PhaseRunning })
	n.halt(t)
	if r := getRun(t, ns, "r"); r.Status.Phase != v1alpha1.PhaseSucceeded || r.Status.Value != ":done" {
		t.Errorf("drained run: %+v", r.Status)
	}
	var l coordinationv1.Lease
	err := admin.Get(context.Background(), types.NamespacedName{Namespace: ns, Name: LeaseName("drained")}, &l)
	if !apierrors.IsNotFound(err) {
		t.Errorf("the Lease is still there after the drain: %v", err)
	}
}

// A run under an invalid config fails with the config's diagnostics; a
// run naming a missing config fails saying so.
func TestConfigErrors(t *testing.T) {
	needAPI(t)
	ns := namespace(t)
	createConfig(t, ns, "bad", "(-> (profile:minimal \"agent.bad\")\n  (assoc-in [:orchestrator :isolation :mode] :teleport))")
	startNode(t, "n", ns, Options{})
	createRun(t, ns, "under-bad", "bad", `(plan "p" :body 1)`, "")
	createRun(t, ns, "no-config", "missing", `(plan "p" :body 1)`, "")
	r := waitRun(t, ns, "under-bad", 60*time.Second, "the end", final)
	want := "agentconfig/" + ns + "/bad:2:46: INVALID_VALUE"
	if r.Status.Phase != v1alpha1.PhaseFailed || !strings.Contains(r.Status.Error, want) {
		t.Errorf("run under an invalid config: %+v", r.Status)
	}
	r = waitRun(t, ns, "no-config", 60*time.Second, "the end", final)
	if r.Status.Phase != v1alpha1.PhaseFailed || !strings.Contains(r.Status.Error, `AgentConfig "missing" does not exist`) {
		t.Errorf("run under a missing config: %+v", r.Status)
	}
}

// The API server keeps a finished run final and its journal growing,
// whoever writes.
func TestStatusRules(t *testing.T) {
	needAPI(t)
	ns := namespace(t)
	createRun(t, ns, "r", "c", `(plan "p" :body 1)`, "")
	r := getRun(t, ns, "r")
	r.Status = v1alpha1.AgentRunStatus{Phase: v1alpha1.PhaseSucceeded, Node: "n", Attempt: 1,
		Calls: []v1alpha1.CallEntry{{Key: "k", Capability: "c", Done: true}}}
	if err := admin.Status().Update(context.Background(), r); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name   string
		change func(*v1alpha1.AgentRunStatus)
		want   string
	}{
		{"reclaim a finished run", func(s *v1alpha1.AgentRunStatus) { s.Phase, s.Attempt = v1alpha1.PhaseRunning, 2 }, "phase does not change"},
		{"attempt goes back", func(s *v1alpha1.AgentRunStatus) { s.Attempt = 0 }, "never decreases"},
		{"journal shrinks", func(s *v1alpha1.AgentRunStatus) { s.Calls = nil }, "only grows"},
	} {
		r := getRun(t, ns, "r")
		tc.change(&r.Status)
		if err := admin.Status().Update(context.Background(), r); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v", tc.name, err)
		}
	}
	r = getRun(t, ns, "r")
	r.Spec.Plan = `(plan "other" :body 2)`
	if err := admin.Update(context.Background(), r); err == nil || !strings.Contains(err.Error(), "spec does not change") {
		t.Errorf("changing the spec: %v", err)
	}
}

// The journal refuses, without writing anything, a call too large to
// record: the call does not run.
func TestJournalRefusesOversizeCalls(t *testing.T) {
	j := &journal{}
	big := strings.Repeat("x", v1alpha1.MaxCallFieldBytes+1)
	for _, e := range []orchestrator.JournalEntry{
		{Key: "k", Capability: "c", Args: []string{big}},
		{Key: "k", Capability: "c", Args: make([]string, v1alpha1.MaxCallArgs+1)},
		{Key: "k", Capability: "c", Args: []string{strings.Repeat("y", 4000), strings.Repeat("y", 4000), strings.Repeat("y", 4000), strings.Repeat("y", 4000)}},
	} {
		if err := j.Begin(e); !errors.Is(err, ErrJournalFull) {
			t.Errorf("Begin(%d args) = %v, want ErrJournalFull", len(e.Args), err)
		}
	}
}

func TestEffectiveIsolation(t *testing.T) {
	for _, tc := range []struct{ asked, configured, want v1alpha1.Isolation }{
		{"", v1alpha1.IsolationContainer, v1alpha1.IsolationContainer},
		{v1alpha1.IsolationMicroVM, v1alpha1.IsolationContainer, v1alpha1.IsolationMicroVM},
		{v1alpha1.IsolationContainer, v1alpha1.IsolationMicroVM, v1alpha1.IsolationMicroVM},
		{v1alpha1.IsolationWasm, v1alpha1.IsolationMicroVM, v1alpha1.IsolationMicroVM},
		{v1alpha1.IsolationWasm, v1alpha1.IsolationContainer, v1alpha1.IsolationWasm},
	} {
		if got := effectiveIsolation(tc.asked, tc.configured); got != tc.want {
			t.Errorf("asked %q, config %q: %q, want %q", tc.asked, tc.configured, got, tc.want)
		}
	}
}

// keepLease keeps a Lease for node renewed, as a live node agent would,
// until the returned function is called.
func keepLease(t *testing.T, ns, node string) func() {
	t.Helper()
	k := &leaseKeeper{c: admin, key: types.NamespacedName{Namespace: ns, Name: LeaseName(node)}, node: node, duration: time.Second}
	if err := k.renew(context.Background(), advert{}); err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case <-stop:
				return
			case <-time.After(200 * time.Millisecond):
				k.renew(context.Background(), advert{})
			}
		}
	}()
	return func() { close(stop); <-done }
}
