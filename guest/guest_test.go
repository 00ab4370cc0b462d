package guest

import (
	"context"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/ccos-project/ccos/capability"
	"github.com/ccos-project/ccos/control"
	"github.com/ccos-project/ccos/rtfs"
)

// host plays the host side of one session: it sends run, answers every
// request with ok (or a result), and returns the done message.
func host(t *testing.T, run *control.Run) *control.Done {
	t.Helper()
	a, b := net.Pipe()
	go Run(b)
	c := control.NewConn(a, control.HostSide, 0)
	defer c.Close()
	if m, err := c.Recv(); err != nil || m.Type != control.TypeHello {
		t.Fatalf("hello: %v %v", m, err)
	}
	c.Send(&control.Welcome{Protocol: control.ProtocolVersion, Session: "t"}, 0)
	c.Send(run, 0)
	for {
		m, err := c.Recv()
		if err != nil {
			t.Fatalf("session: %v", err)
		}
		switch m.Body.(type) {
		case *control.StepBegin, *control.StepEnd, *control.Events:
			c.Send(&control.OK{}, m.ID)
		case *control.Call:
			c.Send(&control.Result{Value: ":from-host"}, m.ID)
		case *control.Done:
			return m.Body.(*control.Done)
		}
	}
}

func TestGuestChecksGrants(t *testing.T) {
	tests := []struct {
		name, plan string
		grants     []control.Grant
		unstepped  []string
		value, err string
	}{
		{"granted pure call", `(step "s" (call :ccos.echo 1))`,
			[]control.Grant{{Step: "s", Capabilities: []string{"ccos.echo"}}}, nil, "1", ""},
		{"call outside the grant", `(step "s" (call :ccos.echo 1))`,
			[]control.Grant{{Step: "s"}}, nil, "", `capability ccos.echo is not in the profile of step "s"`},
		{"dynamic step defers to the host", `(step "s" (call :ccos.system.current-time))`,
			[]control.Grant{{Step: "s", Dynamic: true}}, nil, ":from-host", ""},
		{"unstepped call admitted", `(call :ccos.echo 2)`, nil, []string{"ccos.echo"}, "2", ""},
		{"unstepped call not admitted", `(call :ccos.echo 2)`, nil, nil, "", "was not admitted outside a step"},
		{"step not admitted", `(step "other" 1)`, nil, nil, "", `step "other" was not admitted`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var steps []string
			for _, g := range tc.grants {
				steps = append(steps, g.Step)
			}
			d := host(t, &control.Run{Plan: tc.plan, File: "p.rtfs", Steps: steps, Grants: tc.grants, Unstepped: tc.unstepped})
			if tc.err != "" {
				if d.Error == nil || !strings.Contains(d.Error.Message, tc.err) {
					t.Errorf("got %+v, want error %q", d, tc.err)
				}
				return
			}
			if d.Value == nil || *d.Value != tc.value {
				t.Errorf("got %+v, want value %s", d, tc.value)
			}
		})
	}
}

// A capability the guest runs itself holds its time limit, its
// contract's :max_time_ms, even when it ignores its context: the plan
// gets a LimitExceeded.
func TestLocalCapabilityTimeLimit(t *testing.T) {
	old := builtins
	defer func() { builtins = old }()
	builtins = func() *capability.Registry {
		r := old()
		r.Add(&capability.Capability{ID: "test.slow", Class: capability.Pure, Contract: capability.Contract{MaxTimeMS: 50},
			Fn: func(context.Context, []rtfs.Value) (rtfs.Value, error) {
				time.Sleep(300 * time.Millisecond)
				return rtfs.Int{V: 1}, nil
			}})
		return r
	}
	d := host(t, &control.Run{Plan: `(step "s" (call :test.slow))`, File: "p.rtfs", Steps: []string{"s"},
		Grants: []control.Grant{{Step: "s", Capabilities: []string{"test.slow"}}}})
	if d.Error == nil || d.Error.Type != rtfs.ErrLimit || !strings.Contains(d.Error.Message, "capability test.slow ran past its time limit of 50 ms (its contract's :max_time_ms)") {
		t.Errorf("got %+v", d)
	}
}
