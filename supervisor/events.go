package supervisor

import (
	"encoding/json"
	"log/slog"
	"sync"

	"github.com/ccos-project/ccos/engine"
)

// MaxRunEventBytes bounds the events kept of one run, in memory while it
// runs and in the store: past it, one "events.truncated" event says so and
// the rest are only in the causal chain.
const MaxRunEventBytes = 32 << 20

// EventTruncated is the type of the event that marks the bound.
const EventTruncated = "events.truncated"

// hub holds a running run's events for its live subscribers: each reads at
// its own pace from the list, and a slow one never blocks the run.
type hub struct {
	run string

	mu      sync.Mutex
	events  [][]byte
	seqs    []int
	bytes   int
	done    bool
	changed chan struct{}
}

func newHub(run string) *hub { return &hub{run: run, changed: make(chan struct{})} }

// add appends an event and wakes the subscribers.
func (h *hub) add(seq int, data []byte) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.events = append(h.events, data)
	h.seqs = append(h.seqs, seq)
	h.bytes += len(data)
	close(h.changed)
	h.changed = make(chan struct{})
}

// since returns the events after sequence number after, whether the run
// is over, and a channel closed at the next change.
func (h *hub) since(after int) ([]int, [][]byte, bool, <-chan struct{}) {
	h.mu.Lock()
	defer h.mu.Unlock()
	i := 0
	for i < len(h.seqs) && h.seqs[i] <= after {
		i++
	}
	return h.seqs[i:], h.events[i:], h.done, h.changed
}

func (h *hub) close() {
	h.mu.Lock()
	defer h.mu.Unlock()
	if !h.done {
		h.done = true
		close(h.changed)
		h.changed = make(chan struct{})
	}
}

// eventSink takes a run's events from the engine: to the hub for live
// subscribers and to the store, within MaxRunEventBytes.
type eventSink struct {
	store *Store
	hub   *hub
	run   string
	log   *slog.Logger

	mu        sync.Mutex
	bytes     int
	truncated bool
	pending   []<-chan error
	// buf holds events not yet handed to the store: they are stored in
	// batches (the hub has them at once).
	buf []storedEvent
}

// eventBatch is how many events go to the store in one write.
const eventBatch = 64

func newEventSink(st *Store, h *hub, run string, log *slog.Logger) *eventSink {
	return &eventSink{store: st, hub: h, run: run, log: log}
}

func (k *eventSink) add(e engine.Event) {
	data, err := json.Marshal(e)
	if err != nil {
		return
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.truncated {
		return
	}
	if k.bytes+len(data) > MaxRunEventBytes {
		k.truncated = true
		e = engine.Event{Run: e.Run, Seq: e.Seq, Time: e.Time, Type: EventTruncated,
			Text: "this run's events passed the supervisor's bound of 32 MiB; the rest are in the causal chain"}
		data, _ = json.Marshal(e)
	}
	k.bytes += len(data)
	k.hub.add(e.Seq, data)
	k.buf = append(k.buf, storedEvent{Seq: e.Seq, Data: data})
	if len(k.buf) < eventBatch {
		return
	}
	k.pending = append(k.pending, k.store.appendEvents(k.run, k.buf))
	k.buf = nil
	// Keep the list of waits short: drop the ones already done.
	if len(k.pending) > 64 {
		live := k.pending[:0]
		for _, c := range k.pending {
			select {
			case err := <-c:
				if err != nil {
					k.log.Warn("storing a run's event", "run", k.run, "error", err)
				}
			default:
				live = append(live, c)
			}
		}
		k.pending = live
	}
}

// close waits until every event is stored.
func (k *eventSink) close() {
	k.mu.Lock()
	if len(k.buf) > 0 {
		k.pending = append(k.pending, k.store.appendEvents(k.run, k.buf))
		k.buf = nil
	}
	pending := k.pending
	k.pending = nil
	k.mu.Unlock()
	for _, c := range pending {
		if err := <-c; err != nil {
			k.log.Warn("storing a run's event", "run", k.run, "error", err)
		}
	}
}
