package chain

import (
	"bytes"
	"errors"
	"fmt"

	"golang.org/x/mod/sumdb/note"
)

// The verification errors, carried by a *VerifyError.
var (
	ErrSeq            = errors.New("sequence number out of order")
	ErrParent         = errors.New("parent hash does not match the previous event")
	ErrCheckpointSize = errors.New("checkpoint size is not the checkpoint's sequence number")
	ErrCheckpointRoot = errors.New("checkpoint root does not match the recomputed tree")
	ErrNoVerifier     = errors.New("chain has checkpoints but no verifier key was given")
	// ErrCheckpointUnbound: a checkpoint event whose signed body does not
	// bind the event (its time, id and other fields could be rewritten
	// without breaking the signature).
	ErrCheckpointUnbound = errors.New("checkpoint does not bind its own event (no ccos-event line)")
	// ErrCheckpointEvent: the checkpoint event's fields are not those its
	// signature covers: the event was rewritten.
	ErrCheckpointEvent = errors.New("checkpoint event's fields differ from those its signature covers")
)

// VerifyError is the first damage found in a chain: Seq is the sequence
// number of the first event that does not verify.
type VerifyError struct {
	Seq uint64
	Err error
}

func (e *VerifyError) Error() string { return fmt.Sprintf("seq %d: %v", e.Seq, e.Err) }
func (e *VerifyError) Unwrap() error { return e.Err }

// Report summarizes a verified chain.
type Report struct {
	Events      uint64      // number of events
	Root        []byte      // Merkle root of all events
	Head        Hash        // hash of the last event (zero when empty)
	Checkpoints int         // checkpoints found (and verified)
	Last        *Checkpoint // the latest checkpoint, nil if none
	// UnsignedTail counts the events after the latest checkpoint event
	// (every event when there is none): no signature covers them, only
	// the hash chain, which whoever can write the chain can extend. A
	// verified chain with an unsigned tail is not a signed chain.
	UnsignedTail uint64
}

// state replays a chain: it checks each record and grows the tree.
type state struct {
	tree     *Tree
	head     Hash
	verifier note.Verifier // nil: check checkpoint bodies only
	sigs     bool          // verify checkpoint signatures
	report   Report
}

func newState(v note.Verifier, sigs bool) *state {
	return &state{tree: NewTree(), verifier: v, sigs: sigs}
}

// add checks the record that should be event number tree.Size().
func (st *state) add(data []byte) (*Event, error) {
	seq := st.tree.Size()
	fail := func(err error) (*Event, error) { return nil, &VerifyError{seq, err} }
	e, err := Decode(data)
	if err != nil {
		return fail(err)
	}
	if e.Seq != seq {
		return fail(fmt.Errorf("%w: record says %d", ErrSeq, e.Seq))
	}
	if e.Parent != st.head {
		return fail(ErrParent)
	}
	if e.Type == TypeCheckpoint {
		if err := st.checkpoint(e); err != nil {
			return fail(err)
		}
	}
	st.tree.Append(LeafHash(data))
	st.head = HashOf(data)
	st.report.Events = seq + 1
	return e, nil
}

func (st *state) checkpoint(e *Event) error {
	msg, err := checkpointNote(e)
	if err != nil {
		return err
	}
	var c *Checkpoint
	if st.sigs {
		if st.verifier == nil {
			return ErrNoVerifier
		}
		if c, err = OpenCheckpoint(msg, st.verifier); err != nil {
			return err
		}
	} else {
		i := bytes.LastIndex(msg, []byte("\n\n"))
		if i < 0 {
			return fmt.Errorf("%w: no signature block", ErrCheckpointFormat)
		}
		if c, err = ParseCheckpointBody(string(msg[:i+1])); err != nil {
			return err
		}
		c.Note = msg
	}
	if c.Size != e.Seq {
		return fmt.Errorf("%w: size %d", ErrCheckpointSize, c.Size)
	}
	if c.Event.IsZero() {
		return ErrCheckpointUnbound
	}
	if binding, err := EventBinding(e); err != nil || binding != c.Event {
		return ErrCheckpointEvent
	}
	if !bytes.Equal(c.Root, st.tree.Root()) {
		return ErrCheckpointRoot
	}
	st.report.Checkpoints++
	st.report.Last = c
	return nil
}

func (st *state) finish() *Report {
	r := st.report
	r.Root = st.tree.Root()
	r.Head = st.head
	r.UnsignedTail = r.Events
	if r.Last != nil {
		r.UnsignedTail = r.Events - r.Last.Size - 1
	}
	return &r
}

// Verify reads every record of s and recomputes everything: it decodes
// each event strictly, checks its sequence number and parent hash, rebuilds
// the Merkle tree, and checks every checkpoint's signature with verifier,
// its size and root against the rebuilt tree, and its binding of the
// checkpoint event itself. A chain with checkpoints needs a verifier
// (ErrNoVerifier). The first damage is returned as a *VerifyError naming
// its sequence number (or a *RecordError from the store). Events after the
// latest checkpoint are not damage but are not signed either: the Report
// counts them (UnsignedTail), and a caller that wants a signed chain must
// check that count.
func Verify(s Store, verifier note.Verifier) (*Report, error) {
	_, rep, err := VerifyTree(s, verifier)
	return rep, err
}

// VerifyTree is Verify that also returns the rebuilt tree (up to the first
// damage), for proofs and checks against checkpoints kept elsewhere.
func VerifyTree(s Store, verifier note.Verifier) (*Tree, *Report, error) {
	st := newState(verifier, true)
	err := s.Records(func(seq uint64, data []byte) error {
		_, err := st.add(data)
		return err
	})
	return st.tree, st.finish(), err
}

// Load reads every record of s into a tree, checking hashes, parents and
// checkpoint roots (signatures only when verifier is not nil), and returns
// the events with the tree. ccos chain show and prove use it.
func Load(s Store, verifier note.Verifier) ([]*Event, *Tree, *Report, error) {
	st := newState(verifier, verifier != nil)
	var events []*Event
	err := s.Records(func(seq uint64, data []byte) error {
		e, err := st.add(data)
		if err == nil {
			events = append(events, e)
		}
		return err
	})
	return events, st.tree, st.finish(), err
}

// ErrChainShorter means a chain has fewer events than a checkpoint signed
// for it: events were removed from its end.
var ErrChainShorter = errors.New("chain is shorter than the checkpoint")

// CheckCheckpoint checks a chain's tree against a checkpoint kept
// elsewhere (already opened with OpenCheckpoint): the tree must have at
// least its size, and the root of its first Size leaves must be its root.
// A removed tail or a rewrite anywhere before Size fails.
func CheckCheckpoint(t *Tree, c *Checkpoint) error {
	if c.Size > t.Size() {
		return fmt.Errorf("%w: %d events, checkpoint size %d", ErrChainShorter, t.Size(), c.Size)
	}
	root, err := t.RootAt(c.Size)
	if err != nil {
		return err
	}
	if !bytes.Equal(root, c.Root) {
		return fmt.Errorf("%w (size %d)", ErrCheckpointRoot, c.Size)
	}
	return nil
}
