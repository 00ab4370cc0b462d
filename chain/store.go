package chain

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
)

// Mode is a :causal_chain :storage :mode.
type Mode string

// The storage modes. StorageVsockStream (streaming to the host) is not a
// store of this package.
const (
	StorageInMemory   Mode = "in_memory"
	StorageAppendFile Mode = "append_file"
	StorageSQLite     Mode = "sqlite"
)

// Store keeps encoded events in order.
type Store interface {
	// Append queues data (a canonical event encoding) as the next record and
	// returns a channel that receives nil once the record is durable, or the
	// error that prevented it. Calls to Append must not overlap (the
	// Recorder serializes them); waiting on the channels may.
	Append(data []byte) <-chan error
	// Records calls fn with every committed record in order, stopping at the
	// first error fn returns.
	Records(fn func(seq uint64, data []byte) error) error
	// Close waits for queued records and releases the store.
	Close() error
}

// The store errors.
var (
	ErrUnknownMode = errors.New("chain: unknown storage mode")
	ErrClosed      = errors.New("chain: store closed")
	ErrReadOnly    = errors.New("chain: store opened read-only")
	ErrNotChain    = errors.New("chain: not a ccos chain file")
	ErrCorrupt     = errors.New("chain: corrupt record")
	ErrTornTail    = errors.New("chain: torn tail (incomplete last record)")
)

// Open opens (creating if needed) a store for writing: in_memory ignores
// path; append_file and sqlite open the file at path. A torn tail of an
// append file is truncated; see (*FileStore).Recovered.
func Open(mode Mode, path string) (Store, error) {
	switch mode {
	case StorageInMemory:
		return NewMemoryStore(), nil
	case StorageAppendFile:
		return OpenFile(path, FileOptions{})
	case StorageSQLite:
		return OpenSQLite(path, SQLiteOptions{})
	}
	return nil, fmt.Errorf("%w %q", ErrUnknownMode, mode)
}

// MemoryStore keeps records in memory; Append is durable for the life of
// the process only.
type MemoryStore struct {
	mu      sync.Mutex
	records [][]byte
	closed  bool
}

// NewMemoryStore returns an empty in-memory store.
func NewMemoryStore() *MemoryStore { return &MemoryStore{} }

var doneNil = func() <-chan error { c := make(chan error, 1); c <- nil; close(c); return c }()

func errChan(err error) <-chan error {
	c := make(chan error, 1)
	c <- err
	return c
}

// Append stores a copy of data.
func (m *MemoryStore) Append(data []byte) <-chan error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return errChan(ErrClosed)
	}
	m.records = append(m.records, append([]byte(nil), data...))
	return doneNil
}

// Records calls fn with every record.
func (m *MemoryStore) Records(fn func(uint64, []byte) error) error {
	m.mu.Lock()
	recs := m.records
	m.mu.Unlock()
	for i, r := range recs {
		if err := fn(uint64(i), r); err != nil {
			return err
		}
	}
	return nil
}

// Close marks the store closed.
func (m *MemoryStore) Close() error {
	m.mu.Lock()
	m.closed = true
	m.mu.Unlock()
	return nil
}

// OpenReadOnly opens an existing append_file or sqlite store for reading:
// nothing is truncated or created, and damage is reported by Records (and
// so by Verify) at the first bad record.
func OpenReadOnly(mode Mode, path string) (Store, error) {
	switch mode {
	case StorageAppendFile:
		return OpenFile(path, FileOptions{ReadOnly: true})
	case StorageSQLite:
		if _, err := os.Stat(path); err != nil {
			return nil, fmt.Errorf("chain: %w", err)
		}
		return OpenSQLite(path, SQLiteOptions{ReadOnly: true})
	}
	return nil, fmt.Errorf("%w %q", ErrUnknownMode, mode)
}

// ModeForPath guesses a file's store from its name: sqlite for .db and
// .sqlite, append_file otherwise.
func ModeForPath(path string) Mode {
	switch strings.ToLower(filepath.Ext(path)) {
	case ".db", ".sqlite":
		return StorageSQLite
	}
	return StorageAppendFile
}
