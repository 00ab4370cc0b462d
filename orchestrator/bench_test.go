package orchestrator

import (
	"context"
	"testing"
	"time"

	"github.com/ccos-project/ccos/capability"
	"github.com/ccos-project/ccos/sandbox"
)

// BenchmarkLargeCalls runs a plan making five ccos.echo calls with a 1 MB
// argument each, side by side with the same plan without the calls (the
// baseline: sandbox start, building the string), on the process and wasm
// providers. Every call is recorded by the guest (arguments and result by
// their summaries). docs/BENCHMARKS.md has the figures.
func BenchmarkLargeCalls(b *testing.B) {
	const build = `(let [k (apply str (repeat 1000 "x")) b (apply str (repeat 1000 k))] `
	plans := map[string]string{
		"baseline":   `(step "s" ` + build + `(count b)))`,
		"five-calls": `(step "s" ` + build + `(+ (count (call :ccos.echo b)) (count (call :ccos.echo b)) (count (call :ccos.echo b)) (count (call :ccos.echo b)) (count (call :ccos.echo b)))))`,
	}
	caps := capability.Builtins(nil)
	for name, prov := range realProviders(b) {
		for _, which := range []string{"baseline", "five-calls"} {
			p, a := admit(b, plans[which], caps)
			b.Run(name+"/"+which, func(b *testing.B) {
				for b.Loop() {
					rep, err := Run(context.Background(), Request{Plan: p, Admission: a, Provider: prov, Caps: caps, Limits: slowLimits(),
						Spec: sandbox.Spec{Limits: sandbox.Limits{Deadline: 120 * time.Second}}})
					if err != nil || rep.Error != nil {
						b.Fatalf("%v %+v", err, rep)
					}
				}
			})
		}
	}
}
