package e2e

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ccos-project/ccos/chain"
	"github.com/ccos-project/ccos/k8s/api/v1alpha1"
	"github.com/ccos-project/ccos/k8s/nodeagent"
	coordinationv1 "k8s.io/api/coordination/v1"
	eventsv1 "k8s.io/api/events/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

const ns = "agents"

// netConfig is an AgentConfig that may POST to origin.test (pinned to
// loopback by the node agents' --egress-resolve) through the egress proxy,
// in the process sandbox.
const netConfig = `(-> (profile:networked "agent.e2e" ["origin.test"])
  (assoc-in [:network :egress :mtls] false)
  (assoc-in [:capabilities :http :egress :mtls] false)
  (assoc-in [:orchestrator :isolation :mode] :container))`

// badConfig fails validation at line 2, column 46.
const badConfig = `(-> (profile:minimal "agent.bad")
  (assoc-in [:orchestrator :isolation :mode] :teleport))`

// postPlan POSTs "run-I" to the origin through the egress proxy (a host
// side effect, recorded in the call journal), then works on for a while
// (the window in which its node is killed), and returns [I status].
func postPlan(i, port int, pause time.Duration) string {
	return fmt.Sprintf(`(plan "e2e-%d" :body (step "post" [:effects [[:network {:domains ["origin.test"] :methods [:POST]}]]]
  (let [r (call :ccos.network.http-fetch "http://origin.test:%d/hit" {:method "POST" :body "run-%d"})]
    (sleep %d)
    [%d (get r :status)])))`, i, port, i, pause.Milliseconds(), i)
}

// The whole deployment against a real API server: deploy/k8s applied with
// kubectl, the node agents as the ccos-node service account (which cannot
// read Secrets), 30 AgentRuns created with kubectl and run by three node
// agents, one of them killed with SIGKILL in the middle: its runs finish
// on other nodes and no POST reaches the origin twice. A :microvm run is
// never claimed by nodes that offer only process isolation; an invalid
// AgentConfig is refused with its line, column and code.
func TestKubernetesEndToEnd(t *testing.T) {
	k := startCluster(t)
	ctx := context.Background()

	applied := k.applyDeployment()
	for _, want := range []string{"namespace/ccos-system", "clusterrole.rbac.authorization.k8s.io/ccos-node", "daemonset.apps/ccos-node",
		"deployment.apps/ccos-config-controller", "deployment.apps/ccos-egress", "networkpolicy.networking.k8s.io/default-deny",
		"runtimeclass.node.k8s.io/gvisor", "customresourcedefinition.apiextensions.k8s.io/agentruns.ccos-project.github.io"} {
		if !strings.Contains(applied, want) {
			t.Errorf("kubectl apply -k deploy/k8s did not apply %s:\n%s", want, applied)
		}
	}
	t.Run("manifests", func(t *testing.T) {
		out, err := execOutput(k.ccos, "k8s", "manifests")
		if err != nil {
			t.Fatal(err)
		}
		// The same objects as the kustomization: applying them changes nothing.
		res := k.mustKubectl(out, "apply", "--dry-run=server", "-f", "-")
		if strings.Contains(res, " created") {
			t.Errorf("ccos k8s manifests holds objects kubectl apply -k did not create:\n%s", res)
		}
		if got, want := appliedObjects(res), appliedObjects(applied); !slices.Equal(got, want) {
			t.Errorf("ccos k8s manifests gives the objects\n%v\nthe kustomization\n%v", got, want)
		}
	})

	nodeKC := k.serviceAccountKubeconfig("ccos-system", "ccos-node")
	ctrlKC := k.serviceAccountKubeconfig("ccos-system", "ccos-config-controller")
	t.Run("node agent RBAC", func(t *testing.T) {
		for _, tc := range []struct {
			args []string
			want string
		}{
			{[]string{"get", "secrets", "-n", "ccos-system"}, "no"},
			{[]string{"list", "secrets", "--all-namespaces"}, "no"},
			{[]string{"get", "configmaps", "-n", ns}, "no"},
			{[]string{"create", "agentruns.ccos-project.github.io", "-n", ns}, "no"},
			{[]string{"update", "agentruns.ccos-project.github.io", "-n", ns}, "no"},
			{[]string{"update", "agentconfigs.ccos-project.github.io", "-n", ns}, "no"},
			{[]string{"update", "agentruns.ccos-project.github.io", "--subresource=status", "-n", ns}, "yes"},
			{[]string{"watch", "agentconfigs.ccos-project.github.io", "-n", ns}, "yes"},
			{[]string{"update", "leases.coordination.k8s.io", "-n", "ccos-system"}, "yes"},
			{[]string{"update", "leases.coordination.k8s.io", "-n", "kube-system"}, "no"},
		} {
			out, _ := k.kubectl("", append([]string{"--kubeconfig=" + nodeKC, "auth", "can-i"}, tc.args...)...)
			if strings.TrimSpace(out) != tc.want {
				t.Errorf("can the node agent %s? %q, want %s", strings.Join(tc.args, " "), strings.TrimSpace(out), tc.want)
			}
		}
		k.mustKubectl("", "-n", "ccos-system", "create", "secret", "generic", "e2e-secret", "--from-literal=k=v")
		out, err := k.kubectl("", "--kubeconfig="+nodeKC, "-n", "ccos-system", "get", "secret", "e2e-secret")
		if err == nil || !strings.Contains(out, "Forbidden") {
			t.Errorf("the node agent read a Secret: %v\n%s", err, out)
		}
	})

	k.mustKubectl("", "create", "namespace", ns)
	gateway := k.egressGateway()
	k.start("config-controller", "k8s", "controller", "--kubeconfig", ctrlKC, "--leader-elect-namespace", "ccos-system")
	org := startOrigin(t)
	k.mustKubectl(agentConfigYAML(ns, "net", netConfig), "apply", "-f", "-")
	waitFor(t, 60*time.Second, "AgentConfig net to be valid", func() (bool, string) {
		var ac v1alpha1.AgentConfig
		if err := k.c.Get(ctx, types.NamespacedName{Namespace: ns, Name: "net"}, &ac); err != nil {
			return false, err.Error()
		}
		return meta.IsStatusConditionTrue(ac.Status.Conditions, "Valid"), fmt.Sprint(ac.Status)
	})

	// Only process isolation on these nodes: a :microvm run stays pending.
	k.mustKubectl(agentRunYAML(ns, "needs-microvm", "net", `(plan "vm" :body (+ 1 2))`, v1alpha1.IsolationMicroVM), "create", "-f", "-")
	nodes := map[string]*proc{}
	for _, n := range []string{"node-1", "node-2", "node-3"} {
		nodes[n] = k.nodeAgent(n, nodeKC, "--providers", "process", "--capacity", "3", "--egress-upstream", gateway.url)
	}
	waitFor(t, 60*time.Second, "three node agents' Leases", func() (bool, string) {
		var ls coordinationv1.LeaseList
		if err := k.c.List(ctx, &ls, client.InNamespace("ccos-system"), client.MatchingLabels{nodeagent.LabelNodeAgent: "true"}); err != nil {
			return false, err.Error()
		}
		return len(ls.Items) == 3, fmt.Sprintf("%d leases", len(ls.Items))
	})

	const runs = 30
	var stream []string
	for i := 1; i <= runs; i++ {
		stream = append(stream, agentRunYAML(ns, fmt.Sprintf("run-%02d", i), "net", postPlan(i, org.port, 1500*time.Millisecond), ""))
	}
	k.mustKubectl(strings.Join(stream, "---\n"), "create", "-f", "-")

	// Kill node-1 with SIGKILL once it has finished runs and while it holds
	// a run whose POST is done and recorded, and which has more to do.
	waitFor(t, 120*time.Second, "node-1 to finish runs and hold one past its POST", func() (bool, string) {
		var list v1alpha1.AgentRunList
		if err := k.c.List(ctx, &list, client.InNamespace(ns)); err != nil {
			return false, err.Error()
		}
		finished, past := 0, false
		for _, r := range list.Items {
			if r.Status.Node != "node-1" {
				continue
			}
			if r.Status.Phase == v1alpha1.PhaseSucceeded {
				finished++
			}
			if r.Status.Phase == v1alpha1.PhaseRunning && len(r.Status.Calls) > 0 && r.Status.Calls[0].Done {
				past = true
			}
		}
		return finished >= 2 && past, fmt.Sprintf("node-1 finished %d", finished)
	})
	nodes["node-1"].kill()
	t.Log("node-1 killed")

	var final v1alpha1.AgentRunList
	waitFor(t, 300*time.Second, "every AgentRun to finish", func() (bool, string) {
		final = v1alpha1.AgentRunList{}
		if err := k.c.List(ctx, &final, client.InNamespace(ns)); err != nil {
			return false, err.Error()
		}
		done := 0
		for _, r := range final.Items {
			if r.Status.Phase.Final() {
				done++
			}
		}
		return done == runs, fmt.Sprintf("%d of %d final", done, runs)
	})

	verifiers := leaseVerifiers(t, k)
	byNode := map[string]int{}
	reclaimed, heldByKilled := 0, 0
	for _, r := range final.Items {
		if r.Name == "needs-microvm" {
			continue
		}
		st := r.Status
		var i int
		fmt.Sscanf(r.Name, "run-%d", &i)
		body := fmt.Sprintf("run-%d", i)
		byNode[st.Node]++
		if st.Node == "node-1" || slices.ContainsFunc(st.Calls, func(c v1alpha1.CallEntry) bool { return c.Node == "node-1" }) {
			heldByKilled++
		}
		switch st.Phase {
		case v1alpha1.PhaseSucceeded:
			if want := fmt.Sprintf("[%d 200]", i); st.Value != want {
				t.Errorf("%s: value %q, want %q", r.Name, st.Value, want)
			}
			if n := org.count(body); n != 1 {
				t.Errorf("%s succeeded and the origin saw its POST %d times", r.Name, n)
			}
		case v1alpha1.PhaseInDoubt:
			// Only a run whose POST was started and never recorded as done
			// by the killed node may end in doubt; its POST was not repeated.
			if st.Attempt < 2 || !slices.ContainsFunc(st.Calls, func(c v1alpha1.CallEntry) bool { return !c.Done && c.Node == "node-1" }) {
				t.Errorf("%s is in doubt without a call left unfinished by node-1: %+v", r.Name, st)
			}
			if n := org.count(body); n > 1 {
				t.Errorf("%s: the origin saw its POST %d times", r.Name, n)
			}
		default:
			t.Errorf("%s ended %s: %s", r.Name, st.Phase, st.Error)
		}
		if c := meta.FindStatusCondition(st.Conditions, nodeagent.ConditionClaimed); st.Attempt >= 2 && c != nil && c.Reason == nodeagent.ReasonReclaimed {
			reclaimed++
			if st.Node == "node-1" {
				t.Errorf("%s was reclaimed by the killed node", r.Name)
			}
		}
		if st.Phase == v1alpha1.PhaseSucceeded {
			checkCheckpoint(t, r.Name, st, verifiers)
		}
	}
	t.Logf("final nodes %v; %d reclaimed; %d held by node-1 at some point", byNode, reclaimed, heldByKilled)
	if reclaimed == 0 {
		t.Error("no run was reclaimed from the killed node")
	}
	if byNode["node-2"] == 0 || byNode["node-3"] == 0 || heldByKilled == 0 {
		t.Errorf("the runs were not spread over the three nodes: %v, node-1 held %d", byNode, heldByKilled)
	}

	t.Run("microvm run never claimed by process-only nodes", func(t *testing.T) {
		var r v1alpha1.AgentRun
		if err := k.c.Get(ctx, types.NamespacedName{Namespace: ns, Name: "needs-microvm"}, &r); err != nil {
			t.Fatal(err)
		}
		if r.Status.Node != "" || (r.Status.Phase != "" && r.Status.Phase != v1alpha1.PhasePending) {
			t.Errorf("the :microvm run was claimed: %+v", r.Status)
		}
		var ls coordinationv1.LeaseList
		if err := k.c.List(ctx, &ls, client.InNamespace("ccos-system"), client.MatchingLabels{nodeagent.LabelNodeAgent: "true"}); err != nil {
			t.Fatal(err)
		}
		for _, l := range ls.Items {
			if iso := l.Annotations[nodeagent.AnnotationIsolation]; iso != "container=process" {
				t.Errorf("lease %s advertises %q, want container=process", l.Name, iso)
			}
		}
	})

	t.Run("invalid AgentConfig refused with line, column and code", func(t *testing.T) {
		k.mustKubectl(agentConfigYAML(ns, "bad", badConfig), "apply", "-f", "-")
		want := "agentconfig/agents/bad:2:46: INVALID_VALUE"
		waitFor(t, 60*time.Second, "the verdict on AgentConfig bad", func() (bool, string) {
			var ac v1alpha1.AgentConfig
			if err := k.c.Get(ctx, types.NamespacedName{Namespace: ns, Name: "bad"}, &ac); err != nil {
				return false, err.Error()
			}
			c := meta.FindStatusCondition(ac.Status.Conditions, "Valid")
			return c != nil && c.Status == metav1.ConditionFalse && slices.ContainsFunc(ac.Status.Diagnostics, func(d string) bool {
				return strings.HasPrefix(d, want)
			}), fmt.Sprint(ac.Status)
		})
		waitFor(t, 30*time.Second, "the ConfigInvalid event", func() (bool, string) {
			var evs eventsv1.EventList
			if err := k.c.List(ctx, &evs, client.InNamespace(ns)); err != nil {
				return false, err.Error()
			}
			for _, e := range evs.Items {
				if e.Regarding.Name == "bad" && e.Reason == "ConfigInvalid" && strings.Contains(e.Note, want) {
					return true, ""
				}
			}
			return false, fmt.Sprintf("%d events", len(evs.Items))
		})
		k.mustKubectl(agentRunYAML(ns, "under-bad", "bad", `(plan "p" :body 1)`, ""), "create", "-f", "-")
		waitFor(t, 60*time.Second, "the run under the invalid config to fail", func() (bool, string) {
			var r v1alpha1.AgentRun
			if err := k.c.Get(ctx, types.NamespacedName{Namespace: ns, Name: "under-bad"}, &r); err != nil {
				return false, err.Error()
			}
			return r.Status.Phase == v1alpha1.PhaseFailed && strings.Contains(r.Status.Error, want), fmt.Sprint(r.Status)
		})
	})

	t.Run("kubectl get agentruns", func(t *testing.T) {
		out := k.mustKubectl("", "get", "agentruns", "-n", ns)
		for _, want := range []string{"PHASE", "NODE", "run-01", "Succeeded", "needs-microvm"} {
			if !strings.Contains(out, want) {
				t.Errorf("kubectl get agentruns lacks %q:\n%s", want, out)
			}
		}
	})

	// Every connection to the origin came through the cluster's egress
	// proxy: once the node agents are gone (their kept-alive tunnels
	// closed, each logged as it ends), it logged one allowed tunnel per
	// connection the origin accepted.
	for _, p := range nodes {
		p.stop(20 * time.Second)
	}
	waitFor(t, 30*time.Second, "one egress proxy tunnel per origin connection", func() (bool, string) {
		tunnels, conns := gateway.allowed("origin.test"), org.connections()
		return conns > 0 && tunnels == conns, fmt.Sprintf("%d tunnels, %d connections", tunnels, conns)
	})
}

// leaseVerifiers returns each node's checkpoint verifier key, from its
// Lease.
func leaseVerifiers(t *testing.T, k *cluster) map[string]string {
	t.Helper()
	var ls coordinationv1.LeaseList
	if err := k.c.List(context.Background(), &ls, client.InNamespace("ccos-system")); err != nil {
		t.Fatal(err)
	}
	v := map[string]string{}
	for _, l := range ls.Items {
		if key := l.Annotations[nodeagent.AnnotationChainVerify]; key != "" {
			v[strings.TrimPrefix(l.Name, nodeagent.LeasePrefix)] = key
		}
	}
	return v
}

// checkCheckpoint verifies a run's checkpoint with its node's key.
func checkCheckpoint(t *testing.T, name string, st v1alpha1.AgentRunStatus, verifiers map[string]string) {
	t.Helper()
	if st.Checkpoint == "" {
		t.Errorf("%s has no checkpoint", name)
		return
	}
	vk, ok := verifiers[st.Node]
	if !ok {
		t.Errorf("%s: node %s advertises no verifier key", name, st.Node)
		return
	}
	v, err := chain.ParseVerifier(vk)
	if err != nil {
		t.Fatal(err)
	}
	cp, err := chain.OpenCheckpoint([]byte(st.Checkpoint), v)
	if err != nil {
		t.Errorf("%s: the checkpoint does not verify with node %s's key: %v", name, st.Node, err)
		return
	}
	if cp.Size == 0 {
		t.Errorf("%s: the checkpoint covers an empty chain", name)
	}
}

// waitFor polls cond until it holds or the timeout passes.
func waitFor(t testing.TB, timeout time.Duration, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	last := ""
	for {
		ok, state := cond()
		if ok {
			return
		}
		last = state
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s; last: %s", timeout, what, last)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// appliedObjects lists the objects kubectl apply reports (kind/name),
// sorted.
func appliedObjects(out string) []string {
	var objs []string
	for _, l := range strings.Split(out, "\n") {
		f := strings.Fields(l)
		if len(f) >= 2 && strings.Contains(f[0], "/") && slices.Contains([]string{"created", "configured", "unchanged"}, f[1]) {
			objs = append(objs, f[0])
		}
	}
	slices.Sort(objs)
	return objs
}
