package supervisor

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ccos-project/ccos/chain"
	"github.com/ccos-project/ccos/config"
	"github.com/ccos-project/ccos/guest"
	"github.com/ccos-project/ccos/sandbox"
	"github.com/ccos-project/ccos/sandbox/mock"
	"github.com/prometheus/client_golang/prometheus"
)

const goodPlan = `(plan "sum" :body (step "add" (call :ccos.math.add 40 2)))`

func newSupervisor(t *testing.T, g func(io.ReadWriteCloser) int, replay bool) (*Supervisor, *prometheus.Registry, *chain.Recorder) {
	t.Helper()
	res := config.Load([]byte(`(profile:minimal "agent.sup")`), "cfg", config.RTFSEvaluator{})
	if res.Diags.HasErrors() {
		t.Fatal(res.Diags)
	}
	rec, err := chain.NewRecorder(chain.NewMemoryStore(), nil, chain.Options{})
	if err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	s, err := New(Options{Config: res.Config, Provider: &mock.Provider{Guest: g}, Recorder: rec, Replay: replay,
		Registerer: reg, Spec: sandbox.Spec{Limits: sandbox.Limits{Deadline: 10 * time.Second}}})
	if err != nil {
		t.Fatal(err)
	}
	return s, reg, rec
}

func TestSubmitRunsAndCachesAdmission(t *testing.T) {
	s, _, rec := newSupervisor(t, guest.Run, false)
	res, err := s.Submit(context.Background(), Submission{Plan: goodPlan})
	if err != nil || res.Value != "42" || res.CacheHit {
		t.Fatalf("first submit: %+v %v", res, err)
	}
	res, err = s.Submit(context.Background(), Submission{Plan: goodPlan})
	if err != nil || res.Value != "42" || !res.CacheHit {
		t.Fatalf("second submit: %+v %v", res, err)
	}
	h := s.Health()
	if h.Runs != 2 || h.Crashes != 0 || h.Status != "ok" || h.LastPlan != res.PlanHash || h.ChainSize == 0 {
		t.Errorf("health: %+v", h)
	}
	if rec.Size() != h.ChainSize {
		t.Errorf("chain size %d vs health %d", rec.Size(), h.ChainSize)
	}
}

func TestSubmitRejectsUnadmittablePlan(t *testing.T) {
	s, _, _ := newSupervisor(t, guest.Run, false)
	_, err := s.Submit(context.Background(), Submission{Plan: `(plan "net" :body (step "f" (call :ccos.network.http-fetch "https://example.com")))`})
	var ae *AdmissionError
	if !errors.As(err, &ae) {
		t.Fatalf("err = %v, want an admission error", err)
	}
	_, err = s.Submit(context.Background(), Submission{Plan: `(plan "broken" :body (step "x" 1)`})
	if !errors.As(err, &ae) {
		t.Fatalf("unreadable plan: err = %v", err)
	}
}

// crashingGuest ends the session without a word the first n times, then
// behaves.
func crashingGuest(n int32) func(io.ReadWriteCloser) int {
	var calls atomic.Int32
	return func(c io.ReadWriteCloser) int {
		if calls.Add(1) <= n {
			c.Close()
			return 7
		}
		return guest.Run(c)
	}
}

func TestCrashIsReplayedInFreshGuestWhenAllowed(t *testing.T) {
	s, _, _ := newSupervisor(t, crashingGuest(1), true)
	res, err := s.Submit(context.Background(), Submission{Plan: goodPlan})
	if err != nil || res.Value != "42" || !res.Replayed {
		t.Fatalf("submit: %+v %v", res, err)
	}
	if h := s.Health(); h.Crashes != 1 || h.Replays != 1 {
		t.Errorf("health: %+v", h)
	}
}

func TestCrashIsNotReplayedByDefault(t *testing.T) {
	s, _, _ := newSupervisor(t, crashingGuest(1), false)
	if _, err := s.Submit(context.Background(), Submission{Plan: goodPlan}); err == nil {
		t.Fatal("a crashed guest's plan succeeded without replay")
	}
	if h := s.Health(); h.Crashes != 1 || h.Replays != 0 {
		t.Errorf("health: %+v", h)
	}
	// The next plan gets a fresh guest and runs.
	if res, err := s.Submit(context.Background(), Submission{Plan: goodPlan}); err != nil || res.Value != "42" {
		t.Fatalf("after the crash: %+v %v", res, err)
	}
}

// A replay happens at most once: a guest that keeps crashing fails the
// submission.
func TestReplayAtMostOnce(t *testing.T) {
	s, _, _ := newSupervisor(t, crashingGuest(5), true)
	if _, err := s.Submit(context.Background(), Submission{Plan: goodPlan}); err == nil {
		t.Fatal("succeeded")
	}
	if h := s.Health(); h.Crashes != 2 || h.Replays != 1 {
		t.Errorf("health: %+v", h)
	}
}

func TestHTTPControlPlane(t *testing.T) {
	s, reg, _ := newSupervisor(t, guest.Run, false)
	srv := httptest.NewServer(s.Handler(reg))
	defer srv.Close()
	post := func(body string) (int, string) {
		resp, err := http.Post(srv.URL+"/v1/plans", "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	body, _ := json.Marshal(Submission{Plan: goodPlan, File: "sum.rtfs"})
	if code, out := post(string(body)); code != 200 || !strings.Contains(out, `"value": "42"`) {
		t.Errorf("submit: %d %s", code, out)
	}
	for _, bad := range []string{
		`{"plan": "1", "exec": "/bin/sh"}`, // unknown field
		`{"plan": "1"} {"plan": "2"}`,      // trailing data
		`{"plan": ""}`,                     // empty plan
		`[1,2,3]`,                          // not an object
		`{"plan": "` + strings.Repeat("a", MaxSubmission) + `"}`, // oversize
	} {
		if code, out := post(bad); code != 400 || !strings.Contains(out, "bad-request") {
			t.Errorf("%.40q: %d %s", bad, code, out)
		}
	}
	if code, out := post(`{"plan": "(plan \"x\" :body (call :ccos.nope 1))"}`); code != 422 {
		t.Errorf("unadmitted: %d %s", code, out)
	}
	for _, path := range []string{"/v1/exec", "/v1/plans/../exec", "/"} {
		resp, err := http.Post(srv.URL+path, "application/json", strings.NewReader(`{}`))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 404 && resp.StatusCode != 405 {
			t.Errorf("POST %s: %d", path, resp.StatusCode)
		}
	}
	resp, err := http.Get(srv.URL + "/v1/health")
	if err != nil {
		t.Fatal(err)
	}
	var h Health
	json.NewDecoder(resp.Body).Decode(&h)
	resp.Body.Close()
	if h.Status != "ok" || h.Runs != 1 || h.Provider != "mock" {
		t.Errorf("health: %+v", h)
	}
	resp, err = http.Get(srv.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	m, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(m), `ccos_supervisor_runs_total{outcome="ok"} 1`) {
		t.Errorf("metrics:\n%s", m)
	}
}

func TestStopRefusesSubmissions(t *testing.T) {
	s, _, _ := newSupervisor(t, guest.Run, false)
	s.Stop()
	if _, err := s.Submit(context.Background(), Submission{Plan: goodPlan}); !errors.Is(err, ErrStopped) {
		t.Fatalf("err = %v", err)
	}
	if s.Health().Status != "stopped" {
		t.Error("health does not say stopped")
	}
}

func FuzzDecodeSubmission(f *testing.F) {
	for _, s := range []string{`{"plan":"1"}`, `{"plan":"(plan \"a\" :body 1)","file":"a","approvals":["x"]}`, `{"plan":1}`, `{}`, `null`, `{"plan":"1","x":2}`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		sub, err := DecodeSubmission(strings.NewReader(in))
		if err == nil && (sub.Plan == "" || len(sub.Approvals) > 16) {
			t.Fatalf("accepted an invalid submission: %+v", sub)
		}
	})
}
