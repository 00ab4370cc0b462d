package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/ccos-project/ccos/k8s/api/v1alpha1"
	"github.com/ccos-project/ccos/supervisor"
	supclient "github.com/ccos-project/ccos/supervisor/client"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// benchConfig and benchPlan are what both paths run: a one-step plan in
// the process sandbox (the plan of `ccos bench supervisor`).
const (
	benchConfig = `(assoc-in (profile:minimal "bench.k8s") [:orchestrator :isolation :mode] :container)`
	benchPlan   = `(plan "bench" :body (step "one" (call :ccos.math.add 1 2)))`
	// benchCapacity is each node agent's capacity and the supervisor's
	// process limit: one host's worth of slots.
	benchCapacity = 2
)

// BenchmarkAgentRuns measures AgentRuns from creation to Succeeded with 1,
// 2 and 3 node agents (separate processes, all on this machine), creating
// b.N runs at once, and reports runs/s and the latencies from creation to
// Running (the claim, here mostly the wait for a free slot) and to
// Succeeded. The baseline submits the same b.N runs at once to one `ccos
// supervisor` (no API server in the way) with the slots of one node agent
// and no warm pool, as the node agent keeps none. Run with a fixed count,
// e.g. -benchtime=60x.
func BenchmarkAgentRuns(b *testing.B) {
	k, nodeKC := startBenchCluster(b)
	for _, nodes := range []int{1, 2, 3} {
		b.Run(fmt.Sprintf("nodes=%d", nodes), func(b *testing.B) {
			ns, stop := startBenchNodes(b, k, nodeKC, nodes)
			b.ResetTimer()
			m := measureAgentRuns(b, k, ns, b.N, false)
			b.StopTimer()
			stop()
			b.ReportMetric(m.perSec, "runs/s")
			b.ReportMetric(m.claim.p50, "claim-p50-ms")
			b.ReportMetric(m.claim.p99, "claim-p99-ms")
			b.ReportMetric(m.done.p50, "done-p50-ms")
			b.ReportMetric(m.done.p99, "done-p99-ms")
		})
	}
	b.Run("supervisor", func(b *testing.B) { benchSupervisor(b, k, 0) })
}

// BenchmarkClaimLatency measures one AgentRun at a time on idle node
// agents: creation to Running (the claim: the watch event reaching the
// nodes, the optimistic-concurrency update, the event back) and creation
// to Succeeded, against the same plan submitted one at a time to one
// supervisor. The difference of the done latencies is what the API server
// adds to a run.
func BenchmarkClaimLatency(b *testing.B) {
	k, nodeKC := startBenchCluster(b)
	for _, nodes := range []int{1, 3} {
		b.Run(fmt.Sprintf("nodes=%d", nodes), func(b *testing.B) {
			ns, stop := startBenchNodes(b, k, nodeKC, nodes)
			b.ResetTimer()
			m := measureAgentRuns(b, k, ns, b.N, true)
			b.StopTimer()
			stop()
			b.ReportMetric(m.claim.p50, "claim-p50-ms")
			b.ReportMetric(m.claim.p99, "claim-p99-ms")
			b.ReportMetric(m.done.p50, "done-p50-ms")
			b.ReportMetric(m.done.p99, "done-p99-ms")
		})
	}
	b.Run("supervisor", func(b *testing.B) { benchSupervisor(b, k, 1) })
}

func startBenchCluster(b *testing.B) (*cluster, string) {
	k := startCluster(b)
	k.applyDeployment()
	return k, k.serviceAccountKubeconfig("ccos-system", "ccos-node")
}

var benchRound int

// startBenchNodes starts node agents watching a new namespace with the
// bench config, and waits for their Leases.
func startBenchNodes(b *testing.B, k *cluster, nodeKC string, nodes int) (string, func()) {
	b.Helper()
	benchRound++
	round := benchRound
	ns := fmt.Sprintf("bench-%d", round)
	if err := k.c.Create(context.Background(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil {
		b.Fatal(err)
	}
	k.mustKubectl(agentConfigYAML(ns, "bench", benchConfig), "apply", "-f", "-")
	var procs []*proc
	for i := range nodes {
		procs = append(procs, k.nodeAgent(fmt.Sprintf("b%d-n%d", round, i), nodeKC, "--providers", "process",
			"--capacity", fmt.Sprint(benchCapacity), "--namespace", ns))
	}
	waitLeases(b, k, round, nodes)
	return ns, func() {
		for _, p := range procs {
			p.stop(20 * time.Second)
		}
	}
}

// benchSupervisor submits b.N runs of the bench plan to one supervisor,
// concurrency at a time.
func benchSupervisor(b *testing.B, k *cluster, concurrency int) {
	dir := b.TempDir()
	cfg := filepath.Join(dir, "bench.rtfs")
	if err := os.WriteFile(cfg, []byte(benchConfig), 0o600); err != nil {
		b.Fatal(err)
	}
	sock := filepath.Join(dir, "s.sock")
	benchRound++
	p := k.start(fmt.Sprintf("supervisor-%d", benchRound), "supervisor", "--config", cfg, "--socket", sock, "--state", filepath.Join(dir, "state"),
		"--security-level", "full", "--pool", "0", "--max-runs", fmt.Sprintf("process=%d", benchCapacity), "--queue", "100000")
	c := supclient.Unix(sock)
	deadline := time.Now().Add(60 * time.Second)
	for {
		if _, err := c.Health(context.Background()); err == nil {
			break
		}
		if time.Now().After(deadline) {
			b.Fatal("the supervisor did not answer")
		}
		time.Sleep(50 * time.Millisecond)
	}
	if concurrency > b.N {
		concurrency = b.N
	}
	if concurrency == 0 {
		concurrency = b.N
	}
	b.ResetTimer()
	res := supclient.Load(context.Background(), c, "bench.k8s", supervisor.Submission{Plan: benchPlan}, b.N, max(concurrency, 1))
	b.StopTimer()
	p.stop(20 * time.Second)
	if res.Failed > 0 {
		b.Errorf("%d of %d runs failed", res.Failed, res.Runs)
	}
	b.ReportMetric(res.RunsPerSec, "runs/s")
	b.ReportMetric(res.P50, "done-p50-ms")
	b.ReportMetric(res.P99, "done-p99-ms")
}

func waitLeases(b *testing.B, k *cluster, round, nodes int) {
	b.Helper()
	waitFor(b, 60*time.Second, "the node agents' Leases", func() (bool, string) {
		n := 0
		for i := range nodes {
			var l coordinationv1.Lease
			if err := k.c.Get(context.Background(), client.ObjectKey{Namespace: "ccos-system", Name: fmt.Sprintf("ccos-node-b%d-n%d", round, i)}, &l); err == nil {
				n++
			}
		}
		return n == nodes, fmt.Sprintf("%d of %d", n, nodes)
	})
	// The Lease comes before the cache: give the watches a moment.
	time.Sleep(time.Second)
}

// quantiles are latencies in milliseconds.
type quantiles struct{ p50, p99 float64 }

func quantilesOf(ds []time.Duration) quantiles {
	if len(ds) == 0 {
		return quantiles{}
	}
	slices.Sort(ds)
	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
	return quantiles{p50: ms(ds[len(ds)/2]), p99: ms(ds[min(len(ds)-1, len(ds)*99/100)])}
}

type runMeasure struct {
	perSec      float64
	claim, done quantiles
}

// measureAgentRuns creates n AgentRuns and watches them to the end: all at
// once, or one at a time, each after the previous one ended.
func measureAgentRuns(b *testing.B, k *cluster, ns string, n int, oneByOne bool) runMeasure {
	b.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
	defer cancel()
	wc, err := client.NewWithWatch(k.admin, client.Options{Scheme: k.c.Scheme()})
	if err != nil {
		b.Fatal(err)
	}
	w, err := wc.Watch(ctx, &v1alpha1.AgentRunList{}, client.InNamespace(ns))
	if err != nil {
		b.Fatal(err)
	}
	defer w.Stop()
	var mu sync.Mutex
	created := map[string]time.Time{}
	running := map[string]time.Time{}
	finished := map[string]time.Time{}
	failed := 0
	start := time.Now()
	step := make(chan struct{}, n)
	go func() {
		names := make(chan int)
		var wg sync.WaitGroup
		workers := 8
		if oneByOne {
			workers = 1
		}
		for range workers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := range names {
					name := fmt.Sprintf("r%d", i)
					r := &v1alpha1.AgentRun{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
						Spec: v1alpha1.AgentRunSpec{AgentConfig: "bench", Plan: benchPlan}}
					t0 := time.Now()
					mu.Lock()
					created[name] = t0
					mu.Unlock()
					if err := k.c.Create(ctx, r); err != nil {
						b.Error(err)
					}
				}
			}()
		}
		for i := range n {
			if oneByOne && i > 0 {
				<-step
			}
			names <- i
		}
		close(names)
		wg.Wait()
	}()
	for len(finished) < n {
		var ev watch.Event
		select {
		case ev = <-w.ResultChan():
		case <-ctx.Done():
			b.Fatalf("%d of %d runs finished", len(finished), n)
		}
		r, ok := ev.Object.(*v1alpha1.AgentRun)
		if !ok {
			continue
		}
		now := time.Now()
		mu.Lock()
		if _, seen := running[r.Name]; !seen && r.Status.Phase != "" && r.Status.Phase != v1alpha1.PhasePending {
			running[r.Name] = now
		}
		if _, seen := finished[r.Name]; !seen && r.Status.Phase.Final() {
			finished[r.Name] = now
			if r.Status.Phase != v1alpha1.PhaseSucceeded {
				failed++
			}
			step <- struct{}{}
		}
		mu.Unlock()
	}
	el := time.Since(start)
	if failed > 0 {
		b.Errorf("%d of %d runs did not succeed", failed, n)
	}
	var claim, done []time.Duration
	for name, t0 := range created {
		if t, ok := running[name]; ok {
			claim = append(claim, t.Sub(t0))
		}
		done = append(done, finished[name].Sub(t0))
	}
	return runMeasure{perSec: float64(n) / el.Seconds(), claim: quantilesOf(claim), done: quantilesOf(done)}
}
