package chain

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/mod/sumdb/note"
)

// A live recorder proves any event its latest checkpoint covers, refuses
// the others by name, remembers its latest checkpoint across a reopen,
// and its Verify reads the stored bytes: a byte changed on disk under it
// is found at the event it belongs to.
func TestRecorderProveAndVerify(t *testing.T) {
	signer, verifier := testKey(t)
	path := filepath.Join(t.TempDir(), "c.chain")
	s, err := OpenFile(path, FileOptions{})
	if err != nil {
		t.Fatal(err)
	}
	rec, err := NewRecorder(s, signer, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { rec.Close() }()
	ctx := context.Background()
	if rec.LastCheckpoint() != nil {
		t.Error("a new chain has a checkpoint")
	}
	for i := 0; i < 9; i++ {
		if _, err := rec.Append(ctx, testEvent(i)); err != nil {
			t.Fatal(err)
		}
	}
	cp, err := rec.Checkpoint(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if got := rec.LastCheckpoint(); got == nil || got.Size != 9 {
		t.Fatalf("last checkpoint %+v", got)
	}
	rec.Append(ctx, testEvent(9)) // seq 10, after the checkpoint (seq 9)
	for _, tc := range []struct {
		name string
		v    note.Verifier
	}{{"signed", verifier}, {"unsigned", nil}} {
		t.Run(tc.name, func(t *testing.T) {
			inc, err := rec.Prove(tc.v, 4)
			if err != nil {
				t.Fatal(err)
			}
			if inc.Event.Step != "step-4" || inc.Checkpoint.Size != cp.Size || inc.SignatureChecked != (tc.v != nil) {
				t.Errorf("proof %+v", inc)
			}
			if err := VerifyInclusion(4, cp.Size, inc.LeafHash, inc.Proof, cp.Root); err != nil {
				t.Error(err)
			}
		})
	}
	if _, err := rec.Prove(verifier, 10); !errors.Is(err, ErrNotCovered) {
		t.Errorf("event after the checkpoint: %v", err)
	}
	if _, err := rec.Prove(verifier, 11); !errors.Is(err, ErrNoEvent) {
		t.Errorf("event past the end: %v", err)
	}
	if _, rep, err := rec.Verify(verifier); err != nil || rep.Events != 11 || rep.Checkpoints != 1 {
		t.Fatalf("verify: %v %+v", err, rep)
	}

	// Change one byte of event 3's payload on disk.
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	offs := recordOffsets(b)
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	at := offs[3] + 20
	if _, err := f.WriteAt([]byte{b[at] ^ 0x01}, int64(at)); err != nil {
		t.Fatal(err)
	}
	f.Close()
	_, _, err = rec.Verify(verifier)
	var re *RecordError
	if !errors.As(err, &re) || re.Seq != 3 {
		t.Errorf("verify after tampering: %v", err)
	}
	if _, err := rec.Prove(verifier, 1); err == nil {
		t.Error("a proof was given from a damaged chain")
	}

	// Reopened (the damage undone), the recorder knows its checkpoint.
	os.WriteFile(path, b, 0o644)
	rec.Close()
	s2, err := OpenFile(path, FileOptions{})
	if err != nil {
		t.Fatal(err)
	}
	rec, err = NewRecorder(s2, signer, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if got := rec.LastCheckpoint(); got == nil || got.Size != 9 {
		t.Errorf("last checkpoint after reopening: %+v", got)
	}
}
