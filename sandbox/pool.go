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
// spec asks for the limits the pool was filled with (IDs aside), and starts
// a new one otherwise.
type Pool struct {
	p    Provider
	spec Spec
	size int

	mu      sync.Mutex
	ready   []Sandbox
	filling int
	closed  bool
	wg      sync.WaitGroup
	// fillErr is the last error met while filling, reported by Stats.
	fillErr error
}

// RefillDelay is how long the pool waits after handing out a sandbox
// before starting its replacement, so that the replacement's start-up does
// not compete for CPU with the run just dispatched (on a 2-core host it
// tripled the dispatch latency; see docs/BENCHMARKS.md).
const RefillDelay = 50 * time.Millisecond

// NewPool returns a pool of size sandboxes started by p with spec. It starts
// filling at once, in the background.
func NewPool(p Provider, spec Spec, size int) *Pool {
	pl := &Pool{p: p, spec: spec, size: max(size, 0)}
	pl.mu.Lock()
	pl.refillLocked(0)
	pl.mu.Unlock()
	return pl
}

// Name returns the name of the pooled provider.
func (pl *Pool) Name() string { return pl.p.Name() }

// Available reports the pooled provider's availability.
func (pl *Pool) Available() (bool, string) { return pl.p.Available() }

// ErrPoolClosed is returned by Start after Close.
var ErrPoolClosed = errors.New("sandbox pool closed")

// Start returns a waiting sandbox when spec matches the pool's, else starts
// a new one; either way the pool starts a replacement in the background.
func (pl *Pool) Start(ctx context.Context, spec Spec) (Sandbox, error) {
	pl.mu.Lock()
	if pl.closed {
		pl.mu.Unlock()
		return nil, ErrPoolClosed
	}
	if sameShape(spec, pl.spec) && len(pl.ready) > 0 {
		sb := pl.ready[0]
		pl.ready = pl.ready[1:]
		pl.refillLocked(RefillDelay)
		pl.mu.Unlock()
		return sb, nil
	}
	pl.mu.Unlock()
	return pl.p.Start(ctx, spec)
}

// sameShape reports whether two specs ask for the same sandbox, whatever
// their IDs.
func sameShape(a, b Spec) bool {
	a.ID, b.ID = "", ""
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
	time.Sleep(delay)
	sb, err := pl.p.Start(context.Background(), pl.spec)
	pl.mu.Lock()
	defer pl.mu.Unlock()
	pl.filling--
	if err != nil {
		// Do not retry in a loop: the next Start refills.
		pl.fillErr = err
		return
	}
	if pl.closed {
		sb.Kill()
		sb.Wait()
		return
	}
	pl.ready = append(pl.ready, sb)
}

// PoolStats describes a pool's state.
type PoolStats struct {
	Ready, Filling int
	// LastFillError is the last error met starting a pooled sandbox.
	LastFillError error
}

// Stats returns the pool's state.
func (pl *Pool) Stats() PoolStats {
	pl.mu.Lock()
	defer pl.mu.Unlock()
	return PoolStats{Ready: len(pl.ready), Filling: pl.filling, LastFillError: pl.fillErr}
}

// Close destroys every waiting sandbox and stops refilling; sandboxes
// already handed out are the caller's to end.
func (pl *Pool) Close() {
	pl.mu.Lock()
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
