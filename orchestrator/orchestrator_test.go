package orchestrator

import (
	"context"
	"encoding/binary"
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/ccos-project/ccos/capability"
	"github.com/ccos-project/ccos/config"
	"github.com/ccos-project/ccos/control"
	"github.com/ccos-project/ccos/governance"
	"github.com/ccos-project/ccos/guest"
	"github.com/ccos-project/ccos/plan"
	"github.com/ccos-project/ccos/rtfs"
	"github.com/ccos-project/ccos/sandbox"
	"github.com/ccos-project/ccos/sandbox/mock"
)

// admit reads and admits a plan under the minimal profile.
func admit(t testing.TB, src string, caps *capability.Registry) (*plan.Plan, *governance.Admission) {
	t.Helper()
	p, err := plan.Read([]byte(src), "plan.rtfs")
	if err != nil {
		t.Fatalf("reading plan: %v", err)
	}
	res := config.Load([]byte(`(profile:minimal "agent.test")`), "cfg", config.RTFSEvaluator{})
	if res.Diags.HasErrors() {
		t.Fatal(res.Diags)
	}
	a, err := governance.Admit(p, res.Config, caps, nil)
	if err != nil {
		t.Fatalf("admission: %v", err)
	}
	return p, a
}

func runPlan(t *testing.T, src string, g func(io.ReadWriteCloser) int) (*Report, error) {
	t.Helper()
	fixed := time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)
	caps := capability.Builtins(func() time.Time { return fixed })
	p, a := admit(t, src, caps)
	return Run(context.Background(), Request{
		Plan:      p,
		Admission: a,
		Provider:  &mock.Provider{Guest: g},
		Spec:      sandbox.Spec{Limits: sandbox.Limits{Deadline: 10 * time.Second}},
		Caps:      caps,
	})
}

func TestRunPlans(t *testing.T) {
	tests := []struct {
		name, src, value, output string
		steps                    []string
	}{
		{"bare", `(+ 1 2)`, "3", "", nil},
		{"hello", `(plan "hello" :body (step "greet" (println "hi") (call :ccos.string.concat "Hello, " "world")))`,
			`"Hello, world"`, "hi\n", []string{"greet"}},
		{"multi-step", `(plan "multi" :body
  (let [a (step "first" (call :ccos.math.add 1 2))
        b (step "second" (call :ccos.math.add a 10))
        t (step "clock" (call :ccos.system.current-time))]
    [a b t]))`, "[3 13 2026-11-22T12:00:00Z]", "", []string{"first", "second", "clock"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rep, err := runPlan(t, tc.src, guest.Run)
			if err != nil {
				t.Fatal(err)
			}
			if rep.Error != nil {
				t.Fatalf("plan error: %+v", rep.Error)
			}
			if got := rtfs.Print(rep.Value); got != tc.value {
				t.Errorf("value = %s, want %s", got, tc.value)
			}
			if rep.Output != tc.output {
				t.Errorf("output = %q, want %q", rep.Output, tc.output)
			}
			var names []string
			for _, s := range rep.Steps {
				names = append(names, s.Name)
				if !s.OK {
					t.Errorf("step %s not ok: %s", s.Name, s.Error)
				}
			}
			if strings.Join(names, ",") != strings.Join(tc.steps, ",") {
				t.Errorf("steps = %v, want %v", names, tc.steps)
			}
		})
	}
}

func TestPlanErrors(t *testing.T) {
	tests := []struct{ name, src, typ, msg string }{
		{"division", `(step "s" (/ 1 0))`, "DivisionByZero", ""},
		{"bad capability args", `(call :ccos.math.add 1 "x")`, "", "not a number"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rep, err := runPlan(t, tc.src, guest.Run)
			if err != nil {
				t.Fatal(err)
			}
			if rep.Error == nil {
				t.Fatalf("no plan error; value %s", rtfs.Print(rep.Value))
			}
			if tc.typ != "" && rep.Error.Type != tc.typ {
				t.Errorf("error type %s, want %s (%s)", rep.Error.Type, tc.typ, rep.Error.Message)
			}
			if !strings.Contains(rep.Error.Message, tc.msg) {
				t.Errorf("error %q does not contain %q", rep.Error.Message, tc.msg)
			}
		})
	}
}

// hostile returns a guest that does the handshake and then runs act.
func hostile(act func(c *control.Conn, raw io.Writer)) func(io.ReadWriteCloser) int {
	return func(rw io.ReadWriteCloser) int {
		defer rw.Close()
		c := control.NewConn(rw, control.GuestSide, 0)
		c.Send(&control.Hello{Protocol: 1}, 0)
		c.Recv()
		c.Recv()
		act(c, rw)
		io.Copy(io.Discard, rw)
		return 0
	}
}

func TestHostileGuests(t *testing.T) {
	v := "1"
	tests := []struct {
		name  string
		guest func(io.ReadWriteCloser) int
		want  string
	}{
		{"unadmitted step", hostile(func(c *control.Conn, _ io.Writer) {
			c.Request(&control.StepBegin{Name: "not-in-plan"})
		}), `step "not-in-plan", which was not admitted`},
		{"step twice", hostile(func(c *control.Conn, _ io.Writer) {
			c.Request(&control.StepBegin{Name: "s"})
			c.Recv()
			c.Request(&control.StepEnd{Name: "s", OK: true})
			c.Recv()
			c.Request(&control.StepBegin{Name: "s"})
		}), `step "s" a second time`},
		{"end a step never begun", hostile(func(c *control.Conn, _ io.Writer) {
			c.Request(&control.StepEnd{Name: "s", OK: true})
		}), "not the step in progress"},
		{"done inside a step", hostile(func(c *control.Conn, _ io.Writer) {
			c.Request(&control.StepBegin{Name: "s"})
			c.Recv()
			c.Send(&control.Done{Value: &v}, 0)
		}), `finished inside step "s"`},
		{"unreadable result", hostile(func(c *control.Conn, _ io.Writer) {
			bad := "(unclosed"
			c.Send(&control.Done{Value: &bad}, 0)
		}), "result does not read"},
		{"oversize frame", hostile(func(_ *control.Conn, w io.Writer) {
			var hdr [4]byte
			binary.BigEndian.PutUint32(hdr[:], 1<<30)
			w.Write(hdr[:])
		}), "frame too large"},
		{"unknown message type", hostile(func(_ *control.Conn, w io.Writer) {
			p := `{"id":2,"type":"exec","body":{"cmd":"sh"}}`
			var hdr [4]byte
			binary.BigEndian.PutUint32(hdr[:], uint32(len(p)))
			w.Write(append(hdr[:], p...))
		}), `unknown message type "exec"`},
		{"call outside the step's profile", hostile(func(c *control.Conn, _ io.Writer) {
			c.Request(&control.StepBegin{Name: "s"})
			c.Recv()
			c.Request(&control.Call{Capability: "ccos.system.current-time"})
			m, _ := c.Recv()
			msg := m.Body.(*control.Error).Message
			c.Request(&control.StepEnd{Name: "s", OK: true})
			c.Recv()
			c.Send(&control.Done{Error: &control.ErrorInfo{Type: "HostError", Message: msg}}, 0)
		}), ""},
		{"call outside any step", hostile(func(c *control.Conn, _ io.Writer) {
			c.Request(&control.Call{Capability: "ccos.system.current-time"})
			m, _ := c.Recv()
			c.Send(&control.Done{Error: &control.ErrorInfo{Type: "HostError", Message: m.Body.(*control.Error).Message}}, 0)
		}), ""},
		{"output out of order", hostile(func(c *control.Conn, _ io.Writer) {
			c.Send(&control.Output{Seq: 5, Text: "x"}, 0)
		}), "output 5 out of sequence"},
		{"no hello", func(rw io.ReadWriteCloser) int {
			c := control.NewConn(rw, control.GuestSide, 0)
			c.Send(&control.Output{Seq: 1, Text: "x"}, 0)
			io.Copy(io.Discard, rw)
			return 0
		}, "first message is output, not hello"},
		{"crash before done", func(rw io.ReadWriteCloser) int {
			rw.Close()
			return 2
		}, "waiting for the guest's hello"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rep, err := runPlan(t, `(step "s" 1)`, tc.guest)
			if tc.want == "" {
				// The host refused the call; the guest reported the refusal.
				if err != nil || rep.Error == nil || !strings.Contains(rep.Error.Message, "ccos.system.current-time") {
					t.Errorf("got %+v, %v; want the refusal reported", rep, err)
				}
				return
			}
			if !errors.Is(err, ErrGuest) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("got %v, want a guest failure containing %q", err, tc.want)
			}
		})
	}
	// The host is unaffected: a normal run right after works.
	rep, err := runPlan(t, `(step "s" (call :ccos.echo 7))`, guest.Run)
	if err != nil || rtfs.Print(rep.Value) != "7" {
		t.Errorf("normal run after hostile ones: %v %v", rep, err)
	}
}

// The guest's own events are recorded once, in order: a batch sent again
// (after a broken channel) is not recorded twice, a gap or a foreign type
// ends the session.
func TestGuestEvents(t *testing.T) {
	events := func(items ...control.EventItem) func(c *control.Conn, _ io.Writer) {
		return func(c *control.Conn, _ io.Writer) {
			c.Request(&control.StepBegin{Name: "s"})
			c.Recv()
			c.Request(&control.Events{Items: items})
			c.Recv()
			c.Request(&control.Events{Items: items})
			c.Recv()
			c.Request(&control.StepEnd{Name: "s", OK: true})
			c.Recv()
			v := "1"
			c.Send(&control.Done{Value: &v}, 0)
		}
	}
	ok := []control.EventItem{{Seq: 1, Type: "capability.call", Step: "s", Payload: "{:capability :ccos.echo :args [1]}"},
		{Seq: 2, Type: "capability.result", Step: "s", Payload: "{:capability :ccos.echo :ok true :value 1}"}}
	if _, err := runPlan(t, `(step "s" (call :ccos.echo 1))`, hostile(events(ok...))); err != nil {
		t.Errorf("resent batch: %v", err)
	}
	for _, tc := range []struct {
		items []control.EventItem
		want  string
	}{
		{[]control.EventItem{{Seq: 3, Type: "guest.event", Payload: "1"}}, "skips ahead"},
		{[]control.EventItem{{Seq: 1, Type: "plan.admitted", Payload: "1"}}, `may not report events of type "plan.admitted"`},
		{[]control.EventItem{{Seq: 1, Type: "guest.event", Step: "other", Payload: "1"}}, `names step "other"`},
		{[]control.EventItem{{Seq: 1, Type: "guest.event", Payload: "(unclosed"}}, "payload does not read"},
		{[]control.EventItem{{Seq: 1, Type: "guest.event", Payload: "1"}}, "guest.event payload: payload has the wrong shape"},
		{[]control.EventItem{{Seq: 1, Type: "capability.call", Step: "s", Payload: "{:capability :x :args [] :extra 1}"}}, "field :extra: unknown field"},
	} {
		if _, err := runPlan(t, `(step "s" 1)`, hostile(events(tc.items...))); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("got %v, want %q", err, tc.want)
		}
	}
}
