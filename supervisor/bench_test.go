package supervisor_test

import (
	"context"
	"testing"

	"github.com/ccos-project/ccos/engine"
	. "github.com/ccos-project/ccos/supervisor"
	"github.com/ccos-project/ccos/supervisor/client"
)

// BenchmarkSubmitToDone measures a trivial one-step plan from submission
// to its end through the API, at concurrency 8, on the process provider.
func BenchmarkSubmitToDone(b *testing.B) {
	h := newBenchHarness(b)
	ctx := context.Background()
	sub := Submission{Plan: `(plan "bench" :body (step "one" (call :ccos.math.add 1 2)))`}
	client.Load(ctx, h.c, "bench.process", sub, 16, 8)
	b.ResetTimer()
	res := client.Load(ctx, h.c, "bench.process", sub, b.N, 8)
	b.ReportMetric(res.RunsPerSec, "runs/s")
	b.ReportMetric(res.P50, "p50-ms")
	b.ReportMetric(res.P99, "p99-ms")
	if res.Failed > 0 {
		b.Fatalf("%d runs failed", res.Failed)
	}
}

func newBenchHarness(b *testing.B) *harness {
	b.Helper()
	return newHarnessTB(b, []string{"bench.process"}, Options{Limits: map[string]int{"process": 8}}, engine.AgentOptions{Pool: 8})
}
