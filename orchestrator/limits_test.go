package orchestrator

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/ccos-project/ccos/capability"
	"github.com/ccos-project/ccos/chain"
	"github.com/ccos-project/ccos/control"
	"github.com/ccos-project/ccos/guest"
	"github.com/ccos-project/ccos/rtfs"
	"github.com/ccos-project/ccos/sandbox"
	"github.com/ccos-project/ccos/sandbox/mock"
	"github.com/ccos-project/ccos/sandbox/process"
)

// recorded runs req with an in-memory chain and returns the report, the
// recorded events and the error.
func recorded(t *testing.T, req Request) (*Report, []chain.Event, error) {
	t.Helper()
	store := chain.NewMemoryStore()
	rec, err := chain.NewRecorder(store, nil, chain.Options{})
	if err != nil {
		t.Fatal(err)
	}
	req.Recorder = rec
	rep, runErr := Run(context.Background(), req)
	var events []chain.Event
	store.Records(func(_ uint64, data []byte) error {
		e, err := chain.Decode(data)
		if err != nil {
			return err
		}
		events = append(events, *e)
		return nil
	})
	return rep, events, runErr
}

// limitEvent returns the payload of the chain's limit-exceeded event.
func limitEvent(events []chain.Event) *rtfs.Map {
	for _, e := range events {
		if m, ok := e.Payload.(*rtfs.Map); ok && e.Type == chain.TypeSandboxLifecycle {
			if v, _ := m.GetKeyword("event"); rtfs.Print(v) == ":limit-exceeded" {
				return m
			}
		}
	}
	return nil
}

// peakHeap runs f and returns how far the host's heap in use rose above
// where it was before, at its highest (sampled every 2 ms).
func peakHeap(f func()) uint64 {
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
	f()
	close(stop)
	top := <-peak
	if top < base {
		return 0
	}
	return top - base
}

// wantLimit checks that err is a guest failure with the LimitExceeded
// named, recorded in the chain with its value.
func wantLimit(t *testing.T, err error, events []chain.Event, limit string, value int64) {
	t.Helper()
	var le *LimitExceeded
	if !errors.Is(err, ErrGuest) || !errors.As(err, &le) || le.Limit != limit || le.Value != value {
		t.Fatalf("got %v, want a LimitExceeded of the %s limit %d", err, limit, value)
	}
	if !strings.HasPrefix(le.Error(), "LimitExceeded: the run went past its "+limit+" limit of ") {
		t.Errorf("message %q", le)
	}
	m := limitEvent(events)
	if m == nil {
		t.Fatal("no limit-exceeded event in the chain")
	}
	if v, _ := m.GetKeyword("limit"); rtfs.Print(v) != `"`+limit+`"` {
		t.Errorf("chain records the limit %s", rtfs.Print(m))
	}
	if v, _ := m.GetKeyword("value"); rtfs.Print(v) != rtfs.Print(rtfs.Int{V: value}) {
		t.Errorf("chain records the value %s", rtfs.Print(m))
	}
}

// A guest that floods the host with events ends with a LimitExceeded
// naming the bound, recorded in the chain, and the host's heap stays
// bounded (issue 13 §2): a hostile guest in the process sandbox sending
// the largest events allowed as fast as it can, and a plan making
// recorded calls in a loop on each real provider.
func TestEventFloodIsBounded(t *testing.T) {
	const bound = 8 << 20
	bounds := Bounds{EventBytes: bound}
	t.Run("hostile guest/process", func(t *testing.T) {
		prov := &process.Provider{}
		dir := t.TempDir()
		os.WriteFile(filepath.Join(dir, "attack"), []byte("events-flood"), 0o644)
		caps := capability.Builtins(nil)
		p, a := admit(t, `(step "s" 1)`, caps)
		var err error
		var events []chain.Event
		peak := peakHeap(func() {
			_, events, err = recorded(t, Request{Plan: p, Admission: a, Provider: prov, Caps: caps, Bounds: bounds,
				Spec: sandbox.Spec{CapabilitiesDir: dir, Limits: sandbox.Limits{Deadline: 20 * time.Second}}})
		})
		wantLimit(t, err, events, LimitEventBytes, bound)
		t.Logf("host heap peak: +%d MiB for a %d MiB event bound", peak>>20, bound>>20)
		if peak > 256<<20 {
			t.Errorf("the host's heap rose by %d MiB", peak>>20)
		}
	})
	// A plan produces events more slowly (wasm guest code runs several
	// times slower than native): a smaller bound, a longer evaluation.
	const planBound = 2 << 20
	flood := `(step "s" (let [k (apply str (repeat 50000 "x"))] (loop [i 0] (call :ccos.echo k) (recur (inc i)))))`
	caps := capability.Builtins(nil)
	p, a := admit(t, flood, caps)
	for name, prov := range realProviders(t) {
		t.Run("plan/"+name, func(t *testing.T) {
			var err error
			var events []chain.Event
			peak := peakHeap(func() {
				_, events, err = recorded(t, Request{Plan: p, Admission: a, Provider: prov, Caps: caps, Bounds: Bounds{EventBytes: planBound},
					Limits: slowLimits(), Spec: sandbox.Spec{Limits: sandbox.Limits{Deadline: 90 * time.Second}}})
			})
			wantLimit(t, err, events, LimitEventBytes, planBound)
			t.Logf("host heap peak: +%d MiB for a %d MiB event bound", peak>>20, planBound>>20)
			if peak > 256<<20 {
				t.Errorf("the host's heap rose by %d MiB", peak>>20)
			}
		})
	}
}

// The other per-run bounds: events by count, yielded calls by count and
// by argument bytes.
func TestRunBounds(t *testing.T) {
	caps := capability.Builtins(nil)
	tests := []struct {
		name, plan string
		bounds     Bounds
		limit      string
		value      int64
	}{
		{"events", `(step "s" (loop [i 0] (call :ccos.echo i) (recur (inc i))))`, Bounds{Events: 100}, LimitEvents, 100},
		{"calls", `(step "s" (loop [i 0] (call :ccos.system.current-time) (recur (inc i))))`, Bounds{Calls: 50}, LimitCalls, 50},
		{"call bytes", `(step "s" (let [k (apply str (repeat 100000 "x"))] (loop [i 0] (call :ccos.system.current-time k) (recur (inc i)))))`,
			Bounds{CallBytes: 1 << 20}, LimitCallBytes, 1 << 20},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p, a := admit(t, tc.plan, caps)
			_, events, err := recorded(t, Request{Plan: p, Admission: a, Provider: &mock.Provider{Guest: guest.Run}, Caps: caps,
				Bounds: tc.bounds, Limits: control.RunLimits{TimeoutMillis: 1000}, Spec: sandbox.Spec{Limits: sandbox.Limits{Deadline: 20 * time.Second}}})
			wantLimit(t, err, events, tc.limit, tc.value)
		})
	}
}

// A guest killed by its memory limit is reported as that limit, with its
// value, not as a guest the host killed; the output it flushed before is
// kept (the first MaxOutput bytes of it).
func TestMemoryLimitIsReported(t *testing.T) {
	const mem = 192 << 20
	// 700 KB of output, flushed by a call, then memory grows by 500 KB per
	// iteration until the limit stops the guest.
	src := `(step "s" (let [line (apply str (repeat 999 "o")) k (apply str (repeat 500000 "x"))]
  (dotimes [i 700] (println line))
  (call :ccos.echo 1)
  (loop [acc [] i 0] (recur (conj acc (str k i)) (inc i)))))`
	caps := capability.Builtins(nil)
	p, a := admit(t, src, caps)
	for name, prov := range realProviders(t) {
		t.Run(name, func(t *testing.T) {
			rep, events, err := recorded(t, Request{Plan: p, Admission: a, Provider: prov, Caps: caps, MaxOutput: 512 << 10,
				Limits: slowLimits(), Spec: sandbox.Spec{Limits: sandbox.Limits{MemoryBytes: mem, Deadline: 90 * time.Second}}})
			if rep != nil && rep.Error != nil {
				t.Logf("plan error: %+v", rep.Error)
			}
			wantLimit(t, err, events, LimitMemory, mem)
			if rep == nil {
				t.Fatal("no report of what the host saw")
			}
			if len(rep.Output) != 512<<10 || !rep.Truncated || !strings.HasPrefix(rep.Output, "ooo") {
				t.Errorf("the host kept %d bytes of output (truncated %v), want the first 512 KiB", len(rep.Output), rep.Truncated)
			}
		})
	}
}

// Limits that hold and say so (issue 13 §3), on the real providers.
func TestLimitsHold(t *testing.T) {
	caps := capability.Builtins(nil)
	dag := `(loop [v ["leaf"] i 0] (if (< i 60) (recur [v v] (inc i)) v))`
	tests := []struct {
		name, plan string
		// errType is the plan error's type ("" for a value), msg a part of
		// its message.
		errType, msg string
	}{
		{"pure capability with huge inputs", `(step "s" (let [k (apply str (repeat 1000000 "x"))]
  (call :ccos.string.concat k k k k k k k k k k k k k k k k k)))`, rtfs.ErrLimit, "capability ccos.string.concat: its arguments print to more than 16777216 bytes"},
		{"five 1 MB calls are recorded", `(step "s" (let [k (apply str (repeat 1000 "x")) b (apply str (repeat 1000 k))]
  (+ (count (call :ccos.echo b)) (count (call :ccos.echo b)) (count (call :ccos.echo b)) (count (call :ccos.echo b)) (count (call :ccos.echo b)))))`, "", ""},
		{"a DAG passed to a guest capability", `(step "s" (call :ccos.echo ` + dag + `))`, rtfs.ErrLimit, "capability ccos.echo: its arguments print to more than"},
		{"a DAG passed to the host", `(step "s" (call :ccos.system.current-time ` + dag + `))`, rtfs.ErrLimit, "capability ccos.system.current-time: its arguments print to more than"},
		{"a DAG as the plan's value", dag, rtfs.ErrLimit, "nested elements"},
		{"a step entered twice", `(dotimes [i 2] (step "s" (call :ccos.echo i)))`, guest.ErrPlan, `step "s" is entered a second time`},
	}
	for name, prov := range realProviders(t) {
		for _, tc := range tests {
			t.Run(name+"/"+tc.name, func(t *testing.T) {
				p, a := admit(t, tc.plan, caps)
				rep, events, err := recorded(t, Request{Plan: p, Admission: a, Provider: prov, Caps: caps, Limits: slowLimits(),
					Spec: sandbox.Spec{Limits: sandbox.Limits{Deadline: 90 * time.Second}}})
				if err != nil {
					t.Fatal(err)
				}
				if tc.errType == "" {
					if rep.Error != nil {
						t.Fatalf("plan error %+v", rep.Error)
					}
					summaries := 0
					for _, e := range events {
						if strings.Contains(rtfs.Print(e.Payload), ":truncated true") {
							summaries++
						}
					}
					if rtfs.Print(rep.Value) != "5000000" || summaries != 10 {
						t.Errorf("value %s, %d events record a summary (want 10)", rtfs.Print(rep.Value), summaries)
					}
					return
				}
				if rep.Error == nil || rep.Error.Type != tc.errType || !strings.Contains(rep.Error.Message, tc.msg) {
					t.Fatalf("got %+v (value %v), want %s: %s", rep.Error, rep.Value, tc.errType, tc.msg)
				}
				if tc.errType == guest.ErrPlan {
					if rep.Error.Where != "plan.rtfs:1:16" {
						t.Errorf("the error is at %q, want the step form", rep.Error.Where)
					}
					started := 0
					for _, e := range events {
						if e.Type == chain.TypeStepStarted {
							started++
						}
					}
					if started != 1 {
						t.Errorf("%d step.started events, want 1", started)
					}
				}
			})
		}
	}
}

// Each timed step has its own timer: a nested step's limit holds inside
// a timed outer step.
func TestNestedStepTimeLimit(t *testing.T) {
	_, err := runInProcess(t, `(step "outer" [:resources {:max_time_ms 20000}]
  (step "inner" [:resources {:max_time_ms 200}] (loop [i 0] (recur (inc i)))))`, "")
	if !errors.Is(err, ErrStepTimeout) || !strings.Contains(err.Error(), `step "inner" exceeded its time limit of 200 ms`) {
		t.Fatalf("got %v", err)
	}
}

// slowLimits give a plan a minute of evaluation: the limits tests check
// what happens at other limits, on a machine whose load may be high and
// with wasm guest code several times slower than native.
func slowLimits() control.RunLimits { return control.RunLimits{TimeoutMillis: 60000} }
