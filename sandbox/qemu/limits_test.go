//go:build linux

package qemu

import (
	"context"
	"errors"
	"runtime"
	"testing"
	"time"

	"github.com/ccos-project/ccos/capability"
	"github.com/ccos-project/ccos/chain"
	"github.com/ccos-project/ccos/config"
	"github.com/ccos-project/ccos/control"
	"github.com/ccos-project/ccos/governance"
	"github.com/ccos-project/ccos/orchestrator"
	"github.com/ccos-project/ccos/plan"
	"github.com/ccos-project/ccos/sandbox"
)

// A plan flooding the host with recorded calls from a microVM ends with
// the host's event bound, recorded in the chain, and the host's heap
// stays bounded (issue 13 §2). QEMU runs under TCG here: the bound is
// small and the evaluation long.
func TestEventFloodIsBounded(t *testing.T) {
	const bound = 2 << 20
	p, err := plan.Read([]byte(`(step "s" (let [k (apply str (repeat 50000 "x"))] (loop [i 0] (call :ccos.echo k) (recur (inc i)))))`), "flood.rtfs")
	if err != nil {
		t.Fatal(err)
	}
	res := config.Load([]byte(`(profile:minimal "agent.vm")`), "cfg", config.RTFSEvaluator{})
	caps := capability.Builtins(nil)
	adm, err := governance.Admit(p, res.Config, caps, nil)
	if err != nil {
		t.Fatal(err)
	}
	rec, err := chain.NewRecorder(chain.NewMemoryStore(), nil, chain.Options{})
	if err != nil {
		t.Fatal(err)
	}
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	base := ms.HeapInuse
	stop, peak := make(chan struct{}), make(chan uint64)
	go func() {
		var top uint64
		tick := time.NewTicker(2 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				peak <- top
				return
			case <-tick.C:
				var m runtime.MemStats
				runtime.ReadMemStats(&m)
				top = max(top, m.HeapInuse)
			}
		}
	}()
	_, err = orchestrator.Run(context.Background(), orchestrator.Request{Plan: p, Admission: adm, Provider: provider("guest", nil), Caps: caps,
		Recorder: rec, Bounds: orchestrator.Bounds{EventBytes: bound}, Limits: control.RunLimits{TimeoutMillis: 100000},
		Spec: sandbox.Spec{Limits: sandbox.Limits{Deadline: 120 * time.Second}}})
	close(stop)
	rise := max(<-peak, base) - base
	var le *orchestrator.LimitExceeded
	if !errors.As(err, &le) || le.Limit != orchestrator.LimitEventBytes || le.Value != bound {
		t.Fatalf("got %v, want the event-bytes limit", err)
	}
	t.Logf("host heap peak: +%d MiB for a %d MiB event bound", rise>>20, bound>>20)
	if rise > 256<<20 {
		t.Errorf("the host's heap rose by %d MiB", rise>>20)
	}
}
