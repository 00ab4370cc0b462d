package orchestrator

import (
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
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

// counters are host capabilities that count their runs: test.bump changes
// things (it is recorded under its idempotency key), test.flaky fails its
// first failures calls, test.fail always fails.
type counters struct {
	bumps, flaky, fails, undos atomic.Int64
	failures                   int64
}

func (c *counters) caps() *capability.Registry {
	r := capability.Builtins(nil)
	host := func(id string, mutates bool, fn func() (rtfs.Value, error)) {
		r.Add(&capability.Capability{ID: id, Class: capability.Host, Mutates: mutates, Contract: capability.Contract{MaxTimeMS: 100},
			Fn: func(context.Context, []rtfs.Value) (rtfs.Value, error) { return fn() }})
	}
	host("test.bump", true, func() (rtfs.Value, error) { return rtfs.Int{V: c.bumps.Add(1)}, nil })
	host("test.undo", true, func() (rtfs.Value, error) { return rtfs.Int{V: c.undos.Add(1)}, nil })
	host("test.flaky", false, func() (rtfs.Value, error) {
		if c.flaky.Add(1) <= c.failures {
			return nil, errors.New("transient failure")
		}
		return rtfs.Keyword{Name: "ok"}, nil
	})
	host("test.fail", false, func() (rtfs.Value, error) { c.fails.Add(1); return nil, errors.New("always fails") })
	return r
}

// admitFull admits a plan at the full level, where test capabilities are
// allowed.
func admitFull(t *testing.T, src string, caps *capability.Registry) (*plan.Plan, *governance.Admission) {
	t.Helper()
	p, err := plan.Read([]byte(src), "plan.rtfs")
	if err != nil {
		t.Fatal(err)
	}
	res := config.Load([]byte(`(profile:minimal "agent.test")`), "cfg", config.RTFSEvaluator{})
	a, err := governance.AdmitIn(governance.RuntimeContext{Level: governance.LevelFull}, p, res.Config, caps, nil)
	if err != nil {
		t.Fatal(err)
	}
	return p, a
}

// useWorkdir points the in-process guest's workdir at a fresh directory.
func useWorkdir(t *testing.T) string {
	t.Helper()
	wd := t.TempDir()
	old := guest.Workdir
	guest.Workdir = wd
	t.Cleanup(func() { guest.Workdir = old })
	return wd
}

func request(p *plan.Plan, a *governance.Admission, caps *capability.Registry, g func(io.ReadWriteCloser) int) Request {
	return Request{Plan: p, Admission: a, Caps: caps, Provider: &mock.Provider{Guest: g},
		Spec: sandbox.Spec{ID: "sb-test", Limits: sandbox.Limits{Deadline: 10 * time.Second}}}
}

// A step that writes a file and calls a side-effecting host capability,
// then fails, is retried: neither the write nor the host call happens
// again, and the calls that failed do run again.
func TestRetriedStepDoesNotRepeatSideEffects(t *testing.T) {
	wd := useWorkdir(t)
	c := &counters{failures: 2}
	caps := c.caps()
	p, a := admitFull(t, `(step "outer" [:retry 2]
  (call :ccos.io.write-file "out.txt" "data")
  [(step "inner" (call :test.bump)) (call :test.flaky)])`, caps)
	rep, err := Run(context.Background(), request(p, a, caps, guest.Run))
	if err != nil {
		t.Fatal(err)
	}
	if rep.Error != nil || rtfs.Print(rep.Value) != "[1 :ok]" {
		t.Fatalf("value %v, error %+v", rep.Value, rep.Error)
	}
	if c.bumps.Load() != 1 || c.flaky.Load() != 3 {
		t.Errorf("test.bump ran %d time(s), test.flaky %d; want 1 and 3", c.bumps.Load(), c.flaky.Load())
	}
	wal, err := os.ReadFile(filepath.Join(wd, ".ccos-wal"))
	if err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(string(wal), `"state":"started"`); n != 1 || !strings.Contains(string(wal), `"capability":"ccos.io.write-file"`) {
		t.Errorf("the write was started %d time(s):\n%s", n, wal)
	}
	if b, _ := os.ReadFile(filepath.Join(wd, "out.txt")); string(b) != "data" {
		t.Errorf("out.txt = %q", b)
	}
}

// A side-effecting call that an earlier attempt started without recording
// its outcome is not run again: the plan gets an in-doubt error.
func TestInDoubtCallIsNotRepeated(t *testing.T) {
	wd := useWorkdir(t)
	caps := capability.Builtins(nil)
	p, a := admitFull(t, `(step "s" (call :ccos.io.write-file "out.txt" "data"))`, caps)
	w, err := guest.OpenWAL(filepath.Join(wd, ".ccos-wal"), "sb-test")
	if err != nil {
		t.Fatal(err)
	}
	w.Started(control.CallKey(a.PlanHash, "s", 1), "ccos.io.write-file", guest.ArgsDigest([]rtfs.Value{rtfs.String{V: "out.txt"}, rtfs.String{V: "data"}}))
	w.Close()
	rep, err := Run(context.Background(), request(p, a, caps, guest.Run))
	if err != nil {
		t.Fatal(err)
	}
	if rep.Error == nil || !strings.Contains(rep.Error.Message, "was started by an earlier attempt that did not record its outcome") {
		t.Fatalf("error %+v", rep.Error)
	}
	if _, err := os.Stat(filepath.Join(wd, "out.txt")); !os.IsNotExist(err) {
		t.Errorf("the call ran: %v", err)
	}
}

// crashAfterBump is a guest that enters step "s", makes the step's first
// call (test.bump) and dies before reporting anything.
func crashAfterBump(rw io.ReadWriteCloser) int {
	defer rw.Close()
	c := control.NewConn(rw, control.GuestSide, 0)
	c.Send(&control.Hello{Protocol: control.ProtocolVersion}, 0)
	c.Recv()
	m, _ := c.Recv()
	run := m.Body.(*control.Run)
	c.Request(&control.StepBegin{Name: "s"})
	c.Recv()
	c.Request(&control.Call{Capability: "test.bump", Key: control.CallKey(run.PlanHash, "s", 1), Ordinal: 1})
	c.Recv()
	return 1
}

// The host's record outlives the sandbox: the plan run again after a
// crash, in a new sandbox, does not repeat the host call the crashed one
// made.
func TestHostRecordAcrossSandboxRestart(t *testing.T) {
	c := &counters{}
	caps := c.caps()
	p, a := admitFull(t, `(step "s" (call :test.bump))`, caps)

	// By the orchestrator: Restarts.
	var starts atomic.Int64
	req := request(p, a, caps, func(rw io.ReadWriteCloser) int {
		if starts.Add(1) == 1 {
			return crashAfterBump(rw)
		}
		return guest.Run(rw)
	})
	req.Restarts = 1
	rep, err := Run(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	if rtfs.Print(rep.Value) != "1" || c.bumps.Load() != 1 || starts.Load() != 2 {
		t.Errorf("value %v, %d bump(s), %d sandbox(es)", rep.Value, c.bumps.Load(), starts.Load())
	}

	// By the caller, with the same record.
	req = request(p, a, caps, crashAfterBump)
	req.Calls = NewCallRecord()
	if _, err := Run(context.Background(), req); !errors.Is(err, ErrCrashed) {
		t.Fatalf("crash: %v", err)
	}
	req.Provider = &mock.Provider{Guest: guest.Run}
	rep, err = Run(context.Background(), req)
	if err != nil || rtfs.Print(rep.Value) != "2" || c.bumps.Load() != 2 || req.Calls.Len() != 1 {
		t.Errorf("rerun: %v %v, %d bump(s)", rep, err, c.bumps.Load())
	}
}

// The compensation runs once, after the last attempt failed, under the
// step's profile; the side effects of the failed attempts are not
// repeated.
func TestRetryThenCompensate(t *testing.T) {
	useWorkdir(t)
	c := &counters{}
	caps := c.caps()
	p, a := admitFull(t, `(step "s" [:retry 2 :compensate (call :test.undo)] (call :test.bump) (call :test.fail))`, caps)
	rep, err := Run(context.Background(), request(p, a, caps, guest.Run))
	if err != nil {
		t.Fatal(err)
	}
	if rep.Error == nil || !strings.Contains(rep.Error.Message, "always fails") {
		t.Fatalf("error %+v", rep.Error)
	}
	if c.bumps.Load() != 1 || c.fails.Load() != 3 || c.undos.Load() != 1 {
		t.Errorf("bump %d, fail %d, undo %d; want 1, 3, 1", c.bumps.Load(), c.fails.Load(), c.undos.Load())
	}
	undo, _ := caps.Lookup("test.undo")
	if prof := a.Profile("s"); prof.Retry != 2 || a.Authorize("s", undo) != nil {
		t.Errorf("profile %+v", prof)
	}
}

// The host derives every key itself and allows only the admitted retries.
func TestIdempotencyProtocol(t *testing.T) {
	c := &counters{}
	caps := c.caps()
	p, a := admitFull(t, `(step "s" (call :test.bump))`, caps)
	for _, tc := range []struct {
		name string
		act  func(c *control.Conn, _ io.Writer)
		want string
	}{
		{"forged key", func(c *control.Conn, _ io.Writer) {
			c.Request(&control.StepBegin{Name: "s"})
			c.Recv()
			c.Request(&control.Call{Capability: "test.bump", Key: control.CallKey("sha256:other", "s", 1), Ordinal: 1})
		}, "is not the key of that call"},
		{"no key", func(c *control.Conn, _ io.Writer) {
			c.Request(&control.StepBegin{Name: "s"})
			c.Recv()
			c.Request(&control.Call{Capability: "test.bump"})
			c.Recv()
			c.Request(&control.StepRetry{Name: "s", Attempt: 1})
		}, "admitted with :retry 0"},
		{"retry outside the step", func(c *control.Conn, _ io.Writer) {
			c.Request(&control.StepRetry{Name: "s", Attempt: 1})
		}, "not the step in progress"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Run(context.Background(), request(p, a, caps, hostile(tc.act)))
			if !errors.Is(err, control.ErrProtocol) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("%v, want %q", err, tc.want)
			}
		})
	}
	if c.bumps.Load() != 0 {
		t.Errorf("test.bump ran %d time(s)", c.bumps.Load())
	}
}

// A retried step that makes other side-effecting calls under the keys of
// the earlier attempt is refused, in the guest and in the host, rather
// than answered with the outcome of a different call.
func TestRetryWithOtherArguments(t *testing.T) {
	useWorkdir(t)
	c := &counters{}
	caps := c.caps()
	for _, call := range []string{`(call :ccos.io.write-file "f" (str @n))`, `(call :test.bump (str @n))`} {
		p, a := admitFull(t, `(do (def n (atom 0))
  (step "s" [:retry 1] (swap! n inc) `+call+` (when (< @n 2) (throw (ex-info "again" {})))))`, caps)
		rep, err := Run(context.Background(), request(p, a, caps, guest.Run))
		if err != nil {
			t.Fatal(err)
		}
		if rep.Error == nil || !strings.Contains(rep.Error.Message, "is not the call an earlier attempt made under that key") {
			t.Errorf("%s: error %+v", call, rep.Error)
		}
	}
	if c.bumps.Load() != 1 {
		t.Errorf("test.bump ran %d time(s)", c.bumps.Load())
	}
}
