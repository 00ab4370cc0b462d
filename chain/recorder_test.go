package chain

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/ccos-project/ccos/rtfs"
	"golang.org/x/mod/sumdb/note"
)

// testKey returns a signer and its verifier named ccos.test/chain.
func testKey(t testing.TB) (note.Signer, note.Verifier) {
	t.Helper()
	skey, vkey, err := GenerateKey("ccos.test/chain")
	if err != nil {
		t.Fatal(err)
	}
	s, err := ParseSigner(skey)
	if err != nil {
		t.Fatal(err)
	}
	v, err := ParseVerifier(vkey)
	if err != nil {
		t.Fatal(err)
	}
	return s, v
}

func testEvent(i int) Event {
	return Event{
		Type:    TypeStepStarted,
		Session: "session-1",
		Plan:    "plan-1",
		Step:    fmt.Sprintf("step-%d", i),
		Payload: rtfs.MapOf(rtfs.Keyword{Name: "i"}, rtfs.Int{V: int64(i)}),
	}
}

// storesUnderTest opens one store of each mode in a fresh directory.
func storesUnderTest(t *testing.T) map[Mode]func() Store {
	dir := t.TempDir()
	open := func(mode Mode, path string) func() Store {
		return func() Store {
			s, err := Open(mode, path)
			if err != nil {
				t.Fatal(err)
			}
			return s
		}
	}
	mem := NewMemoryStore()
	return map[Mode]func() Store{
		StorageInMemory:   func() Store { mem.closed = false; return mem },
		StorageAppendFile: open(StorageAppendFile, filepath.Join(dir, "c.chain")),
		StorageSQLite:     open(StorageSQLite, filepath.Join(dir, "c.db")),
	}
}

func TestRecorderStores(t *testing.T) {
	signer, verifier := testKey(t)
	for mode, open := range storesUnderTest(t) {
		t.Run(string(mode), func(t *testing.T) {
			ctx := context.Background()
			rec, err := NewRecorder(open(), signer, Options{CheckpointEvery: 5})
			if err != nil {
				t.Fatal(err)
			}
			for i := 0; i < 12; i++ {
				if _, err := rec.Append(ctx, testEvent(i)); err != nil {
					t.Fatal(err)
				}
			}
			c, err := rec.Checkpoint(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if err := rec.Close(); err != nil {
				t.Fatal(err)
			}
			// 12 events, automatic checkpoints after 5 and 10 events, and the
			// final one.
			if c.Size != 14 {
				t.Fatalf("checkpoint size %d, want 14", c.Size)
			}
			// Reopen, append more, verify all.
			rec, err = NewRecorder(open(), signer, Options{})
			if err != nil {
				t.Fatal(err)
			}
			seq, err := rec.Append(ctx, Event{Type: TypeGuestEvent, Origin: OriginGuest, Payload: rtfs.String{V: "claim"}})
			if err != nil || seq != 15 {
				t.Fatalf("append after reopen: %d, %v", seq, err)
			}
			if _, err := rec.Checkpoint(ctx); err != nil {
				t.Fatal(err)
			}
			root := rec.Root()
			rec.Close()
			s := open()
			defer s.Close()
			rep, err := Verify(s, verifier)
			if err != nil {
				t.Fatal(err)
			}
			if rep.Events != 17 || rep.Checkpoints != 4 || !bytes.Equal(rep.Root, root) || rep.Last.Size != 16 {
				t.Fatalf("report %+v", rep)
			}
			events, _, _, err := Load(s, verifier)
			if err != nil {
				t.Fatal(err)
			}
			if events[15].Origin != OriginGuest || events[15].Type != TypeGuestEvent || events[3].Step != "step-3" {
				t.Fatalf("events read back wrong: %+v", events[15])
			}
		})
	}
}

func TestRecorderConcurrentAppends(t *testing.T) {
	signer, verifier := testKey(t)
	for mode, open := range storesUnderTest(t) {
		t.Run(string(mode), func(t *testing.T) {
			rec, err := NewRecorder(open(), signer, Options{CheckpointEvery: 50})
			if err != nil {
				t.Fatal(err)
			}
			var wg sync.WaitGroup
			seqs := make(chan uint64, 400)
			for w := 0; w < 8; w++ {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for i := 0; i < 50; i++ {
						seq, err := rec.Append(context.Background(), testEvent(i))
						if err != nil {
							t.Error(err)
							return
						}
						seqs <- seq
					}
				}()
			}
			wg.Wait()
			close(seqs)
			seen := map[uint64]bool{}
			for s := range seqs {
				if seen[s] {
					t.Fatalf("seq %d returned twice", s)
				}
				seen[s] = true
			}
			rec.Close()
			s := open()
			defer s.Close()
			rep, err := Verify(s, verifier)
			if err != nil {
				t.Fatal(err)
			}
			if rep.Events != 400+8 {
				t.Fatalf("%d events, want 408", rep.Events)
			}
		})
	}
}

func TestRecorderErrors(t *testing.T) {
	ctx := context.Background()
	rec, err := NewRecorder(NewMemoryStore(), nil, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := rec.Checkpoint(ctx); !errors.Is(err, ErrNoSigner) {
		t.Fatalf("checkpoint without signer: %v", err)
	}
	if _, err := rec.Append(ctx, Event{Type: "made.up"}); !errors.Is(err, ErrUnknownType) {
		t.Fatalf("unknown type: %v", err)
	}
	if _, err := rec.Append(ctx, Event{Type: TypeCheckpoint, Payload: rtfs.String{V: "forged"}}); !errors.Is(err, ErrReserved) {
		t.Fatalf("checkpoint through Append: %v", err)
	}
	if rec.Size() != 0 {
		t.Fatalf("a rejected event was counted")
	}
	rec.Close()
	if _, err := rec.Append(ctx, testEvent(0)); !errors.Is(err, ErrClosed) {
		t.Fatalf("append after close: %v", err)
	}
	if _, err := Open("tape", "x"); !errors.Is(err, ErrUnknownMode) {
		t.Fatalf("unknown mode: %v", err)
	}
}

func TestRecorderStampsHostFields(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 6, time.FixedZone("x", 3600))
	store := NewMemoryStore()
	rec, _ := NewRecorder(store, nil, Options{Now: func() time.Time { return now }})
	if _, err := rec.Append(context.Background(), Event{Type: TypePlanAdmitted, Seq: 99, Time: time.Unix(5, 0)}); err != nil {
		t.Fatal(err)
	}
	events, _, _, err := Load(store, nil)
	if err != nil {
		t.Fatal(err)
	}
	e := events[0]
	if e.Seq != 0 || !e.Time.Equal(now) || e.Time.Location() != time.UTC || e.Origin != OriginHost || len(e.ID) != 36 || !e.Parent.IsZero() {
		t.Fatalf("host fields not stamped: %+v", e)
	}
}

func TestRecorderCheckpointInterval(t *testing.T) {
	signer, _ := testKey(t)
	now := time.Unix(1000, 0)
	rec, _ := NewRecorder(NewMemoryStore(), signer, Options{CheckpointInterval: time.Minute, Now: func() time.Time { return now }})
	ctx := context.Background()
	rec.Append(ctx, testEvent(0))
	now = now.Add(2 * time.Minute)
	rec.Append(ctx, testEvent(1))
	if rec.Size() != 3 {
		t.Fatalf("size %d, want 3 (two events and a checkpoint)", rec.Size())
	}
}

func TestCheckpointFormat(t *testing.T) {
	signer, verifier := testKey(t)
	root := bytes.Repeat([]byte{7}, 32)
	c, err := SignCheckpoint(signer, 5, root, Hash{})
	if err != nil {
		t.Fatal(err)
	}
	body := "ccos.test/chain\n5\nBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwc=\n"
	if !bytes.HasPrefix(c.Note, []byte(body+"\n— ccos.test/chain ")) {
		t.Fatalf("note:\n%s", c.Note)
	}
	got, err := OpenCheckpoint(c.Note, verifier)
	if err != nil || got.Size != 5 || !bytes.Equal(got.Root, root) || got.Origin != "ccos.test/chain" {
		t.Fatalf("OpenCheckpoint: %+v, %v", got, err)
	}
	_, other := testKey(t)
	if _, err := OpenCheckpoint(c.Note, other); !errors.Is(err, ErrBadSignature) {
		t.Fatalf("wrong key: %v", err)
	}
	tampered := bytes.Replace(c.Note, []byte("\n5\n"), []byte("\n6\n"), 1)
	if _, err := OpenCheckpoint(tampered, verifier); !errors.Is(err, ErrBadSignature) {
		t.Fatalf("tampered body: %v", err)
	}
	bodies := []string{
		"o\n5\n",
		"o\n05\nBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwc=\n",
		"o\n-1\nBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwc=\n",
		"o\n5\nBwcH\n",
		"\n5\nBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwc=\n",
		"o\n5\nBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwc=\next\n",
	}
	for _, b := range bodies {
		if _, err := ParseCheckpointBody(b); !errors.Is(err, ErrCheckpointFormat) {
			t.Errorf("body %q: %v", b, err)
		}
	}
}

func TestKeys(t *testing.T) {
	skey, vkey, err := GenerateKey("ccos.example/log")
	if err != nil {
		t.Fatal(err)
	}
	if got, err := VerifierOf(skey + "\n"); err != nil || got != vkey {
		t.Fatalf("VerifierOf = %q, %v; want %q", got, err, vkey)
	}
	dir := t.TempDir()
	if err := WriteKeyFile(filepath.Join(dir, "k"), skey, 0o600); err != nil {
		t.Fatal(err)
	}
	if s, err := ReadSignerFile(filepath.Join(dir, "k")); err != nil || s.Name() != "ccos.example/log" {
		t.Fatalf("ReadSignerFile: %v", err)
	}
	for _, bad := range []string{"", "PRIVATE+KEY+x", vkey} {
		if _, err := ParseSigner(bad); !errors.Is(err, ErrKeyFile) {
			t.Errorf("ParseSigner(%q): %v", bad, err)
		}
	}
	if _, err := ParseVerifier(skey); !errors.Is(err, ErrKeyFile) {
		t.Errorf("ParseVerifier(signer): %v", err)
	}
	if _, _, err := GenerateKey("bad name"); err == nil {
		t.Errorf("GenerateKey accepted a name with a space")
	}
}

// TestWriteKeyFileLeftovers: a leftover "<key>.tmp" (mode 0644, say, from
// an older ccos that wrote through that fixed name) or a symbolic link
// planted under that name neither widens the key's mode nor is written
// through.
func TestWriteKeyFileLeftovers(t *testing.T) {
	skey, _, err := GenerateKey("ccos.example/log")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	key := filepath.Join(dir, "k")
	if err := os.WriteFile(key+".tmp", []byte("old"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := WriteKeyFile(key, skey, 0o600); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(key); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("key file: %v %v, want mode 0600", fi.Mode(), err)
	}
	victim := filepath.Join(t.TempDir(), "victim")
	if err := os.WriteFile(victim, []byte("victim"), 0o644); err != nil {
		t.Fatal(err)
	}
	key2 := filepath.Join(dir, "k2")
	if err := os.Symlink(victim, key2+".tmp"); err != nil {
		t.Fatal(err)
	}
	if err := WriteKeyFile(key2, skey, 0o600); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(victim); string(b) != "victim" {
		t.Fatalf("the key was written through the planted link: %q", b)
	}
	if s, err := ReadSignerFile(key2); err != nil || s.Name() != "ccos.example/log" {
		t.Fatalf("ReadSignerFile: %v", err)
	}
}

// TestRecorderReopenCountsTowardsCheckpoint: events after the last
// checkpoint of an earlier session count towards the next automatic one.
func TestRecorderReopenCountsTowardsCheckpoint(t *testing.T) {
	signer, _ := testKey(t)
	store := NewMemoryStore()
	ctx := context.Background()
	rec, _ := NewRecorder(store, signer, Options{CheckpointEvery: 3})
	for i := 0; i < 5; i++ { // 3 events, a checkpoint, 2 events
		rec.Append(ctx, testEvent(i))
	}
	rec2, err := NewRecorder(store, signer, Options{CheckpointEvery: 3})
	if err != nil {
		t.Fatal(err)
	}
	rec2.Append(ctx, testEvent(5))
	if rec2.Size() != 8 {
		t.Fatalf("size %d, want 8 (6 events, 2 checkpoints)", rec2.Size())
	}
}
