package chain

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

// TestSQLiteDurableSettings checks that the SQLite store really runs in
// WAL mode with synchronous=FULL (2), which makes every commit durable.
func TestSQLiteDurableSettings(t *testing.T) {
	s, err := OpenSQLite(filepath.Join(t.TempDir(), "c.db"), SQLiteOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var mode string
	var sync int
	if err := s.db.QueryRow("PRAGMA journal_mode").Scan(&mode); err != nil {
		t.Fatal(err)
	}
	if err := s.db.QueryRow("PRAGMA synchronous").Scan(&sync); err != nil {
		t.Fatal(err)
	}
	if mode != "wal" || sync != 2 {
		t.Fatalf("journal_mode=%s synchronous=%d, want wal and 2", mode, sync)
	}
}

func TestStoreOpenErrors(t *testing.T) {
	dir := t.TempDir()
	notChain := filepath.Join(dir, "x")
	os.WriteFile(notChain, []byte("hello world, not a chain"), 0o644)
	if _, err := OpenFile(notChain, FileOptions{}); !errors.Is(err, ErrNotChain) {
		t.Fatalf("non-chain file: %v", err)
	}
	if _, err := OpenReadOnly(StorageAppendFile, filepath.Join(dir, "missing")); err == nil {
		t.Fatal("read-only open of a missing file succeeded")
	}
	if _, err := OpenReadOnly(StorageSQLite, filepath.Join(dir, "missing.db")); err == nil {
		t.Fatal("read-only open of a missing database succeeded")
	}
	if _, err := OpenReadOnly(StorageSQLite, notChain); !errors.Is(err, ErrNotChain) {
		t.Fatalf("non-database: %v", err)
	}
	if _, err := OpenReadOnly(StorageAppendFile, filepath.Join(dir, "c")); err == nil {
		t.Fatal("read-only open created a file")
	}
	w, _ := OpenFile(filepath.Join(dir, "c"), FileOptions{})
	w.Close()
	s, err := OpenReadOnly(StorageAppendFile, filepath.Join(dir, "c"))
	if err != nil {
		t.Fatal(err)
	}
	if err := <-s.Append([]byte("x")); !errors.Is(err, ErrReadOnly) {
		t.Fatalf("append to a read-only store: %v", err)
	}
	s.Close()
	if err := <-w.Append([]byte("x")); !errors.Is(err, ErrClosed) {
		t.Fatalf("append to a closed store: %v", err)
	}
	for path, want := range map[string]Mode{"a.db": StorageSQLite, "b.SQLITE": StorageSQLite, "c.chain": StorageAppendFile, "d": StorageAppendFile} {
		if got := ModeForPath(path); got != want {
			t.Errorf("ModeForPath(%s) = %s", path, got)
		}
	}
}

// TestSQLiteTamperDetected rewrites, deletes and reorders rows behind the
// store's back: Verify names the first bad sequence number.
func TestSQLiteTamperDetected(t *testing.T) {
	signer, verifier := testKey(t)
	dir := t.TempDir()
	build := func(name string) *SQLiteStore {
		path := filepath.Join(dir, name)
		s, _ := OpenSQLite(path, SQLiteOptions{})
		rec, err := NewRecorder(s, signer, Options{CheckpointEvery: 4})
		if err != nil {
			t.Fatal(err)
		}
		for i := 0; i < 10; i++ {
			if _, err := rec.Append(context.Background(), testEvent(i)); err != nil {
				t.Fatal(err)
			}
		}
		rec.Close()
		s, err = OpenSQLite(path, SQLiteOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	other := mustEncode(t, &Event{Seq: 3, Origin: OriginHost, Type: TypeStepStarted, ID: "forged"})
	tests := []struct {
		name string
		sql  string
		args []any
		seq  uint64
		want error
	}{
		{"rewritten row", `UPDATE events SET data = ? WHERE seq = 3`, []any{other}, 3, ErrParent},
		{"deleted row", `DELETE FROM events WHERE seq = 6`, nil, 6, ErrCorrupt},
		{"garbage row", `UPDATE events SET data = x'00' WHERE seq = 1`, nil, 1, ErrTruncated},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := build(fmt.Sprintf("t%d.db", i))
			defer s.Close()
			if _, err := s.db.Exec(tc.sql, tc.args...); err != nil {
				t.Fatal(err)
			}
			_, err := Verify(s, verifier)
			if !errors.Is(err, tc.want) {
				t.Fatalf("Verify: %v, want %v", err, tc.want)
			}
			var ve *VerifyError
			var re *RecordError
			switch {
			case errors.As(err, &ve) && ve.Seq == tc.seq, errors.As(err, &re) && re.Seq == tc.seq:
			default:
				t.Fatalf("Verify: %v, want seq %d", err, tc.seq)
			}
		})
	}
}
