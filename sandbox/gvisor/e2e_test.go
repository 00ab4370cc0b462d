//go:build linux

package gvisor

import (
	"context"
	"testing"
	"time"

	"github.com/ccos-project/ccos/capability"
	"github.com/ccos-project/ccos/config"
	"github.com/ccos-project/ccos/governance"
	"github.com/ccos-project/ccos/orchestrator"
	"github.com/ccos-project/ccos/plan"
	"github.com/ccos-project/ccos/rtfs"
	"github.com/ccos-project/ccos/sandbox"
)

// TestPlanEndToEnd runs real plans with the real ccos guest in gVisor,
// through the orchestrator: admission, the control session, host and
// guest capabilities.
func TestPlanEndToEnd(t *testing.T) {
	tests := []struct {
		name, src, value, output string
	}{
		{"bare", `(+ 1 2)`, "3", ""},
		{"steps", `(plan "multi" :body
  (let [a (step "first" (call :ccos.math.add 1 2))
        b (step "second" (call :ccos.math.add a 10))
        t (step "clock" (call :ccos.system.current-time))]
    (println "done")
    [a b t]))`, "[3 13 2026-11-22T12:00:00Z]", "done\n"},
	}
	fixed := time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)
	caps := capability.Builtins(func() time.Time { return fixed })
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p, err := plan.Read([]byte(tc.src), "plan.rtfs")
			if err != nil {
				t.Fatal(err)
			}
			res := config.Load([]byte(`(profile:minimal "agent.test")`), "cfg", config.RTFSEvaluator{})
			if res.Diags.HasErrors() {
				t.Fatal(res.Diags)
			}
			adm, err := governance.Admit(p, res.Config, caps, nil)
			if err != nil {
				t.Fatal(err)
			}
			rep, err := orchestrator.Run(context.Background(), orchestrator.Request{
				Plan: p, Admission: adm, Caps: caps,
				Provider: &Provider{Binary: ccosBinary},
				Spec:     sandbox.Spec{ID: testID(t), Limits: sandbox.Limits{Deadline: 30 * time.Second}},
			})
			if err != nil {
				t.Fatal(err)
			}
			if rep.Error != nil {
				t.Fatalf("plan error: %+v", rep.Error)
			}
			if got := rtfs.Print(rep.Value); got != tc.value || rep.Output != tc.output {
				t.Errorf("value %s, output %q; want %s, %q", got, rep.Output, tc.value, tc.output)
			}
			if rep.Provider != Name {
				t.Errorf("provider %q", rep.Provider)
			}
			t.Logf("startup %v, total %v", rep.Startup, rep.Total)
		})
	}
}
