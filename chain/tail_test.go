package chain

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/ccos-project/ccos/rtfs"
)

// recordSigned records n events and a checkpoint in a memory store.
func recordSigned(t *testing.T, n int) (*MemoryStore, *Recorder) {
	t.Helper()
	signer, _ := testKey(t)
	store := NewMemoryStore()
	rec, err := NewRecorder(store, signer, Options{})
	if err != nil {
		t.Fatal(err)
	}
	for i := range n {
		if _, err := rec.Append(context.Background(), testEvent(i)); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := rec.Checkpoint(context.Background()); err != nil {
		t.Fatal(err)
	}
	return store, rec
}

// records returns a copy of every encoded event of a store.
func records(t *testing.T, s Store) [][]byte {
	t.Helper()
	var out [][]byte
	if err := s.Records(func(_ uint64, data []byte) error {
		out = append(out, append([]byte(nil), data...))
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return out
}

func storeOf(t *testing.T, recs [][]byte) *MemoryStore {
	t.Helper()
	s := NewMemoryStore()
	for _, r := range recs {
		if err := <-s.Append(r); err != nil {
			t.Fatal(err)
		}
	}
	return s
}

// TestUnsignedTail: a host event appended after the last checkpoint (as a
// forger with write access to the chain would, linking it correctly) does
// not break the hash chain, but Verify reports it as unsigned.
func TestUnsignedTail(t *testing.T) {
	signer, verifier := testKey(t)
	store := NewMemoryStore()
	rec, err := NewRecorder(store, signer, Options{})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for i := range 3 {
		rec.Append(ctx, testEvent(i))
	}
	rec.Checkpoint(ctx)
	rep, err := Verify(store, verifier)
	if err != nil || rep.UnsignedTail != 0 || rep.Checkpoints != 1 {
		t.Fatalf("signed chain: %+v, %v", rep, err)
	}
	// The forger appends through a recorder without a key: the event is
	// linked and hashed like any other.
	forger, err := NewRecorder(store, nil, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := forger.Append(ctx, Event{Type: TypePlanFinished, Step: "approve", Payload: rtfs.String{V: "all steps approved"}}); err != nil {
		t.Fatal(err)
	}
	rep, err = Verify(store, verifier)
	if err != nil || rep.UnsignedTail != 1 || rep.Events != 5 {
		t.Fatalf("forged tail: %+v, %v; want 1 unsigned event of 5", rep, err)
	}
	// Without any checkpoint every event is unsigned.
	bare := NewMemoryStore()
	plain, _ := NewRecorder(bare, nil, Options{})
	plain.Append(ctx, testEvent(0))
	plain.Append(ctx, testEvent(1))
	if rep, err := Verify(bare, nil); err != nil || rep.UnsignedTail != 2 {
		t.Fatalf("no checkpoint: %+v, %v", rep, err)
	}
}

// TestRewrittenCheckpointEvent: the checkpoint event's own fields are
// covered by its signature; rewriting any of them (the time, the id, the
// session) fails verification at that event.
func TestRewrittenCheckpointEvent(t *testing.T) {
	store, _ := recordSigned(t, 3)
	recs := records(t, store)
	last := len(recs) - 1
	for _, c := range []struct {
		name   string
		change func(*Event)
	}{
		{"time", func(e *Event) { e.Time = e.Time.Add(-time.Hour) }},
		{"id", func(e *Event) { e.ID = "forged" }},
		{"session", func(e *Event) { e.Session = "other-session" }},
		{"origin", func(e *Event) { e.Origin = OriginGuest }},
	} {
		t.Run(c.name, func(t *testing.T) {
			e, err := Decode(recs[last])
			if err != nil {
				t.Fatal(err)
			}
			c.change(e)
			data, err := Encode(e)
			if err != nil {
				t.Fatal(err)
			}
			forged := append(append([][]byte(nil), recs[:last]...), data)
			// The signature itself still verifies (only the body is
			// signed), so the binding is what catches the rewrite.
			_, _, _, err = Load(storeOf(t, forged), nil)
			var ve *VerifyError
			if !errors.Is(err, ErrCheckpointEvent) || !errors.As(err, &ve) || ve.Seq != uint64(last) {
				t.Fatalf("err = %v, want ErrCheckpointEvent at seq %d", err, last)
			}
		})
	}
}

// TestUnboundCheckpointRefused: a checkpoint whose body does not bind its
// event (a plain three-line C2SP body) is refused in a chain.
func TestUnboundCheckpointRefused(t *testing.T) {
	signer, verifier := testKey(t)
	store := NewMemoryStore()
	rec, _ := NewRecorder(store, nil, Options{})
	rec.Append(context.Background(), testEvent(0))
	c, err := SignCheckpoint(signer, 1, rec.Root(), Hash{})
	if err != nil {
		t.Fatal(err)
	}
	e := &Event{Seq: 1, Time: time.Unix(1, 0).UTC(), Origin: OriginHost, Parent: rec.head, Type: TypeCheckpoint, ID: "cp", Payload: rtfs.String{V: string(c.Note)}}
	data, err := Encode(e)
	if err != nil {
		t.Fatal(err)
	}
	<-store.Append(data)
	if _, err := Verify(store, verifier); !errors.Is(err, ErrCheckpointUnbound) {
		t.Fatalf("err = %v, want ErrCheckpointUnbound", err)
	}
}
