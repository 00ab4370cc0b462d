//go:build linux

package gvisor

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

// runLimited runs src with the real ccos guest in gVisor, with the host's
// heap sampled every 2 ms; it returns how far the heap in use rose at its
// highest and the run's error.
func runLimited(t *testing.T, src string, req orchestrator.Request) (uint64, error) {
	t.Helper()
	p, err := plan.Read([]byte(src), "plan.rtfs")
	if err != nil {
		t.Fatal(err)
	}
	res := config.Load([]byte(`(profile:minimal "agent.test")`), "cfg", config.RTFSEvaluator{})
	caps := capability.Builtins(nil)
	adm, err := governance.Admit(p, res.Config, caps, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Plan, req.Admission, req.Caps, req.Provider = p, adm, caps, &Provider{Binary: ccosBinary}
	req.Spec.ID = testID(t)
	// Events recorded in memory, as `ccos run` keeps them without a chain
	// file: the case where the host's memory grew with the guest's events.
	rec, err := chain.NewRecorder(chain.NewMemoryStore(), nil, chain.Options{})
	if err != nil {
		t.Fatal(err)
	}
	req.Recorder = rec
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
	_, runErr := orchestrator.Run(context.Background(), req)
	close(stop)
	top := <-peak
	return max(top, base) - base, runErr
}

// A plan flooding the host with recorded calls ends with the host's
// event bound, and the host's heap stays bounded (issue 13 §2).
func TestEventFloodIsBounded(t *testing.T) {
	const bound = 8 << 20
	peak, err := runLimited(t, `(step "s" (let [k (apply str (repeat 50000 "x"))] (loop [i 0] (call :ccos.echo k) (recur (inc i)))))`,
		orchestrator.Request{Bounds: orchestrator.Bounds{EventBytes: bound}, Limits: control.RunLimits{TimeoutMillis: 25000},
			Spec: sandbox.Spec{Limits: sandbox.Limits{Deadline: 40 * time.Second}}})
	var le *orchestrator.LimitExceeded
	if !errors.As(err, &le) || le.Limit != orchestrator.LimitEventBytes || le.Value != bound {
		t.Fatalf("got %v, want the event-bytes limit", err)
	}
	t.Logf("host heap peak: +%d MiB for a %d MiB event bound", peak>>20, bound>>20)
	if peak > 256<<20 {
		t.Errorf("the host's heap rose by %d MiB", peak>>20)
	}
}

// A guest killed by its memory cgroup is reported as the memory limit,
// with its value.
func TestMemoryLimitIsReported(t *testing.T) {
	const mem = 192 << 20
	_, err := runLimited(t, `(step "s" (let [k (apply str (repeat 500000 "x"))] (loop [acc [] i 0] (recur (conj acc (str k i)) (inc i)))))`,
		orchestrator.Request{Spec: sandbox.Spec{Limits: sandbox.Limits{MemoryBytes: mem, Deadline: 40 * time.Second}}})
	var le *orchestrator.LimitExceeded
	if !errors.As(err, &le) || le.Limit != orchestrator.LimitMemory || le.Value != mem {
		t.Fatalf("got %v, want the memory limit of %d bytes", err, mem)
	}
}
