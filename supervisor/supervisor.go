// Package supervisor is the long-lived host side of a ccos deployment: it
// keeps a guest ready, admits and runs the plans submitted to it, records
// everything in one causal chain, detects crashed guests and replaces them
// with fresh ones from the clean image, and serves a small control plane.
//
// The control plane is HTTP over a Unix socket with a closed set of
// routes, each with a strict JSON schema (unknown fields, trailing data and
// oversize bodies are refused):
//
//	POST /v1/plans   {"plan": RTFS source, "file": name, "approvals": [approval text]}
//	GET  /v1/health  readiness, the provider, counters
//	GET  /metrics    Prometheus metrics
//
// There is no route that runs anything but an admitted RTFS plan: no shell,
// no file upload, no exec.
//
// Crash handling: every plan runs in a guest of its own, taken from the
// provider (normally a warm sandbox.Pool that boots the next guest from the
// clean image while the current one runs). When a guest crashes (it ends
// without reporting, breaks the protocol or is killed by a limit) the
// crash is recorded and counted, the guest's VM is already gone, and the
// plan is replayed in a fresh guest only when Options.Replay allows it, at
// most once.
package supervisor

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/ccos-project/ccos/capability"
	"github.com/ccos-project/ccos/chain"
	"github.com/ccos-project/ccos/config"
	"github.com/ccos-project/ccos/control"
	"github.com/ccos-project/ccos/governance"
	"github.com/ccos-project/ccos/orchestrator"
	"github.com/ccos-project/ccos/plan"
	"github.com/ccos-project/ccos/rtfs"
	"github.com/ccos-project/ccos/sandbox"
	"github.com/prometheus/client_golang/prometheus"
)

// Options configure a Supervisor.
type Options struct {
	Config *config.Config
	// Provider starts the guests; a sandbox.Pool keeps one ready.
	Provider sandbox.Provider
	// Spec is the sandbox spec of every guest (limits, capability store).
	Spec sandbox.Spec
	// Caps are the capabilities the host runs for guests.
	Caps *capability.Registry
	// Context is the security context plans are admitted in;
	// governance.DefaultContext(Config) when its level is unset.
	Context *governance.RuntimeContext
	// Recorder receives every event of every run; nil records nothing.
	Recorder *chain.Recorder
	// Replay re-runs a plan once in a fresh guest after its guest crashed.
	Replay bool
	// Registerer receives the metrics; nil registers none.
	Registerer prometheus.Registerer
	// Logger logs one line per run; slog.Default() when nil.
	Logger *slog.Logger
	// AdmissionCacheSize bounds the admission cache (entries); 256 when 0.
	AdmissionCacheSize int
}

// Supervisor runs submitted plans. It is safe for concurrent use; plans run
// one at a time, in submission order.
type Supervisor struct {
	o   Options
	rc  governance.RuntimeContext
	log *slog.Logger
	m   *metrics

	runMu sync.Mutex // one plan at a time

	mu       sync.Mutex
	cache    map[string]*admitted // admission cache by submission key
	order    []string             // cache keys, oldest first
	runs     int
	crashes  int
	replays  int
	lastPlan string
	started  time.Time
	stopped  bool
}

type admitted struct {
	p   *plan.Plan
	adm *governance.Admission
}

// New returns a supervisor.
func New(o Options) (*Supervisor, error) {
	if o.Config == nil || o.Provider == nil {
		return nil, errors.New("supervisor: a config and a provider are required")
	}
	if o.Caps == nil {
		o.Caps = capability.Builtins(nil)
	}
	if o.AdmissionCacheSize <= 0 {
		o.AdmissionCacheSize = 256
	}
	s := &Supervisor{o: o, log: o.Logger, cache: map[string]*admitted{}, started: time.Now()}
	if s.log == nil {
		s.log = slog.Default()
	}
	if o.Context != nil {
		s.rc = *o.Context
	} else {
		s.rc = governance.DefaultContext(o.Config)
	}
	m, err := newMetrics(o.Registerer)
	if err != nil {
		return nil, err
	}
	s.m = m
	return s, nil
}

// Submission is a plan submitted for admission and a run.
type Submission struct {
	Plan      string   `json:"plan"`
	File      string   `json:"file"`
	Approvals []string `json:"approvals"`
}

// Result is the outcome of a submission that was admitted and ran.
type Result struct {
	PlanHash   string                    `json:"plan_hash"`
	Value      string                    `json:"value,omitempty"`
	Error      *control.ErrorInfo        `json:"error,omitempty"`
	Output     string                    `json:"output"`
	Steps      []orchestrator.StepRecord `json:"steps"`
	Provider   string                    `json:"provider"`
	Checkpoint string                    `json:"checkpoint,omitempty"`
	// Replayed is true when the first guest crashed and the plan ran
	// again in a fresh one.
	Replayed bool `json:"replayed"`
	// CacheHit is true when the admission came from the cache.
	CacheHit bool `json:"admission_cache_hit"`
}

// AdmissionError is a plan that was not admitted (or does not read).
type AdmissionError struct{ Err error }

func (e *AdmissionError) Error() string { return "not admitted: " + e.Err.Error() }
func (e *AdmissionError) Unwrap() error { return e.Err }

// ErrStopped is returned for submissions after Stop.
var ErrStopped = errors.New("supervisor: stopped")

// admit reads and admits a submission, through the cache: the same plan
// text with the same approvals under the same config is admitted once.
func (s *Supervisor) admit(sub Submission) (*admitted, bool, error) {
	h := sha256.New()
	fmt.Fprintf(h, "%d:%s\x00%s\x00", len(sub.Plan), sub.Plan, sub.File)
	for _, a := range sub.Approvals {
		fmt.Fprintf(h, "%d:%s\x00", len(a), a)
	}
	key := hex.EncodeToString(h.Sum(nil))
	s.mu.Lock()
	if a, ok := s.cache[key]; ok {
		s.mu.Unlock()
		s.m.cache.WithLabelValues("hit").Inc()
		return a, true, nil
	}
	s.mu.Unlock()
	s.m.cache.WithLabelValues("miss").Inc()
	file := sub.File
	if file == "" {
		file = "<submitted plan>"
	}
	p, err := plan.Read([]byte(sub.Plan), file)
	if err != nil {
		return nil, false, &AdmissionError{err}
	}
	var approvals []governance.Approval
	for i, text := range sub.Approvals {
		a, err := governance.ParseApproval(text)
		if err != nil {
			return nil, false, &AdmissionError{fmt.Errorf("approval %d: %w", i+1, err)}
		}
		approvals = append(approvals, a)
	}
	adm, err := governance.AdmitIn(s.rc, p, s.o.Config, s.o.Caps, approvals)
	if err != nil {
		if s.o.Recorder != nil {
			s.o.Recorder.Append(context.Background(), chain.Event{Type: chain.TypePlanRejected, Origin: chain.OriginHost,
				Plan: governance.PlanHash(p), Payload: (&chain.PlanRejected{Error: err.Error()}).Encode()})
		}
		return nil, false, &AdmissionError{err}
	}
	a := &admitted{p: p, adm: adm}
	s.mu.Lock()
	if _, ok := s.cache[key]; !ok {
		s.cache[key] = a
		s.order = append(s.order, key)
		if len(s.order) > s.o.AdmissionCacheSize {
			delete(s.cache, s.order[0])
			s.order = s.order[1:]
		}
	}
	s.mu.Unlock()
	return a, false, nil
}

// Submit admits a plan and runs it in a fresh guest.
func (s *Supervisor) Submit(ctx context.Context, sub Submission) (*Result, error) {
	s.mu.Lock()
	stopped := s.stopped
	s.mu.Unlock()
	if stopped {
		return nil, ErrStopped
	}
	a, hit, err := s.admit(sub)
	if err != nil {
		s.m.runs.WithLabelValues("rejected").Inc()
		return nil, err
	}
	s.runMu.Lock()
	defer s.runMu.Unlock()
	start := time.Now()
	rep, err := s.runOnce(ctx, a)
	replayed := false
	if err != nil && crashed(err) {
		s.noteCrash(ctx, a, err)
		if s.o.Replay {
			replayed = true
			s.mu.Lock()
			s.replays++
			s.mu.Unlock()
			s.m.replays.Inc()
			s.recordLifecycle(ctx, a, "replay", err.Error())
			rep, err = s.runOnce(ctx, a)
			if err != nil && crashed(err) {
				s.noteCrash(ctx, a, err)
			}
		}
	}
	s.m.duration.Observe(time.Since(start).Seconds())
	s.mu.Lock()
	s.runs++
	s.lastPlan = a.adm.PlanHash
	s.mu.Unlock()
	if err != nil {
		s.m.runs.WithLabelValues("failed").Inc()
		s.log.Warn("plan failed", "plan", a.p.Name, "hash", a.adm.PlanHash, "error", err)
		return nil, err
	}
	outcome := "ok"
	if rep.Error != nil {
		outcome = "plan-error"
	}
	s.m.runs.WithLabelValues(outcome).Inc()
	s.log.Info("plan ran", "plan", a.p.Name, "hash", a.adm.PlanHash, "outcome", outcome, "replayed", replayed,
		"duration", time.Since(start))
	res := &Result{PlanHash: a.adm.PlanHash, Error: rep.Error, Output: rep.Output, Steps: rep.Steps,
		Provider: rep.Provider, Checkpoint: string(rep.Checkpoint), Replayed: replayed, CacheHit: hit}
	if rep.Value != nil {
		res.Value = rtfs.Print(rep.Value)
	}
	return res, nil
}

func (s *Supervisor) runOnce(ctx context.Context, a *admitted) (*orchestrator.Report, error) {
	return orchestrator.Run(ctx, orchestrator.Request{Plan: a.p, Admission: a.adm, Provider: s.o.Provider,
		Spec: s.o.Spec, Caps: s.o.Caps, Recorder: s.o.Recorder})
}

// crashed tells a guest failure (crash, protocol break, limit) from a
// refusal by the host before anything ran.
func crashed(err error) bool {
	var ee *sandbox.ExitError
	return errors.Is(err, orchestrator.ErrGuest) || errors.Is(err, orchestrator.ErrStepTimeout) || errors.As(err, &ee)
}

func (s *Supervisor) noteCrash(ctx context.Context, a *admitted, err error) {
	s.mu.Lock()
	s.crashes++
	s.mu.Unlock()
	s.m.crashes.Inc()
	s.log.Warn("guest crashed; its VM is gone and the next guest boots from the clean image", "plan", a.adm.PlanHash, "error", err)
	s.recordLifecycle(ctx, a, "crashed", err.Error())
}

func (s *Supervisor) recordLifecycle(ctx context.Context, a *admitted, event, detail string) {
	if s.o.Recorder == nil {
		return
	}
	s.o.Recorder.Append(ctx, chain.Event{Type: chain.TypeSandboxLifecycle, Origin: chain.OriginHost, Plan: a.adm.PlanHash,
		Payload: (&chain.SandboxLifecycle{Event: event, Detail: detail}).Encode()})
}

// Health is the supervisor's state.
type Health struct {
	Status   string `json:"status"` // "ok", "degraded" or "stopped"
	Provider string `json:"provider"`
	// Ready is how many guests are booted and waiting (pools only).
	Ready int `json:"ready"`
	// LastBootError is the pool's last failure to boot a guest.
	LastBootError string  `json:"last_boot_error,omitempty"`
	Runs          int     `json:"runs"`
	Crashes       int     `json:"crashes"`
	Replays       int     `json:"replays"`
	LastPlan      string  `json:"last_plan,omitempty"`
	ChainSize     uint64  `json:"chain_size"`
	UptimeSeconds float64 `json:"uptime_s"`
}

// Health reports readiness: "degraded" when the provider is unavailable or
// the pool failed to boot its last guest.
func (s *Supervisor) Health() Health {
	s.mu.Lock()
	h := Health{Status: "ok", Provider: s.o.Provider.Name(), Runs: s.runs, Crashes: s.crashes, Replays: s.replays,
		LastPlan: s.lastPlan, UptimeSeconds: time.Since(s.started).Seconds()}
	stopped := s.stopped
	s.mu.Unlock()
	if ok, why := s.o.Provider.Available(); !ok {
		h.Status, h.LastBootError = "degraded", why
	}
	if pl, ok := s.o.Provider.(*sandbox.Pool); ok {
		st := pl.Stats()
		h.Ready = st.Ready
		if st.LastFillError != nil {
			h.Status, h.LastBootError = "degraded", st.LastFillError.Error()
		}
	}
	if s.o.Recorder != nil {
		h.ChainSize = s.o.Recorder.Size()
	}
	if stopped {
		h.Status = "stopped"
	}
	return h
}

// Stop refuses new submissions, waits for the running plan and closes the
// pool, if the provider is one.
func (s *Supervisor) Stop() {
	s.mu.Lock()
	s.stopped = true
	s.mu.Unlock()
	s.runMu.Lock()
	defer s.runMu.Unlock()
	if pl, ok := s.o.Provider.(*sandbox.Pool); ok {
		pl.Close()
	}
}
