package supervisor

import (
	"slices"
	"sync"
)

// lane is the queue of one provider's runs, served by that provider's
// workers. Its capacity bounds the runs waiting (a full lane answers 429);
// runs resumed after a crash are queued whatever the capacity.
type lane struct {
	name string
	cap  int

	mu       sync.Mutex
	cond     *sync.Cond
	q        []string
	reserved int
	closed   bool
}

func newLane(name string, capacity int) *lane {
	l := &lane{name: name, cap: capacity}
	l.cond = sync.NewCond(&l.mu)
	return l
}

// reserve takes a place in the queue for a run about to be recorded.
func (l *lane) reserve() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed || len(l.q)+l.reserved >= l.cap {
		return false
	}
	l.reserved++
	return true
}

func (l *lane) unreserve() {
	l.mu.Lock()
	l.reserved--
	l.mu.Unlock()
}

// push queues a run: one reserved before, or one resumed.
func (l *lane) push(id string, resumed bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !resumed {
		l.reserved--
	}
	l.q = append(l.q, id)
	l.cond.Signal()
}

// pop waits for the next run; false once the lane is closed (the runs
// still queued stay queued in the store).
func (l *lane) pop() (string, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for len(l.q) == 0 && !l.closed {
		l.cond.Wait()
	}
	if l.closed {
		return "", false
	}
	id := l.q[0]
	l.q = l.q[1:]
	return id, true
}

// remove takes a queued run out of the lane.
func (l *lane) remove(id string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	i := slices.Index(l.q, id)
	if i < 0 {
		return false
	}
	l.q = slices.Delete(l.q, i, i+1)
	return true
}

func (l *lane) len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.q)
}

// closeQueue stops the lane's workers once they finish their current run.
func (l *lane) closeQueue() {
	l.mu.Lock()
	l.closed = true
	l.cond.Broadcast()
	l.mu.Unlock()
}
