// Package supervisor is the long-lived host service of a ccos deployment:
// it serves many agents and their concurrent runs through the run engine,
// keeps every accepted run durable (a SQLite run store) before it
// acknowledges it, resumes the runs a crash or SIGKILL interrupted without
// repeating a host side effect, and serves an HTTP API (a Unix socket, and
// HTTPS with client certificates naming agents) with live events.
//
// Lifecycle of a run: POST /v1/agents/{agent}/runs admits the plan (a
// refusal is answered at once with every reason), records the run as
// queued and answers with its id. A worker of the run's provider lane
// takes it (runs execute in parallel up to the lane's limit; a full queue
// answers 429 with Retry-After), marks it running and runs it through the
// engine with a call record journalled in the store. It ends succeeded,
// failed, in_doubt (a side-effecting call was started by an earlier
// attempt and never finished: it was not repeated, and the run says so) or
// cancelled.
//
// After a crash the supervisor finds the runs that were queued (queued
// again) and running (run again from the start with their journal: calls
// already done are answered from it, calls started and unfinished are in
// doubt, never re-sent). A guest crash during a run is replayed once in a
// fresh guest with the same journal when the agent's config says
// :orchestrator :replay_on_crash (or Options.Replay).
package supervisor

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"sort"
	"sync"
	"time"

	"github.com/ccos-project/ccos/config"
	"github.com/ccos-project/ccos/control"
	"github.com/ccos-project/ccos/engine"
	"github.com/ccos-project/ccos/orchestrator"
	"github.com/ccos-project/ccos/sandbox"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/mod/sumdb/note"
)

// Options configure a Supervisor.
type Options struct {
	// Engine runs the plans; its agents are the supervisor's agents.
	Engine *engine.Engine
	// Store keeps the runs; required.
	Store *Store
	// Limits bounds the runs executing at once per provider name;
	// DefaultLimits for providers not named.
	Limits map[string]int
	// QueueSize bounds the runs waiting per provider (256 when 0).
	QueueSize int
	// Replay replays a run once in a fresh guest after its guest crashed,
	// whatever the agents' configs say.
	Replay bool
	// Registerer receives the metrics; nil registers none.
	Registerer prometheus.Registerer
	// Logger logs one line per run; slog.Default() when nil.
	Logger *slog.Logger
	// ChainVerifier checks the signatures of the checkpoints in the
	// agents' chains when the console verifies them or proves an event;
	// nil: their sizes and roots are checked, not their signatures.
	ChainVerifier note.Verifier
}

// DefaultLimits are the concurrent runs per provider on this host: sized
// from its CPUs and memory (a microVM needs about 256 MiB and a core under
// TCG; processes and wasm instances are cheap).
func DefaultLimits() map[string]int {
	cpus := runtime.NumCPU()
	vms := max(1, min(cpus, int(totalMemory()/(512<<20))))
	return map[string]int{
		"process": 4 * cpus, "wasm": 4 * cpus, "mock": 4 * cpus,
		"gvisor": 2 * cpus, "qemu": vms, "firecracker": vms,
	}
}

// Supervisor runs the submitted plans of its engine's agents. It is safe
// for concurrent use.
type Supervisor struct {
	o   Options
	log *slog.Logger
	m   *metrics

	base   context.Context
	stop   context.CancelFunc
	wg     sync.WaitGroup
	start  time.Time
	limits map[string]int

	mu       sync.Mutex
	lanes    map[string]*lane
	running  map[string]context.CancelCauseFunc
	hubs     map[string]*hub
	draining bool

	console consoleState
}

// The errors a submission can meet besides the plan's own.
var (
	// ErrStopped: the supervisor is draining or stopped.
	ErrStopped = errors.New("supervisor: not accepting runs (draining or stopped)")
	// ErrUnknownAgent: no agent of that id is loaded.
	ErrUnknownAgent = errors.New("supervisor: no such agent")
	// ErrQueueFull: the provider's queue is full; retry later.
	ErrQueueFull = errors.New("supervisor: the queue is full")
	// ErrFinal: the run is over (it cannot be cancelled).
	ErrFinal = errors.New("supervisor: the run is over")
)

// errCancelled is the cause of a run's context when it is cancelled.
var errCancelled = errors.New("cancelled")

// New returns a supervisor and resumes the runs its store holds that were
// queued or running when the last supervisor ended.
func New(o Options) (*Supervisor, error) {
	if o.Engine == nil || o.Store == nil {
		return nil, errors.New("supervisor: an engine and a store are required")
	}
	if o.QueueSize <= 0 {
		o.QueueSize = 256
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	m, err := newMetrics(o.Registerer)
	if err != nil {
		return nil, err
	}
	limits := DefaultLimits()
	for k, v := range o.Limits {
		limits[k] = v
	}
	s := &Supervisor{o: o, log: o.Logger, m: m, start: time.Now(), limits: limits,
		lanes: map[string]*lane{}, running: map[string]context.CancelCauseFunc{}, hubs: map[string]*hub{}}
	s.base, s.stop = context.WithCancel(context.Background())
	if err := s.resume(); err != nil {
		s.stop()
		return nil, err
	}
	return s, nil
}

// resume queues again the runs that were live when the last supervisor
// ended.
func (s *Supervisor) resume() error {
	live, err := s.o.Store.live(context.Background())
	if err != nil {
		return fmt.Errorf("supervisor: reading the live runs: %w", err)
	}
	for _, r := range live {
		a, ok := s.o.Engine.Agent(r.Agent)
		if !ok {
			s.log.Warn("a run of an agent that is not loaded stays queued", "run", r.ID, "agent", r.Agent)
			continue
		}
		if r.Status == StatusRunning {
			s.log.Info("resuming a run that was in flight; its journalled calls are not repeated", "run", r.ID, "agent", r.Agent)
			if err := s.o.Store.requeue(r.ID); err != nil {
				return err
			}
			s.m.resumed.Inc()
		}
		ln, err := s.lane(a, config.IsolationMode(r.Outcome.Isolation))
		if err != nil {
			s.finish(r.ID, r.Agent, StatusFailed, Outcome{Failure: err.Error()})
			continue
		}
		ln.push(r.ID, true)
		s.m.queued.Inc()
	}
	return nil
}

// Submission is a plan submitted to an agent.
type Submission struct {
	Plan      string   `json:"plan"`
	File      string   `json:"file,omitempty"`
	Approvals []string `json:"approvals,omitempty"`
	// Isolation asks for at least this isolation mode (wasm, container,
	// microvm); the config's when empty.
	Isolation string `json:"isolation,omitempty"`
}

// Run is a run as the API shows it.
type Run struct {
	ID        string     `json:"run_id"`
	Agent     string     `json:"agent"`
	Status    Status     `json:"status"`
	File      string     `json:"file,omitempty"`
	Plan      string     `json:"plan,omitempty"`
	PlanHash  string     `json:"plan_hash,omitempty"`
	Provider  string     `json:"provider,omitempty"`
	Submitted time.Time  `json:"submitted"`
	Started   *time.Time `json:"started,omitempty"`
	Finished  *time.Time `json:"finished,omitempty"`
	// Attempts counts the times the run was started (more than one when
	// a supervisor crash interrupted it).
	Attempts int `json:"attempts"`
	Outcome
	// Source is the plan's text (GET of one run only).
	Source string `json:"source,omitempty"`
}

// Outcome is what a run produced.
type Outcome struct {
	// Value is the plan's value, canonical RTFS.
	Value *string `json:"value,omitempty"`
	// Error is the plan's error.
	Error *control.ErrorInfo `json:"error,omitempty"`
	// Failure is why the run failed outside the plan (the sandbox, the
	// session, a limit, a cancellation).
	Failure         string                    `json:"failure,omitempty"`
	Output          string                    `json:"output,omitempty"`
	OutputTruncated bool                      `json:"output_truncated,omitempty"`
	Steps           []orchestrator.StepRecord `json:"steps,omitempty"`
	Checkpoint      string                    `json:"checkpoint,omitempty"`
	InDoubt         []string                  `json:"in_doubt,omitempty"`
	Timings         *engine.Timings           `json:"timings_ms,omitempty"`
	// Isolation is the isolation mode the submission asked for.
	Isolation string `json:"isolation,omitempty"`
}

// Submit admits a plan for an agent and queues it; the run is durable
// when Submit returns. A refused plan is an *engine.AdmissionError with
// every reason.
func (s *Supervisor) Submit(ctx context.Context, agent string, sub Submission) (*Run, error) {
	s.mu.Lock()
	draining := s.draining
	s.mu.Unlock()
	if draining {
		return nil, ErrStopped
	}
	a, ok := s.o.Engine.Agent(agent)
	if !ok {
		return nil, fmt.Errorf("%w: %s", ErrUnknownAgent, agent)
	}
	in := engine.PlanInput{Source: []byte(sub.Plan), File: sub.File, Approvals: sub.Approvals, Isolation: config.IsolationMode(sub.Isolation)}
	if in.File == "" {
		in.File = "<submitted plan>"
	}
	id := engine.NewRunID()
	ad, err := a.Admit(in)
	if err != nil {
		s.m.runs.WithLabelValues(agent, "rejected").Inc()
		a.RecordRejected(ctx, id, in, err)
		return nil, err
	}
	if ad.CacheHit {
		s.m.cache.WithLabelValues("hit").Inc()
	} else {
		s.m.cache.WithLabelValues("miss").Inc()
	}
	ln, err := s.lane(a, ad.Context.Isolation)
	if err != nil {
		return nil, err
	}
	if !ln.reserve() {
		s.m.runs.WithLabelValues(agent, "queue-full").Inc()
		return nil, fmt.Errorf("%w: %d runs wait for provider %s", ErrQueueFull, s.o.QueueSize, ln.name)
	}
	rec := &record{Run: Run{ID: id, Agent: agent, Status: StatusQueued, File: in.File, Plan: ad.Plan.Name, PlanHash: ad.Admission.PlanHash,
		Provider: ln.name, Submitted: time.Now().UTC(), Outcome: Outcome{Isolation: sub.Isolation}}, Source: sub.Plan, Approvals: sub.Approvals}
	if err := s.o.Store.insert(rec); err != nil {
		ln.unreserve()
		return nil, fmt.Errorf("supervisor: recording the run: %w", err)
	}
	ln.push(id, false)
	s.m.queued.Inc()
	r := rec.Run
	return &r, nil
}

// Get returns a run, with its plan's source.
func (s *Supervisor) Get(ctx context.Context, id string) (*Run, error) {
	rec, err := s.o.Store.get(ctx, id)
	if err != nil {
		return nil, err
	}
	r := rec.Run
	r.Source = rec.Source
	return &r, nil
}

// List returns a page of runs, newest first, and the next page's cursor.
func (s *Supervisor) List(ctx context.Context, f Filter) ([]*Run, string, error) {
	return s.o.Store.list(ctx, f)
}

// Cancel cancels a queued or running run.
func (s *Supervisor) Cancel(ctx context.Context, id string) (*Run, error) {
	rec, err := s.o.Store.get(ctx, id)
	if err != nil {
		return nil, err
	}
	if rec.Status.Final() {
		return nil, fmt.Errorf("%w: run %s is %s", ErrFinal, id, rec.Status)
	}
	s.mu.Lock()
	cancel, running := s.running[id]
	s.mu.Unlock()
	if running {
		cancel(errCancelled)
	} else {
		removed := false
		s.mu.Lock()
		for _, ln := range s.lanes {
			removed = removed || ln.remove(id)
		}
		s.mu.Unlock()
		if removed {
			s.finish(id, rec.Agent, StatusCancelled, Outcome{Failure: "cancelled before it started"})
		} else {
			// A worker took it meanwhile: cancel it there.
			s.mu.Lock()
			cancel, running = s.running[id]
			s.mu.Unlock()
			if running {
				cancel(errCancelled)
			}
		}
	}
	return s.Get(ctx, id)
}

// lane returns the provider lane of an agent's runs under mode.
func (s *Supervisor) lane(a *engine.Agent, mode config.IsolationMode) (*lane, error) {
	prov, err := a.Provider(mode)
	if err != nil {
		return nil, err
	}
	name := prov.Name()
	s.mu.Lock()
	defer s.mu.Unlock()
	if ln, ok := s.lanes[name]; ok {
		return ln, nil
	}
	n := s.limits[name]
	if n <= 0 {
		n = 1
	}
	ln := newLane(name, s.o.QueueSize)
	s.lanes[name] = ln
	for i := 0; i < n; i++ {
		s.wg.Add(1)
		go s.worker(ln)
	}
	return ln, nil
}

func (s *Supervisor) worker(ln *lane) {
	defer s.wg.Done()
	for {
		id, ok := ln.pop()
		if !ok {
			return
		}
		s.execute(id)
	}
}

// execute runs one run to its end.
func (s *Supervisor) execute(id string) {
	rec, err := s.o.Store.get(s.base, id)
	if err != nil {
		s.log.Error("a queued run cannot be read", "run", id, "error", err)
		return
	}
	if rec.Status.Final() {
		return // cancelled while queued
	}
	s.m.queued.Dec()
	a, ok := s.o.Engine.Agent(rec.Agent)
	if !ok {
		s.finish(id, rec.Agent, StatusFailed, Outcome{Failure: "agent " + rec.Agent + " is not loaded"})
		return
	}
	ctx, cancel := context.WithCancelCause(s.base)
	defer cancel(nil)
	h := newHub(id)
	s.mu.Lock()
	s.running[id] = cancel
	s.hubs[id] = h
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.running, id)
		delete(s.hubs, id)
		s.mu.Unlock()
	}()
	start := time.Now()
	s.m.running.Inc()
	defer s.m.running.Dec()
	if err := s.o.Store.started(id, rec.Provider, start.UTC()); err != nil {
		s.log.Error("recording a run's start", "run", id, "error", err)
		h.close()
		return
	}
	calls, err := orchestrator.NewCallRecordWith(s.o.Store.Journal(id))
	if err != nil {
		h.close()
		s.finish(id, rec.Agent, StatusFailed, Outcome{Failure: err.Error()})
		return
	}
	sink := newEventSink(s.o.Store, h, id, s.log)
	restarts := 0
	if s.o.Replay || a.Config().Config.Orchestrator.ReplayOnCrash {
		restarts = 1
	}
	res, runErr := a.Run(ctx, engine.RunRequest{ID: id, Restarts: restarts, Calls: calls, OnEvent: sink.add,
		PlanInput: engine.PlanInput{Source: []byte(rec.Source), File: rec.File, Approvals: rec.Approvals, Isolation: config.IsolationMode(rec.Outcome.Isolation)}})
	sink.close()
	// The hub closes after the final state is stored: a subscriber that
	// sees the end reads the final status.
	defer h.close()
	if s.base.Err() != nil && !errors.Is(context.Cause(ctx), errCancelled) {
		// The supervisor stopped it (a drain that ran out of time): the
		// run stays running in the store, and the next supervisor resumes
		// it with its journal.
		s.log.Warn("run interrupted by the supervisor's stop; the next start resumes it", "run", id, "agent", rec.Agent)
		return
	}
	out := Outcome{Isolation: rec.Outcome.Isolation}
	if res != nil {
		t := res.Timings
		out.Value, out.Error, out.Output, out.OutputTruncated, out.Steps, out.Checkpoint, out.InDoubt, out.Timings =
			res.Value, res.Error, res.Output, res.OutputTruncated, res.Steps, res.Checkpoint, res.InDoubt, &t
	}
	status := StatusSucceeded
	switch {
	case errors.Is(context.Cause(ctx), errCancelled):
		status, out.Failure = StatusCancelled, "cancelled while running"
	case runErr != nil:
		status, out.Failure = StatusFailed, runErr.Error()
	case len(out.InDoubt) > 0:
		status = StatusInDoubt
	case out.Error != nil || out.Value == nil:
		status = StatusFailed
	}
	if runErr != nil && res != nil && len(res.InDoubt) > 0 {
		status = StatusInDoubt
	}
	s.m.duration.Observe(time.Since(start).Seconds())
	var receipt []byte
	if res != nil {
		receipt = res.Receipt
	}
	s.finishWith(id, rec.Agent, status, out, receipt)
	s.log.Info("run ended", "run", id, "agent", rec.Agent, "plan", rec.Plan, "status", status, "duration", time.Since(start))
}

// finish records a run's end.
func (s *Supervisor) finish(id, agent string, st Status, out Outcome) {
	s.finishWith(id, agent, st, out, nil)
}

// finishWith records a run's end with its receipt.
func (s *Supervisor) finishWith(id, agent string, st Status, out Outcome, receipt []byte) {
	if err := s.o.Store.finish(id, st, out, receipt, time.Now().UTC()); err != nil {
		s.log.Error("recording a run's end", "run", id, "error", err)
	}
	s.m.runs.WithLabelValues(agent, string(st)).Inc()
}

// Drain stops accepting runs, waits (until ctx ends) for the running ones
// and stops the workers; queued runs stay queued in the store for the
// next supervisor. Runs still running when ctx ends are cancelled and
// left running in the store, to be resumed.
func (s *Supervisor) Drain(ctx context.Context) {
	s.mu.Lock()
	s.draining = true
	lanes := make([]*lane, 0, len(s.lanes))
	for _, ln := range s.lanes {
		lanes = append(lanes, ln)
	}
	s.mu.Unlock()
	for _, ln := range lanes {
		ln.closeQueue()
	}
	done := make(chan struct{})
	go func() { s.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
		s.stop()
		<-done
	}
	s.stop()
}

// Health is the supervisor's state.
type Health struct {
	// Status is "ok", "degraded" (an agent's provider is unavailable, or
	// its pool cannot start sandboxes) or "draining".
	Status        string         `json:"status"`
	Agents        []AgentHealth  `json:"agents"`
	Queued        int            `json:"queued"`
	Running       int            `json:"running"`
	Runs          map[Status]int `json:"runs"`
	UptimeSeconds float64        `json:"uptime_s"`
}

// AgentHealth is one agent's state.
type AgentHealth struct {
	Agent    string `json:"agent"`
	Provider string `json:"provider"`
	// Ready and PoolSize are the pool's waiting sandboxes and its size.
	Ready     int    `json:"ready"`
	PoolSize  int    `json:"pool_size"`
	PoolDied  int    `json:"pool_died"`
	Problem   string `json:"problem,omitempty"`
	ChainSize uint64 `json:"chain_size"`
}

// Health reports readiness truthfully: an agent whose provider is not
// available, or whose pool's last start failed and holds nothing ready,
// makes the supervisor degraded.
func (s *Supervisor) Health(ctx context.Context) Health {
	h := Health{Status: "ok", UptimeSeconds: time.Since(s.start).Seconds()}
	agents := s.o.Engine.Agents()
	sort.Slice(agents, func(i, j int) bool { return agents[i].ID() < agents[j].ID() })
	for _, a := range agents {
		ah := AgentHealth{Agent: a.ID()}
		prov, err := a.Provider("")
		if err != nil {
			ah.Problem = err.Error()
		} else {
			ah.Provider = prov.Name()
			if ok, why := prov.Available(); !ok {
				ah.Problem = why
			}
			if pl, ok := prov.(*sandbox.Pool); ok {
				st := pl.Stats()
				ah.Ready, ah.PoolSize, ah.PoolDied = st.Ready, st.Size, st.Died
				if st.LastFillError != nil && st.Ready == 0 {
					ah.Problem = "the pool cannot start sandboxes: " + st.LastFillError.Error()
				}
			}
		}
		if rec, err := a.Recorder(); err == nil {
			ah.ChainSize = rec.Size()
		}
		if ah.Problem != "" {
			h.Status = "degraded"
		}
		h.Agents = append(h.Agents, ah)
	}
	s.mu.Lock()
	for _, ln := range s.lanes {
		h.Queued += ln.len()
	}
	h.Running = len(s.running)
	if s.draining {
		h.Status = "draining"
	}
	s.mu.Unlock()
	h.Runs, _ = s.o.Store.counts(ctx, "")
	return h
}

// Receipt returns a run's signed receipt (a DSSE envelope holding an
// in-toto statement, see package receipt); nil when the run has none (it
// is not over, or its agent's chain has no signing key).
func (s *Supervisor) Receipt(ctx context.Context, id string) ([]byte, error) {
	return s.o.Store.receipt(ctx, id)
}

// Engine is the supervisor's engine.
func (s *Supervisor) Engine() *engine.Engine { return s.o.Engine }
