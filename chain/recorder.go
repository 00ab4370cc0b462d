package chain

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/ccos-project/ccos/rtfs"
	"golang.org/x/mod/sumdb/note"
)

// Options tune a Recorder. The zero value records without automatic
// checkpoints.
type Options struct {
	// CheckpointEvery appends a checkpoint after this many events since the
	// last one (0: never automatically).
	CheckpointEvery int
	// CheckpointInterval appends a checkpoint with the first event recorded
	// this long after the last checkpoint (0: never automatically). No timer
	// runs: an idle chain gets its checkpoint from the caller (Checkpoint at
	// the end of every plan).
	CheckpointInterval time.Duration
	// Now is the clock (time.Now if nil).
	Now func() time.Time
}

// The recorder errors.
var (
	ErrNoSigner = errors.New("chain: no signing key for checkpoints")
	ErrFailed   = errors.New("chain: recorder failed earlier")
	ErrReserved = errors.New("chain: checkpoint events are recorded by Checkpoint only")
)

// Recorder appends events to a store: it numbers them, links them by hash,
// grows the Merkle tree and signs checkpoints. Its methods are safe for
// concurrent use; concurrent appends share fsyncs (group commit).
type Recorder struct {
	store  Store
	signer note.Signer
	opts   Options

	mu       sync.Mutex
	tree     *Tree
	head     Hash
	sinceCP  int
	lastCP   time.Time
	failed   error
	closed   bool
	recovery Recovery
	last     *Checkpoint // the latest checkpoint recorded
}

// NewRecorder opens a recorder on store, replaying the events already in
// it (hashes, parents and checkpoint roots are checked; a damaged store is
// an error). signer signs checkpoints and may be nil when none are wanted.
func NewRecorder(store Store, signer note.Signer, opts Options) (*Recorder, error) {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	st := newState(nil, false)
	if err := store.Records(func(_ uint64, data []byte) error {
		_, err := st.add(data)
		return err
	}); err != nil {
		return nil, fmt.Errorf("chain: replaying the store: %w", err)
	}
	r := &Recorder{store: store, signer: signer, opts: opts, tree: st.tree, head: st.head, lastCP: opts.Now(), last: st.report.Last}
	// Events after the last checkpoint of an earlier session count towards
	// the next one.
	r.sinceCP = int(st.report.Events)
	if last := st.report.Last; last != nil {
		r.sinceCP = int(st.report.Events - last.Size - 1)
	}
	if fs, ok := store.(*FileStore); ok {
		r.recovery = fs.Recovered()
	}
	return r, nil
}

// Recovered reports the torn tail truncated when the store was opened
// (zero for stores other than append files).
func (r *Recorder) Recovered() Recovery { return r.recovery }

// Append records e and returns its sequence number once it is durable. It
// sets Seq, Parent and Time (host time, UTC), generates an ID when empty and
// sets Origin to OriginHost when zero; an event the guest reported must come
// with OriginGuest. Checkpoint events come from Checkpoint only
// (ErrReserved). If an automatic checkpoint fails, the event is still
// recorded and Append returns its seq with the error. When ctx ends first Append returns ctx.Err(); the event
// may still become durable.
func (r *Recorder) Append(ctx context.Context, e Event) (uint64, error) {
	if e.Type == TypeCheckpoint {
		return 0, ErrReserved
	}
	r.mu.Lock()
	seq, done, err := r.appendLocked(&e)
	var cperr error
	if err == nil && r.checkpointDue() {
		if _, cdone, err := r.checkpointLocked(); err == nil {
			done = both(done, cdone)
		} else {
			cperr = err
		}
	}
	r.mu.Unlock()
	if err != nil {
		return 0, err
	}
	if err := r.wait(ctx, done); err != nil {
		return seq, err
	}
	if cperr != nil {
		// The event is durable; only the automatic checkpoint failed.
		return seq, fmt.Errorf("chain: event %d recorded, automatic checkpoint failed: %w", seq, cperr)
	}
	return seq, nil
}

func (r *Recorder) checkpointDue() bool {
	if r.signer == nil || r.sinceCP == 0 {
		return false
	}
	return r.opts.CheckpointEvery > 0 && r.sinceCP >= r.opts.CheckpointEvery ||
		r.opts.CheckpointInterval > 0 && r.opts.Now().Sub(r.lastCP) >= r.opts.CheckpointInterval
}

func (r *Recorder) appendLocked(e *Event) (uint64, <-chan error, error) {
	if err := r.stampLocked(e); err != nil {
		return 0, nil, err
	}
	return r.commitLocked(e)
}

// stampLocked sets the fields the recorder owns: Seq, Parent, Time, and
// Origin and ID when unset.
func (r *Recorder) stampLocked(e *Event) error {
	switch {
	case r.closed:
		return ErrClosed
	case r.failed != nil:
		return fmt.Errorf("%w: %w", ErrFailed, r.failed)
	}
	e.Seq = r.tree.Size()
	e.Parent = r.head
	e.Time = r.opts.Now().UTC()
	if e.Origin == 0 {
		e.Origin = OriginHost
	}
	if e.ID == "" {
		e.ID = newID()
	}
	return nil
}

// commitLocked encodes a stamped event and appends it.
func (r *Recorder) commitLocked(e *Event) (uint64, <-chan error, error) {
	data, err := Encode(e)
	if err != nil {
		return 0, nil, err
	}
	done := r.store.Append(data)
	r.tree.Append(LeafHash(data))
	r.head = HashOf(data)
	r.sinceCP++
	return e.Seq, done, nil
}

// Checkpoint signs the current tree and records the checkpoint as the next
// event; it returns once that event is durable.
func (r *Recorder) Checkpoint(ctx context.Context) (*Checkpoint, error) {
	r.mu.Lock()
	c, done, err := r.checkpointLocked()
	r.mu.Unlock()
	if err != nil {
		return nil, err
	}
	return c, r.wait(ctx, done)
}

func (r *Recorder) checkpointLocked() (*Checkpoint, <-chan error, error) {
	if r.signer == nil {
		return nil, nil, ErrNoSigner
	}
	// The event is stamped first so that the signature can cover its own
	// fields (EventBinding), then it gets the signed note as its payload.
	e := &Event{Type: TypeCheckpoint}
	if err := r.stampLocked(e); err != nil {
		return nil, nil, err
	}
	binding, err := EventBinding(e)
	if err != nil {
		return nil, nil, err
	}
	c, err := SignCheckpoint(r.signer, r.tree.Size(), r.tree.Root(), binding)
	if err != nil {
		return nil, nil, err
	}
	e.Payload = rtfs.String{V: string(c.Note)}
	_, done, err := r.commitLocked(e)
	if err != nil {
		return nil, nil, err
	}
	r.sinceCP = 0
	r.lastCP = r.opts.Now()
	r.last = c
	return c, done, nil
}

func (r *Recorder) wait(ctx context.Context, done <-chan error) error {
	select {
	case err := <-done:
		if err != nil {
			r.mu.Lock()
			if r.failed == nil {
				r.failed = err
			}
			r.mu.Unlock()
		}
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// both returns a channel that reports the first error of a and b, or nil
// once both have succeeded.
func both(a, b <-chan error) <-chan error {
	c := make(chan error, 1)
	go func() {
		err := <-a
		if err2 := <-b; err == nil {
			err = err2
		}
		c <- err
	}()
	return c
}

// Size returns the number of events recorded (durable or queued).
func (r *Recorder) Size() uint64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.tree.Size()
}

// Root returns the Merkle root over the events recorded so far.
func (r *Recorder) Root() []byte {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.tree.Root()
}

// Close waits for queued events and closes the store. It does not append a
// checkpoint: call Checkpoint first at the end of a plan.
func (r *Recorder) Close() error {
	r.mu.Lock()
	r.closed = true
	r.mu.Unlock()
	return r.store.Close()
}

// CanCheckpoint reports whether the recorder has a signer, so that
// Checkpoint can sign.
func (r *Recorder) CanCheckpoint() bool { return r.signer != nil }

// LastCheckpoint returns the latest checkpoint recorded in the chain (the
// one found when the store was opened, or signed since), nil when there
// is none.
func (r *Recorder) LastCheckpoint() *Checkpoint {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.last
}

// Verify reads back every durable record of the recorder's store and
// verifies it as VerifyTree does: from the stored bytes, not from what the
// recorder holds in memory, so damage done to the store since it was
// opened shows. With a nil verifier, checkpoint signatures are not checked
// (their sizes and roots are). Appends may go on meanwhile; the events
// made durable after the read began may or may not be verified.
func (r *Recorder) Verify(verifier note.Verifier) (*Tree, *Report, error) {
	st := newState(verifier, verifier != nil)
	err := r.store.Records(func(_ uint64, data []byte) error {
		_, err := st.add(data)
		return err
	})
	return st.tree, st.finish(), err
}

// Prove is ProveInclusion on the recorder's store.
func (r *Recorder) Prove(verifier note.Verifier, index uint64) (*Inclusion, error) {
	return ProveInclusion(r.store, verifier, index)
}

// Events returns the recorded events from sequence number from on (those
// durable in the store), decoded; earlier records are read but not
// decoded. Receipts of a run use it with the size before the run.
func (r *Recorder) Events(from uint64) ([]*Event, error) {
	var out []*Event
	err := r.store.Records(func(seq uint64, data []byte) error {
		if seq < from {
			return nil
		}
		e, err := Decode(data)
		if err != nil {
			return &VerifyError{seq, err}
		}
		out = append(out, e)
		return nil
	})
	return out, err
}

// InclusionProof returns the RFC 6962 inclusion proof of event index in
// the tree of the first size events.
func (r *Recorder) InclusionProof(index, size uint64) ([][]byte, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.tree.InclusionProof(index, size)
}
