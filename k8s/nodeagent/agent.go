// Package nodeagent is the ccos node agent: the process on each Kubernetes
// node (a DaemonSet in production, `ccos supervisor --kube`) that runs
// AgentRuns with that node's sandbox providers. Kubernetes is the
// distributed engine; there is no scheduler of ccos's own:
//
//   - The agent keeps a coordination.k8s.io Lease (LeaseName) renewed every
//     third of its duration, and advertises on it what it can run: the
//     isolation modes and the provider giving each, the available
//     providers, its capacity and how many runs it holds.
//   - It watches AgentRuns and claims a pending one it can run by writing
//     status.phase Running, status.node and status.attempt+1 in one update
//     of the status subresource carrying the resourceVersion it read: of
//     several nodes racing for a run, exactly one update succeeds. It never
//     claims a run whose isolation (the AgentRun's spec.isolation or its
//     config's mode, whichever is stronger) it has no provider for; a
//     node that can give only process isolation never claims a :microvm
//     run. A node holding runs waits a little per run before claiming, so
//     idle nodes claim first.
//   - A run whose node's Lease expired (as observed here: see leaseWatch)
//     is reclaimed the same way, with the next attempt number. Every status
//     write of a claim is fenced: it succeeds only while status.node and
//     status.attempt are still the claim's, so a node that lost a run (it
//     was partitioned and another node reclaimed it) writes, and therefore
//     starts, nothing more.
//   - Side-effecting host calls go through the run's call journal
//     (status.calls, see journal): an entry is written before the call runs
//     and completed with its outcome. A reclaimed run answers done calls
//     from the journal; a call started and never finished is in doubt,
//     never repeated, and the run ends InDoubt.
//   - The run's causal chain stays on the node; the signed checkpoint taken
//     at its end is copied to status.checkpoint, and the Lease names the
//     key it verifies with.
//   - A node that cannot renew its Lease for two thirds of its duration
//     stops its runs before another node may take them over.
package nodeagent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/ccos-project/ccos/config"
	"github.com/ccos-project/ccos/engine"
	"github.com/ccos-project/ccos/k8s/api/v1alpha1"
	"github.com/go-logr/logr"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	k8sruntime "k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	crconfig "sigs.k8s.io/controller-runtime/pkg/config"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	"sigs.k8s.io/controller-runtime/pkg/recorder"
	"sigs.k8s.io/controller-runtime/pkg/source"
)

// Condition types and reasons written to AgentRuns.
const (
	ConditionClaimed  = "Claimed"
	ConditionFinished = "Finished"

	ReasonClaimed   = "Claimed"
	ReasonReclaimed = "Reclaimed"
	ReasonResumed   = "Resumed"
)

// ErrLostClaim is returned when a write finds the run no longer this
// claim's: another node reclaimed it, or it was deleted.
var ErrLostClaim = errors.New("the run is no longer held by this node")

// Options configure an Agent.
type Options struct {
	// Node is this node's name (required); it names the Lease and is
	// written to status.node.
	Node string
	// Namespace limits the AgentRuns and AgentConfigs watched; "" watches
	// all namespaces.
	Namespace string
	// LeaseNamespace holds the node agents' Leases (required).
	LeaseNamespace string
	// LeaseDuration is how long the Lease lasts unrenewed (15 s when 0).
	LeaseDuration time.Duration
	// Capacity is how many runs this node holds at once
	// (runtime.NumCPU() when 0).
	Capacity int
	// SpreadDelay is how long a node waits per run it holds before
	// claiming a pending run (20 ms when 0; negative: no wait).
	SpreadDelay time.Duration
	// DrainTimeout is how long Run waits, once its context is done, for
	// the runs it holds to finish before stopping them (no wait when 0).
	DrainTimeout time.Duration
	// Runner runs the plans (required).
	Runner Runner
	// ChainVerifier is the note verifier key of the checkpoints this node
	// signs; advertised on the Lease.
	ChainVerifier string
	// Logger logs the agent's decisions (slog.Default() when nil).
	Logger *slog.Logger
}

// Agent is a node agent.
type Agent struct {
	o      Options
	offers Offers
	log    *slog.Logger

	mgr    manager.Manager
	c      client.Client // cached reads, direct writes
	api    client.Reader // reads from the API server
	events recorder.EventRecorder
	keeper *leaseKeeper
	leases *leaseWatch
	wake   chan event.GenericEvent
	ready  chan struct{} // closed once the agent watches and claims

	runCtx    context.Context // parent of every run; cancelled to stop them
	stopRuns  context.CancelFunc
	runsGroup sync.WaitGroup

	mu        sync.Mutex
	held      map[types.UID]*held
	reserved  int                     // slots taken by claims in flight
	firstSeen map[types.UID]time.Time // pending runs, for the spread delay
	draining  bool
	fenced    bool // the Lease could not be renewed in time
}

// held is a run this node claimed.
type held struct {
	key     types.NamespacedName
	uid     types.UID
	attempt int32
	reason  string
	cancel  context.CancelFunc

	mu   sync.Mutex // serialises writes of this claim
	run  *v1alpha1.AgentRun
	lost bool
}

func (h *held) current() *v1alpha1.AgentRun {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.run.DeepCopy()
}

func (h *held) isLost() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.lost
}

// Scheme returns a scheme with the types a node agent uses.
func Scheme() (*k8sruntime.Scheme, error) {
	s := k8sruntime.NewScheme()
	if err := clientgoscheme.AddToScheme(s); err != nil {
		return nil, err
	}
	if err := v1alpha1.AddToScheme(s); err != nil {
		return nil, err
	}
	return s, nil
}

// New returns a node agent talking to the API server at cfg.
func New(cfg *rest.Config, o Options) (*Agent, error) {
	if o.Node == "" || o.LeaseNamespace == "" || o.Runner == nil {
		return nil, errors.New("nodeagent: a node name, a lease namespace and a runner are required")
	}
	if o.LeaseDuration <= 0 {
		o.LeaseDuration = 15 * time.Second
	}
	if o.Capacity <= 0 {
		o.Capacity = runtime.NumCPU()
	}
	if o.SpreadDelay == 0 {
		o.SpreadDelay = 20 * time.Millisecond
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	scheme, err := Scheme()
	if err != nil {
		return nil, err
	}
	cfg = clientRate(cfg)
	copts := cache.Options{ByObject: map[client.Object]cache.ByObject{
		&coordinationv1.Lease{}: {Namespaces: map[string]cache.Config{o.LeaseNamespace: {}}},
	}}
	if o.Namespace != "" {
		copts.DefaultNamespaces = map[string]cache.Config{o.Namespace: {}}
	}
	mgr, err := ctrl.NewManager(cfg, manager.Options{
		Scheme:                 scheme,
		Logger:                 logr.FromSlogHandler(o.Logger.Handler()),
		Cache:                  copts,
		Metrics:                metricsserver.Options{BindAddress: "0"},
		HealthProbeBindAddress: "0",
		// Several agents may live in one process (tests, benchmarks).
		Controller: crconfig.Controller{SkipNameValidation: ptr(true)},
	})
	if err != nil {
		return nil, fmt.Errorf("nodeagent: %w", err)
	}
	// The Lease is written before the cache starts, and read back from the
	// API server, never from the cache.
	direct, err := client.New(cfg, client.Options{Scheme: scheme})
	if err != nil {
		return nil, fmt.Errorf("nodeagent: %w", err)
	}
	a := &Agent{o: o, offers: o.Runner.Offers(), log: o.Logger.With("node", o.Node), mgr: mgr, c: mgr.GetClient(),
		api: mgr.GetAPIReader(), events: mgr.GetEventRecorder("ccos-node/" + o.Node),
		held: map[types.UID]*held{}, firstSeen: map[types.UID]time.Time{}, wake: make(chan event.GenericEvent, 1024),
		ready: make(chan struct{})}
	a.keeper = &leaseKeeper{c: direct, key: types.NamespacedName{Namespace: o.LeaseNamespace, Name: LeaseName(o.Node)},
		node: o.Node, duration: o.LeaseDuration}
	a.leases = newLeaseWatch(mgr.GetCache(), o.LeaseNamespace, o.LeaseDuration)
	if err := mgr.GetFieldIndexer().IndexField(context.Background(), &v1alpha1.AgentRun{}, indexNode, func(o client.Object) []string {
		return []string{o.(*v1alpha1.AgentRun).Status.Node}
	}); err != nil {
		return nil, fmt.Errorf("nodeagent: %w", err)
	}
	if err := mgr.GetFieldIndexer().IndexField(context.Background(), &v1alpha1.AgentRun{}, indexPhase, func(o client.Object) []string {
		if p := o.(*v1alpha1.AgentRun).Status.Phase; p != "" {
			return []string{string(p)}
		}
		return []string{string(v1alpha1.PhasePending)}
	}); err != nil {
		return nil, fmt.Errorf("nodeagent: %w", err)
	}
	err = builder.ControllerManagedBy(mgr).
		Named("agentrun-claims").
		For(&v1alpha1.AgentRun{}, builder.WithPredicates(predicate.NewPredicateFuncs(func(o client.Object) bool {
			return !o.(*v1alpha1.AgentRun).Status.Phase.Final()
		}))).
		Watches(&coordinationv1.Lease{}, handler.EnqueueRequestsFromMapFunc(a.leaseChanged),
			builder.WithPredicates(predicate.NewPredicateFuncs(func(o client.Object) bool {
				return o.GetNamespace() == a.o.LeaseNamespace && strings.HasPrefix(o.GetName(), LeasePrefix)
			}))).
		WatchesRawSource(source.Channel(a.wake, &handler.EnqueueRequestForObject{})).
		WithOptions(controller.Options{MaxConcurrentReconciles: 4}).
		Complete(a)
	if err != nil {
		return nil, fmt.Errorf("nodeagent: %w", err)
	}
	return a, nil
}

// Cache indexes of AgentRuns: by status.node, and by phase (Pending for a
// run without one), so that finding the runs to look at again does not
// walk the finished ones.
const (
	indexNode  = "status.node"
	indexPhase = "status.phase"
)

// Client-side rate limits of a node agent's API requests when the config
// sets none: client-go's default (5 requests per second, bursts of 10)
// would make every claim and status write wait for a token once a few
// runs are going (a claim, journal entries, the outcome and Events per
// run, Lease renewals); the API server's own priority and fairness
// protects it.
const (
	DefaultQPS   = 100
	DefaultBurst = 200
)

// clientRate returns cfg with DefaultQPS and DefaultBurst when it sets no
// rate limit.
func clientRate(cfg *rest.Config) *rest.Config {
	if cfg.QPS != 0 || cfg.RateLimiter != nil {
		return cfg
	}
	cfg = rest.CopyConfig(cfg)
	cfg.QPS, cfg.Burst = DefaultQPS, DefaultBurst
	return cfg
}

func ptr[T any](v T) *T { return &v }

// Ready is closed once the agent's caches are in sync: it sees every run
// and claims what it can.
func (a *Agent) Ready() <-chan struct{} { return a.ready }

// Offers returns what this node advertises.
func (a *Agent) Offers() Offers { return a.offers }

// Run keeps the Lease and claims and runs AgentRuns until ctx is done;
// then it stops claiming, waits up to DrainTimeout for the runs it holds,
// stops the rest, and deletes its Lease so that other nodes reclaim them
// at once.
func (a *Agent) Run(ctx context.Context) error {
	a.runCtx, a.stopRuns = context.WithCancel(context.Background())
	defer a.stopRuns()
	if err := a.keeper.renew(ctx, a.advert()); err != nil {
		return fmt.Errorf("nodeagent: %w", err)
	}
	a.log.Info("node agent started", "lease", a.keeper.key.String(), "isolation", a.advert().annotations()[AnnotationIsolation],
		"capacity", a.o.Capacity)
	mctx, stopMgr := context.WithCancel(context.Background())
	defer stopMgr()
	mgrDone := make(chan error, 1)
	go func() { mgrDone <- a.mgr.Start(mctx) }()
	go a.keepLease(mctx)
	go func() {
		if a.mgr.GetCache().WaitForCacheSync(mctx) {
			close(a.ready)
		}
	}()

	select {
	case err := <-mgrDone:
		a.stopRuns()
		a.runsGroup.Wait()
		return err
	case <-ctx.Done():
	}
	a.drain()
	stopMgr()
	err := <-mgrDone
	rctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if rerr := a.keeper.release(rctx); rerr != nil {
		a.log.Warn("releasing the Lease", "err", rerr)
	}
	return err
}

// drain stops claiming and waits for the held runs, up to DrainTimeout.
func (a *Agent) drain() {
	a.mu.Lock()
	a.draining = true
	n := len(a.held)
	a.mu.Unlock()
	done := make(chan struct{})
	go func() { a.runsGroup.Wait(); close(done) }()
	if n > 0 {
		a.log.Info("draining", "runs", n, "timeout", a.o.DrainTimeout)
	}
	select {
	case <-done:
	case <-time.After(a.o.DrainTimeout):
		a.log.Warn("drain timeout: stopping the runs still held; other nodes reclaim them")
		a.stopRuns()
		<-done
	}
}

// keepLease renews the Lease every third of its duration, and stops every
// run this node holds when it could not renew for two thirds of it: by
// the time other nodes see the Lease expired, the node has stopped.
func (a *Agent) keepLease(ctx context.Context) {
	tick := time.NewTicker(a.o.LeaseDuration / 3)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		rctx, cancel := context.WithTimeout(ctx, a.o.LeaseDuration/3)
		err := a.keeper.renew(rctx, a.advert())
		cancel()
		if err != nil {
			a.log.Warn("renewing the Lease", "err", err)
		}
		a.mu.Lock()
		late := a.keeper.sinceRenew() > 2*a.o.LeaseDuration/3
		wasFenced := a.fenced
		a.fenced = late
		var stop []*held
		if late {
			for _, h := range a.held {
				stop = append(stop, h)
			}
		}
		a.mu.Unlock()
		for _, h := range stop {
			h.mu.Lock()
			h.lost = true
			h.mu.Unlock()
			h.cancel()
		}
		if late && !wasFenced {
			a.log.Error("the Lease could not be renewed in time: stopping every run held here", "runs", len(stop))
		}
		if !late && wasFenced {
			a.log.Info("the Lease is renewed again")
			a.wakePending()
		}
	}
}

func (a *Agent) advert() advert {
	a.mu.Lock()
	running := len(a.held)
	a.mu.Unlock()
	return advert{offers: a.offers, capacity: a.o.Capacity, running: running, verifier: a.o.ChainVerifier}
}

// leaseChanged notes a Lease as observed now and enqueues the runs its
// node holds: when it is gone they may be reclaimed at once.
func (a *Agent) leaseChanged(ctx context.Context, o client.Object) []reconcile.Request {
	l, ok := o.(*coordinationv1.Lease)
	if !ok {
		return nil
	}
	node, _, _ := a.leases.observe(l)
	if node == a.o.Node {
		return nil
	}
	var runs v1alpha1.AgentRunList
	if err := a.c.List(ctx, &runs, client.MatchingFields{indexNode: node}); err != nil {
		return nil
	}
	var reqs []reconcile.Request
	for _, r := range runs.Items {
		if r.Status.Phase == v1alpha1.PhaseRunning {
			reqs = append(reqs, reconcile.Request{NamespacedName: types.NamespacedName{Namespace: r.Namespace, Name: r.Name}})
		}
	}
	return reqs
}

// wakePending enqueues again every run this node might claim (pending, or
// held by another node whose Lease may have expired): a slot is free.
func (a *Agent) wakePending() {
	for _, phase := range []v1alpha1.Phase{v1alpha1.PhasePending, v1alpha1.PhaseRunning} {
		var runs v1alpha1.AgentRunList
		if err := a.c.List(context.Background(), &runs, client.MatchingFields{indexPhase: string(phase)}); err != nil {
			return
		}
		for i := range runs.Items {
			r := &runs.Items[i]
			if r.Status.Node == a.o.Node {
				continue
			}
			select {
			case a.wake <- event.GenericEvent{Object: r}:
			default:
				return // the queue is full of wake-ups already
			}
		}
	}
}

// Reconcile decides whether to claim one AgentRun.
func (a *Agent) Reconcile(ctx context.Context, req reconcile.Request) (reconcile.Result, error) {
	var run v1alpha1.AgentRun
	if err := a.c.Get(ctx, req.NamespacedName, &run); err != nil {
		return reconcile.Result{}, client.IgnoreNotFound(err)
	}
	st := run.Status
	if st.Phase.Final() {
		a.forget(run.UID)
		return reconcile.Result{}, nil
	}
	a.mu.Lock()
	_, mine := a.held[run.UID]
	stop := a.draining || a.fenced
	a.mu.Unlock()
	if mine || stop {
		return reconcile.Result{}, nil
	}
	switch {
	case st.Phase == "" || st.Phase == v1alpha1.PhasePending:
		return a.claim(ctx, &run, ReasonClaimed, "")
	case st.Node == a.o.Node:
		// Held by an earlier life of this node agent.
		return a.claim(ctx, &run, ReasonResumed, fmt.Sprintf("node %s resumed the run after restarting", a.o.Node))
	default:
		left, err := a.leases.expiresIn(ctx, st.Node)
		if err != nil {
			return reconcile.Result{}, err
		}
		if left > 0 {
			return reconcile.Result{RequeueAfter: left + 50*time.Millisecond}, nil
		}
		return a.claim(ctx, &run, ReasonReclaimed, fmt.Sprintf("node %s reclaimed the run from node %s, whose Lease expired (attempt %d)",
			a.o.Node, st.Node, st.Attempt+1))
	}
}

// claim claims run for this node, if it can run it and has room.
func (a *Agent) claim(ctx context.Context, run *v1alpha1.AgentRun, reason, msg string) (reconcile.Result, error) {
	iso, known := a.isolationOf(ctx, run)
	if known && a.offers.Isolation[iso] == "" {
		return reconcile.Result{}, nil // never weaker: a node that can give the isolation claims it
	}
	if wait := a.spreadWait(run.UID); wait > 0 {
		return reconcile.Result{RequeueAfter: wait}, nil
	}
	if !a.reserve() {
		return reconcile.Result{}, nil // full: woken when a slot frees
	}
	claimed := run.DeepCopy()
	st := &claimed.Status
	now := metav1.Now()
	st.Phase, st.Node, st.Attempt, st.ClaimedAt = v1alpha1.PhaseRunning, a.o.Node, st.Attempt+1, &now
	if msg == "" {
		msg = fmt.Sprintf("node %s claimed the run (attempt %d)", a.o.Node, st.Attempt)
	}
	meta.SetStatusCondition(&st.Conditions, metav1.Condition{Type: ConditionClaimed, Status: metav1.ConditionTrue,
		Reason: reason, Message: msg, ObservedGeneration: run.Generation})
	if err := a.c.Status().Update(ctx, claimed); err != nil {
		a.unreserve()
		if apierrors.IsConflict(err) || apierrors.IsNotFound(err) {
			return reconcile.Result{}, nil // another node was first, or the run changed: its watch event brings it back
		}
		return reconcile.Result{}, err
	}
	h := &held{key: client.ObjectKeyFromObject(claimed), uid: claimed.UID, attempt: st.Attempt, reason: reason, run: claimed}
	var rctx context.Context
	rctx, h.cancel = context.WithCancel(a.runCtx)
	a.mu.Lock()
	a.reserved--
	a.held[h.uid] = h
	delete(a.firstSeen, h.uid)
	a.mu.Unlock()
	a.events.Eventf(claimed, nil, corev1.EventTypeNormal, reason, "Claim", "%s", msg)
	a.log.Info("claimed", "run", h.key.String(), "reason", reason, "attempt", h.attempt, "isolation", iso)
	a.runsGroup.Add(1)
	go a.execute(rctx, h)
	return reconcile.Result{}, nil
}

// isolationOf returns the isolation mode run gets; known is false when its
// AgentConfig is missing or invalid (any node may claim it, to fail it
// with the reason).
func (a *Agent) isolationOf(ctx context.Context, run *v1alpha1.AgentRun) (v1alpha1.Isolation, bool) {
	var ac v1alpha1.AgentConfig
	if err := a.c.Get(ctx, types.NamespacedName{Namespace: run.Namespace, Name: run.Spec.AgentConfig}, &ac); err != nil {
		return "", false
	}
	cfg, _ := configOf(&ac)
	if cfg == nil {
		return "", false
	}
	return effectiveIsolation(run.Spec.Isolation, v1alpha1.Isolation(cfg.Orchestrator.Isolation.Mode)), true
}

// spreadWait returns how long to wait before claiming a run seen pending:
// SpreadDelay for each run this node holds, from when it was first seen.
func (a *Agent) spreadWait(uid types.UID) time.Duration {
	if a.o.SpreadDelay < 0 {
		return 0
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	first, ok := a.firstSeen[uid]
	if !ok {
		first = time.Now()
		a.firstSeen[uid] = first
	}
	return time.Until(first.Add(time.Duration(len(a.held)+a.reserved) * a.o.SpreadDelay))
}

func (a *Agent) forget(uid types.UID) {
	a.mu.Lock()
	delete(a.firstSeen, uid)
	a.mu.Unlock()
}

func (a *Agent) reserve() bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	if len(a.held)+a.reserved >= a.o.Capacity || a.draining || a.fenced {
		return false
	}
	a.reserved++
	return true
}

func (a *Agent) unreserve() {
	a.mu.Lock()
	a.reserved--
	a.mu.Unlock()
}

// update writes the status of a held run: mutate is applied to the latest
// status this claim knows and written with its resourceVersion; on a
// conflict the run is read again and, while it is still this claim's
// (same node, same attempt, not final), mutate is applied again. A run no
// longer this claim's is marked lost and ErrLostClaim returned.
func (a *Agent) update(ctx context.Context, h *held, mutate func(*v1alpha1.AgentRunStatus) error) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.lost {
		return ErrLostClaim
	}
	for try := 0; ; try++ {
		next := h.run.DeepCopy()
		if err := mutate(&next.Status); err != nil {
			return err
		}
		err := a.c.Status().Update(ctx, next)
		if err == nil {
			h.run = next
			return nil
		}
		if !apierrors.IsConflict(err) || try >= 10 {
			return fmt.Errorf("writing the status of AgentRun %s: %w", h.key, err)
		}
		var fresh v1alpha1.AgentRun
		if err := a.api.Get(ctx, h.key, &fresh); err != nil {
			if apierrors.IsNotFound(err) {
				h.lost = true
				return fmt.Errorf("%w: AgentRun %s was deleted", ErrLostClaim, h.key)
			}
			return fmt.Errorf("reading AgentRun %s: %w", h.key, err)
		}
		if fresh.UID != h.uid || fresh.Status.Node != a.o.Node || fresh.Status.Attempt != h.attempt || fresh.Status.Phase.Final() {
			h.lost = true
			return fmt.Errorf("%w: AgentRun %s is now held by node %s (attempt %d)", ErrLostClaim, h.key, fresh.Status.Node, fresh.Status.Attempt)
		}
		h.run = &fresh
	}
}

// execute runs a claimed run and writes its outcome.
func (a *Agent) execute(ctx context.Context, h *held) {
	defer a.runsGroup.Done()
	var once sync.Once
	release := func() {
		once.Do(func() {
			h.cancel()
			a.mu.Lock()
			delete(a.held, h.uid)
			a.mu.Unlock()
			a.wakePending()
		})
	}
	defer release()
	run := h.current()
	out, err := a.runOne(ctx, h, run)
	if h.isLost() {
		a.log.Warn("lost the run to another node; its outcome here is dropped", "run", h.key.String(), "attempt", h.attempt)
		return
	}
	if a.runCtx.Err() != nil {
		a.log.Warn("stopped before the run ended; another node reclaims it", "run", h.key.String())
		return
	}
	phase, reason, msg := verdict(out, err)
	wctx, cancel := context.WithTimeout(context.Background(), journalWriteTimeout)
	defer cancel()
	werr := a.update(wctx, h, func(st *v1alpha1.AgentRunStatus) error {
		now := metav1.Now()
		st.Phase, st.CompletedAt = phase, &now
		st.Error = Bound(msg, v1alpha1.MaxErrorBytes)
		if out != nil {
			st.Provider, st.PlanHash, st.Steps = out.Provider, out.PlanHash, out.Steps
			if len(st.Steps) > v1alpha1.MaxSteps {
				st.Steps = st.Steps[:v1alpha1.MaxSteps]
			}
			st.Value = Bound(out.Value, v1alpha1.MaxValueBytes)
			st.ValueTruncated = len(st.Value) < len(out.Value)
			st.Output = Bound(out.Output, v1alpha1.MaxOutputBytes)
			st.OutputTruncated = out.OutputTruncated || len(st.Output) < len(out.Output)
			if len(out.Checkpoint) <= v1alpha1.MaxCheckpoint {
				st.Checkpoint = string(out.Checkpoint)
			}
		}
		meta.SetStatusCondition(&st.Conditions, metav1.Condition{Type: ConditionFinished, Status: metav1.ConditionTrue,
			Reason: reason, Message: Bound(firstLine(msg, string(phase)), 1024), ObservedGeneration: h.run.Generation})
		return nil
	})
	if werr != nil {
		a.log.Error("writing the outcome", "run", h.key.String(), "err", werr)
		return
	}
	release() // the slot is free as soon as the outcome is written
	typ := corev1.EventTypeNormal
	if phase != v1alpha1.PhaseSucceeded {
		typ = corev1.EventTypeWarning
	}
	a.events.Eventf(h.current(), nil, typ, reason, "Run", "%s", Bound(firstLine(msg, "the run succeeded on node "+a.o.Node), 1024))
	a.log.Info("finished", "run", h.key.String(), "phase", phase, "attempt", h.attempt)
}

func (a *Agent) runOne(ctx context.Context, h *held, run *v1alpha1.AgentRun) (*Outcome, error) {
	var ac v1alpha1.AgentConfig
	if err := a.c.Get(ctx, types.NamespacedName{Namespace: run.Namespace, Name: run.Spec.AgentConfig}, &ac); err != nil {
		if apierrors.IsNotFound(err) {
			return nil, fmt.Errorf("AgentConfig %q does not exist in namespace %s", run.Spec.AgentConfig, run.Namespace)
		}
		return nil, fmt.Errorf("reading AgentConfig %q: %w", run.Spec.AgentConfig, err)
	}
	iso := run.Spec.Isolation
	if cfg, _ := configOf(&ac); cfg != nil {
		// The config may have changed since the claim.
		iso = effectiveIsolation(run.Spec.Isolation, v1alpha1.Isolation(cfg.Orchestrator.Isolation.Mode))
		if a.offers.Isolation[iso] == "" {
			return nil, fmt.Errorf("node %s cannot give the run's isolation :%s, and ccos does not fall back to weaker isolation", a.o.Node, iso)
		}
	}
	return a.o.Runner.Run(ctx, Job{
		ID:         fmt.Sprintf("%s_%s_%d", run.Namespace, run.Name, h.attempt),
		Config:     []byte(ac.Spec.Config),
		ConfigFile: ConfigFile(ac.Namespace, ac.Name),
		ConfigKey:  string(ac.UID) + "/" + ac.ResourceVersion,
		Isolation:  iso,
		Plan:       []byte(run.Spec.Plan),
		PlanFile:   PlanFile(run.Namespace, run.Name),
		Approvals:  run.Spec.Approvals,
		Calls:      &journal{a: a, h: h},
	})
}

// verdict turns a run's result into its final phase, the condition reason
// and the error text.
func verdict(out *Outcome, err error) (v1alpha1.Phase, string, string) {
	var ce *engine.ConfigError
	var ae *engine.AdmissionError
	switch {
	case errors.As(err, &ce):
		return v1alpha1.PhaseFailed, "ConfigInvalid", ce.Error()
	case errors.As(err, &ae):
		return v1alpha1.PhaseFailed, "NotAdmitted", err.Error()
	case err != nil:
		return v1alpha1.PhaseFailed, "Error", err.Error()
	case len(out.InDoubt) > 0:
		return v1alpha1.PhaseInDoubt, "InDoubt", fmt.Sprintf("side-effecting calls started by an earlier attempt were never recorded as finished and may have taken effect, so they were not run again: %s%s",
			strings.Join(out.InDoubt, ", "), suffix("; the plan then ended with: ", out.Error))
	case out.Error != "":
		return v1alpha1.PhaseFailed, "PlanFailed", out.Error
	}
	return v1alpha1.PhaseSucceeded, "Succeeded", ""
}

func suffix(prefix, s string) string {
	if s == "" {
		return ""
	}
	return prefix + s
}

func firstLine(s, def string) string {
	if s == "" {
		return def
	}
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i]
	}
	return s
}

// Bound cuts s to at most n bytes on a rune boundary: what fits in a
// bounded status field.
func Bound(s string, n int) string {
	if len(s) <= n {
		return s
	}
	s = s[:n]
	for len(s) > 0 && !utf8.ValidString(s) {
		s = s[:len(s)-1]
	}
	return s
}

// configVerdicts caches the loaded AgentConfigs by UID and resource
// version: a config is loaded once per change, not once per claim.
var configVerdicts = struct {
	sync.Mutex
	m map[string]configVerdict
}{m: map[string]configVerdict{}}

// maxConfigVerdicts bounds the cache; it starts afresh when full.
const maxConfigVerdicts = 256

type configVerdict struct {
	cfg   *config.Config
	diags []string
}

// configOf loads an AgentConfig's text: the config, or nil and its
// diagnostics.
func configOf(ac *v1alpha1.AgentConfig) (*config.Config, []string) {
	key := string(ac.UID) + "/" + ac.ResourceVersion
	configVerdicts.Lock()
	cv, ok := configVerdicts.m[key]
	configVerdicts.Unlock()
	if ok {
		return cv.cfg, cv.diags
	}
	cfg, diags := LoadConfig([]byte(ac.Spec.Config), ConfigFile(ac.Namespace, ac.Name))
	configVerdicts.Lock()
	if len(configVerdicts.m) >= maxConfigVerdicts {
		clear(configVerdicts.m)
	}
	lines := DiagnosticLines(diags)
	configVerdicts.m[key] = configVerdict{cfg: cfg, diags: lines}
	configVerdicts.Unlock()
	return cfg, lines
}
