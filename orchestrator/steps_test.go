package orchestrator

import (
	"io"
	"strings"
	"testing"
	"time"

	"github.com/ccos-project/ccos/capability"
	"github.com/ccos-project/ccos/chain"
	"github.com/ccos-project/ccos/control"
	"github.com/ccos-project/ccos/sandbox"
	"github.com/ccos-project/ccos/sandbox/mock"
)

// A guest that asks to enter a step a second time is refused before
// anything of the second entry is recorded.
func TestStepTwiceRefusedBeforeRecording(t *testing.T) {
	caps := capability.Builtins(nil)
	p, a := admit(t, `(step "s" 1)`, caps)
	g := hostile(func(c *control.Conn, _ io.Writer) {
		c.Request(&control.StepBegin{Name: "s"})
		c.Recv()
		c.Request(&control.StepEnd{Name: "s", OK: true})
		c.Recv()
		c.Request(&control.StepBegin{Name: "s"})
	})
	_, events, err := recorded(t, Request{Plan: p, Admission: a, Provider: &mock.Provider{Guest: g}, Caps: caps,
		Spec: sandbox.Spec{Limits: sandbox.Limits{Deadline: 10 * time.Second}}})
	if err == nil || !strings.Contains(err.Error(), `step "s" a second time`) {
		t.Fatalf("got %v", err)
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
