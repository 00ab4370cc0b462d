package sandbox

import (
	"context"
	"errors"
	"reflect"
	"sync"
	"time"
)

// Pool keeps a few sandboxes of one provider started and waiting, so that a
// run does not pay the provider's start-up time. A pooled sandbox has never
// run a plan; a sandbox handed out by Start is never taken back: once its
// run ends it is destroyed, never reused.
//
// Pool is itself a Provider. Start hands out a waiting sandbox when the
// spec asks for the limits the pool was filled with (IDs and deadline
// aside), and starts a new one otherwise.
//
// Lifetimes: a waiting sandbox is started with the pool's idle limit as its
// deadline (MaxIdle), and its run's deadline starts when it is handed out
// (Holdable.Rearm): a run gets its whole deadline however long the sandbox
// waited. A waiting sandbox that ends (its idle limit passed, it crashed,
// something killed it) leaves the pool at once and is replaced; one that
// cannot be re-armed at the hand-out is destroyed and the next one (or a
// new start) is used. Providers whose sandboxes are not Holdable are
// pooled with the run's own spec, as before.
type Pool struct {
	p    Provider
	spec Spec
	size int
	// MaxIdle bounds how long a sandbox waits in the pool before it is
	// replaced by a fresh one; DefaultMaxIdle when 0. Set it before the
	// first Start.
	MaxIdle time.Duration

	mu      sync.Mutex
	ready   []Sandbox
	filling int
	closed  bool
	wg      sync.WaitGroup
	// fillErr is the last error met while filling, reported by Stats;
	// it is cleared by the next successful fill.
	fillErr error
	// died counts waiting sandboxes that ended before a run took them.
	died int
	// failures counts the starts that failed in a row.
	failures int
	// plain is set once the provider is known to start sandboxes that are
	// not Holdable: they are started with the run's own spec.
	plain bool
	quit  chan struct{}
}

// RefillDelay is how long the pool waits after handing out a sandbox
// before starting its replacement, so that the replacement's start-up does
// not compete for CPU with the run just dispatched (on a 2-core host it
// tripled the dispatch latency; see docs/BENCHMARKS.md).
const RefillDelay = 50 * time.Millisecond

// DefaultMaxIdle is how long a sandbox waits in a pool at most.
const DefaultMaxIdle = 10 * time.Minute

// NewPool returns a pool of size sandboxes started by p with spec. It starts
// filling at once, in the background.
func NewPool(p Provider, spec Spec, size int) *Pool {
	return NewPoolIdle(p, spec, size, 0)
}

// NewPoolIdle is NewPool with the longest time a sandbox may wait
// (DefaultMaxIdle when 0).
func NewPoolIdle(p Provider, spec Spec, size int, maxIdle time.Duration) *Pool {
	if maxIdle <= 0 {
		maxIdle = DefaultMaxIdle
	}
	pl := &Pool{p: p, spec: spec, size: max(size, 0), MaxIdle: maxIdle, quit: make(chan struct{})}
	pl.mu.Lock()
	pl.refillLocked(0)
	pl.mu.Unlock()
	return pl
}

// Name returns the name of the pooled provider.
func (pl *Pool) Name() string { return pl.p.Name() }

// Available reports the pooled provider's availability.
func (pl *Pool) Available() (bool, string) { return pl.p.Available() }

// Provider returns the pooled provider.
func (pl *Pool) Provider() Provider { return pl.p }

// ErrPoolClosed is returned by Start after Close.
var ErrPoolClosed = errors.New("sandbox pool closed")

// Start returns a waiting sandbox when spec matches the pool's, with its
// deadline started now, else starts a new one; either way the pool starts
// a replacement in the background.
func (pl *Pool) Start(ctx context.Context, spec Spec) (Sandbox, error) {
	deadline := spec.Limits.WithDefaults().Deadline
	for {
		pl.mu.Lock()
		if pl.closed {
			pl.mu.Unlock()
			return nil, ErrPoolClosed
		}
		if !sameShape(spec, pl.spec) || len(pl.ready) == 0 {
			pl.mu.Unlock()
			return pl.p.Start(ctx, spec)
		}
		sb := pl.ready[0]
		pl.ready = pl.ready[1:]
		pl.refillLocked(RefillDelay)
		pl.mu.Unlock()
		h, ok := sb.(Holdable)
		if !ok || h.Rearm(deadline) {
			return sb, nil
		}
		// It ended while waiting, or is ending: never hand it out.
		sb.Kill()
		sb.Wait()
	}
}

// sameShape reports whether two specs ask for the same sandbox, whatever
// their IDs and deadlines (a pooled sandbox's deadline starts at hand-out).
func sameShape(a, b Spec) bool {
	a.ID, b.ID = "", ""
	a.Limits, b.Limits = a.Limits.WithDefaults(), b.Limits.WithDefaults()
	a.Limits.Deadline, b.Limits.Deadline = 0, 0
	return reflect.DeepEqual(a, b)
}

// refillLocked starts enough sandboxes, after delay, to bring the pool
// back to size.
func (pl *Pool) refillLocked(delay time.Duration) {
	for len(pl.ready)+pl.filling < pl.size && !pl.closed {
		pl.filling++
		pl.wg.Add(1)
		go pl.fillOne(delay)
	}
}

func (pl *Pool) fillOne(delay time.Duration) {
	defer pl.wg.Done()
	if delay > 0 {
		t := time.NewTimer(delay)
		select {
		case <-t.C:
		case <-pl.quit:
			t.Stop()
			pl.mu.Lock()
			pl.filling--
			pl.mu.Unlock()
			return
		}
	}
	spec := pl.spec
	pl.mu.Lock()
	if !pl.plain {
		spec.Limits = spec.Limits.WithDefaults()
		spec.Limits.Deadline = pl.MaxIdle
	}
	pl.mu.Unlock()
	sb, err := pl.p.Start(context.Background(), spec)
	pl.mu.Lock()
	defer pl.mu.Unlock()
	pl.filling--
	if err != nil {
		// Retried after a pause that doubles with each failure in a row
		// (1 s up to a minute): never a hot loop against a broken
		// provider, and the pool fills again once it works.
		pl.fillErr = err
		pl.failures++
		pl.refillLocked(min(time.Second<<min(pl.failures-1, 6), time.Minute))
		return
	}
	pl.failures = 0
	if pl.closed {
		sb.Kill()
		sb.Wait()
		return
	}
	if _, ok := sb.(Holdable); !ok && !pl.plain {
		// Without Rearm the sandbox keeps the deadline it started with:
		// from now on, start them with the run's own.
		pl.plain = true
		go func() { sb.Kill(); sb.Wait() }()
		pl.refillLocked(0)
		return
	}
	pl.fillErr = nil
	pl.ready = append(pl.ready, sb)
	if h, ok := sb.(Holdable); ok {
		go pl.watch(h)
	}
}

// watch removes a waiting sandbox from the pool as soon as it ends, and
// starts its replacement.
func (pl *Pool) watch(h Holdable) {
	select {
	case <-h.Done():
	case <-pl.quit:
		return
	}
	pl.mu.Lock()
	defer pl.mu.Unlock()
	for i, sb := range pl.ready {
		if sb == Sandbox(h) {
			pl.ready = append(pl.ready[:i:i], pl.ready[i+1:]...)
			pl.died++
			pl.refillLocked(0)
			break
		}
	}
}

// PoolStats describes a pool's state.
type PoolStats struct {
	// Size is how many sandboxes the pool keeps waiting; Ready how many
	// are waiting now, Filling how many are starting.
	Size, Ready, Filling int
	// Died counts waiting sandboxes that ended before a run took them.
	Died int
	// LastFillError is the last error met starting a pooled sandbox, nil
	// once a start succeeds again.
	LastFillError error
}

// Stats returns the pool's state.
func (pl *Pool) Stats() PoolStats {
	pl.mu.Lock()
	defer pl.mu.Unlock()
	return PoolStats{Size: pl.size, Ready: len(pl.ready), Filling: pl.filling, Died: pl.died, LastFillError: pl.fillErr}
}

// Close destroys every waiting sandbox and stops refilling; sandboxes
// already handed out are the caller's to end.
func (pl *Pool) Close() {
	pl.mu.Lock()
	if !pl.closed {
		close(pl.quit)
	}
	pl.closed = true
	ready := pl.ready
	pl.ready = nil
	pl.mu.Unlock()
	for _, sb := range ready {
		sb.Kill()
		sb.Wait()
	}
	pl.wg.Wait()
}
