package supervisor

import (
	"context"
	"sync"
	"time"
)

// feedSize bounds the changes a feed remembers: a subscriber that falls
// further behind is told to start again from a fresh list.
const feedSize = 4096

// runFeed numbers the changes of runs' states (submitted, started, ended,
// queued again) for the subscribers of GET /v1/events. It keeps only the
// ids of the last feedSize changes: a subscriber reads each run's state
// from the store when it sends it, so what it sends is never older than
// the change it announces.
type runFeed struct {
	mu      sync.Mutex
	seq     uint64   // number of the last change
	ids     []string // ring of the last feedSize changed run ids
	changed chan struct{}
}

func newRunFeed() *runFeed { return &runFeed{changed: make(chan struct{})} }

// note records that a run's state changed and wakes the subscribers.
func (f *runFeed) note(id string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.seq++
	if len(f.ids) < feedSize {
		f.ids = append(f.ids, id)
	} else {
		f.ids[(f.seq-1)%feedSize] = id
	}
	close(f.changed)
	f.changed = make(chan struct{})
}

// since returns the ids of the runs changed after change number after
// (each once, oldest change first), the number of the last change, whether
// changes after after were forgotten (the subscriber must start again), and
// a channel closed at the next change.
func (f *runFeed) since(after uint64) (ids []string, last uint64, lost bool, changed <-chan struct{}) {
	f.mu.Lock()
	defer f.mu.Unlock()
	last, changed = f.seq, f.changed
	if after >= f.seq {
		return nil, last, after > f.seq, changed
	}
	if f.seq-after > uint64(len(f.ids)) {
		return nil, last, true, changed
	}
	seen := map[string]bool{}
	for n := after + 1; n <= f.seq; n++ {
		id := f.ids[(n-1)%feedSize]
		if !seen[id] {
			seen[id] = true
			ids = append(ids, id)
		}
	}
	return ids, last, false, changed
}

// last is the number of the last change.
func (f *runFeed) last() uint64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.seq
}

// awaitHub returns the live events hub of a run, waiting while the run is
// queued (it gets one when a worker starts it); nil once the run is over
// (or ctx ends). keepalive is called at each tick while it waits.
func (s *Supervisor) awaitHub(ctx context.Context, id string, keepalive func(), tick <-chan time.Time) *hub {
	feed := s.o.Store.changes
	for {
		// The channel is taken before the checks: a change after them
		// closes it.
		_, _, _, changed := feed.since(feed.last())
		s.mu.Lock()
		h := s.hubs[id]
		s.mu.Unlock()
		if h != nil {
			return h
		}
		rec, err := s.o.Store.get(ctx, id)
		if err != nil || rec.Status != StatusQueued {
			// Over, or running between the two reads: the caller
			// catches up from the store.
			s.mu.Lock()
			h = s.hubs[id]
			s.mu.Unlock()
			return h
		}
		select {
		case <-changed:
		case <-tick:
			keepalive()
		case <-ctx.Done():
			return nil
		}
	}
}
