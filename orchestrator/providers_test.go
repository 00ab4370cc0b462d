package orchestrator

import (
	"context"
	"errors"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/ccos-project/ccos/capability"
	"github.com/ccos-project/ccos/config"
	"github.com/ccos-project/ccos/governance"
	"github.com/ccos-project/ccos/plan"
	"github.com/ccos-project/ccos/sandbox"
	"github.com/ccos-project/ccos/sandbox/process"
	"github.com/ccos-project/ccos/sandbox/wasm"
)

// realProviders are the providers the run-time tests use: the process
// sandbox (this test binary re-executed as the guest, see TestMain) and
// the wasm sandbox (the guest module embedded by `go generate
// ./sandbox/wasm`, which must be run again after the guest changes).
func realProviders(t testing.TB) map[string]sandbox.Provider {
	t.Helper()
	proc := &process.Provider{}
	if ok, why := proc.Available(); !ok {
		t.Fatalf("the process provider must run on this machine: %s", why)
	}
	out := map[string]sandbox.Provider{"process": proc}
	w := wasmProvider()
	if ok, why := w.Available(); ok {
		out["wasm"] = w
	} else if os.Getenv("CI") != "" {
		t.Fatalf("the wasm provider is not available: %s", why)
	} else {
		t.Logf("skipping the wasm provider: %s (run `go generate ./sandbox/wasm`)", why)
	}
	return out
}

var wasmOnce = sync.OnceValue(func() *wasm.Provider { return wasm.New(wasm.Options{}) })

func wasmProvider() *wasm.Provider { return wasmOnce() }

// admitIn reads and admits src under rc.
func admitIn(t *testing.T, rc governance.RuntimeContext, cfg *config.Config, src string, caps *capability.Registry) (*plan.Plan, *governance.Admission, error) {
	t.Helper()
	p, err := plan.Read([]byte(src), "plan.rtfs")
	if err != nil {
		t.Fatalf("reading plan: %v", err)
	}
	a, err := governance.AdmitIn(rc, p, cfg, caps, nil)
	return p, a, err
}

// runOn runs an admitted plan on prov.
func runOn(prov sandbox.Provider, p *plan.Plan, a *governance.Admission, caps *capability.Registry, limits sandbox.Limits) (*Report, error) {
	if limits.Deadline == 0 {
		limits.Deadline = 30 * time.Second
	}
	return Run(context.Background(), Request{Plan: p, Admission: a, Provider: prov, Caps: caps, Spec: sandbox.Spec{Limits: limits}})
}

// ruleOf returns the rule of the rejection err carries, if any.
func ruleOf(err error) governance.Rule {
	var r *governance.Rejection
	if errors.As(err, &r) {
		return r.Rule
	}
	return ""
}

// sandboxLimits are the limits of the run-time tests' sandboxes.
func sandboxLimits() sandbox.Limits { return sandbox.Limits{Deadline: 60 * time.Second} }
