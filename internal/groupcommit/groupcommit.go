// Package groupcommit batches the writes of many goroutines into one
// durable commit: one goroutine takes everything queued so far and hands
// it to a flush function, which writes and syncs it once; every waiter of
// the batch then learns the result. After a failed flush every later
// append fails with the same error: a store whose sync failed cannot know
// what reached the disk. The causal chain's stores and the supervisor's
// run store commit through it.
package groupcommit

import (
	"errors"
	"sync"
)

// ErrClosed is the result of an append after Close.
var ErrClosed = errors.New("groupcommit: closed")

// Committer queues items of type T and flushes them in batches.
type Committer[T any] struct {
	flush    func(batch []T) error
	maxBatch int
	closedE  error

	mu      sync.Mutex
	cond    *sync.Cond
	queue   []T
	waiters []chan error
	closed  bool
	failed  error
	done    chan struct{}
}

// New starts a committer that flushes at most maxBatch items at a time (0:
// no bound); appends after Close fail with closedErr (ErrClosed when nil).
func New[T any](maxBatch int, closedErr error, flush func([]T) error) *Committer[T] {
	if closedErr == nil {
		closedErr = ErrClosed
	}
	c := &Committer[T]{flush: flush, maxBatch: maxBatch, closedE: closedErr, done: make(chan struct{})}
	c.cond = sync.NewCond(&c.mu)
	go c.loop()
	return c
}

// Append queues an item; the channel receives the result of the flush
// that covered it.
func (c *Committer[T]) Append(item T) <-chan error {
	ch := make(chan error, 1)
	c.mu.Lock()
	defer c.mu.Unlock()
	switch {
	case c.failed != nil:
		ch <- c.failed
		return ch
	case c.closed:
		ch <- c.closedE
		return ch
	}
	c.queue = append(c.queue, item)
	c.waiters = append(c.waiters, ch)
	c.cond.Signal()
	return ch
}

// Do appends an item and waits for its flush.
func (c *Committer[T]) Do(item T) error { return <-c.Append(item) }

func (c *Committer[T]) loop() {
	defer close(c.done)
	c.mu.Lock()
	for {
		for len(c.queue) == 0 && !c.closed {
			c.cond.Wait()
		}
		if len(c.queue) == 0 {
			c.mu.Unlock()
			return
		}
		n := len(c.queue)
		if c.maxBatch > 0 && n > c.maxBatch {
			n = c.maxBatch
		}
		batch, waiters := c.queue[:n:n], c.waiters[:n:n]
		c.queue, c.waiters = c.queue[n:], c.waiters[n:]
		failed := c.failed
		c.mu.Unlock()
		err := failed
		if err == nil {
			err = c.flush(batch)
		}
		for _, w := range waiters {
			w <- err
		}
		c.mu.Lock()
		if err != nil && c.failed == nil {
			c.failed = err
		}
	}
}

// Close stops accepting items, waits for the queued ones and returns the
// first flush error, if any.
func (c *Committer[T]) Close() error {
	c.mu.Lock()
	c.closed = true
	c.cond.Signal()
	c.mu.Unlock()
	<-c.done
	return c.failed
}
