package chain

import (
	"errors"
	"fmt"

	"golang.org/x/mod/sumdb/note"
)

// The proof errors.
var (
	// ErrNoEvent: the chain has no event at the index asked for.
	ErrNoEvent = errors.New("chain: no event")
	// ErrNotCovered: the event is not covered by a checkpoint yet (it
	// was recorded after the latest one, or the chain has none).
	ErrNotCovered = errors.New("not covered by a checkpoint yet")
)

// Inclusion is the RFC 6962 inclusion proof of one event in the tree a
// checkpoint signs, checked against the checkpoint's root.
type Inclusion struct {
	Index uint64
	// Event is the event at Index, decoded.
	Event *Event
	// LeafHash is the leaf hash of its encoding; Proof the sibling hashes
	// from the leaf up to the root of Checkpoint.Size leaves.
	LeafHash []byte
	Proof    [][]byte
	// Checkpoint is the latest checkpoint of the chain.
	Checkpoint *Checkpoint
	// SignatureChecked is set when the checkpoint's signature was checked
	// with a verifier; without one only its size and root were.
	SignatureChecked bool
}

// ProveInclusion reads the chain of s (checking it as Load does: hashes,
// parents and checkpoint roots, signatures when verifier is not nil) and
// returns the inclusion proof of the event at index against the latest
// checkpoint, after checking the proof. An index past the end is
// ErrNoEvent; an event after the latest checkpoint is ErrNotCovered.
func ProveInclusion(s Store, verifier note.Verifier, index uint64) (*Inclusion, error) {
	st := newState(verifier, verifier != nil)
	var ev *Event
	err := s.Records(func(seq uint64, data []byte) error {
		e, err := st.add(data)
		if err == nil && seq == index {
			ev = e
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	rep := st.finish()
	cp := rep.Last
	switch {
	case index >= rep.Events:
		return nil, fmt.Errorf("%w %d (the chain holds %d)", ErrNoEvent, index, rep.Events)
	case cp == nil:
		return nil, fmt.Errorf("chain: event %d is %w: the chain has no checkpoint", index, ErrNotCovered)
	case index >= cp.Size:
		return nil, fmt.Errorf("chain: event %d is %w: the latest checkpoint covers events 0 to %d", index, ErrNotCovered, cp.Size-1)
	}
	leaf, err := st.tree.LeafHashAt(index)
	if err != nil {
		return nil, err
	}
	p, err := st.tree.InclusionProof(index, cp.Size)
	if err != nil {
		return nil, err
	}
	if err := VerifyInclusion(index, cp.Size, leaf, p, cp.Root); err != nil {
		return nil, fmt.Errorf("chain: the inclusion proof of event %d does not verify: %w", index, err)
	}
	return &Inclusion{Index: index, Event: ev, LeafHash: leaf, Proof: p, Checkpoint: cp, SignatureChecked: verifier != nil}, nil
}

// BadSeq returns the sequence number of the first bad event a
// verification error names (a *VerifyError, or a *RecordError of a
// store).
func BadSeq(err error) (uint64, bool) {
	var ve *VerifyError
	if errors.As(err, &ve) {
		return ve.Seq, true
	}
	var re *RecordError
	if errors.As(err, &re) {
		return re.Seq, true
	}
	return 0, false
}
