package chain

import (
	"context"
	"database/sql"
	"fmt"
	"net/url"
	"sync"

	"github.com/ccos-project/ccos/internal/groupcommit"
	_ "modernc.org/sqlite" // registers the "sqlite" database/sql driver
)

// SQLiteOptions tune the SQLite store.
type SQLiteOptions struct {
	// ReadOnly opens an existing database for reading only.
	ReadOnly bool
	// MaxBatch bounds how many records one transaction covers (0: no bound).
	MaxBatch int
}

// SQLiteStore is the sqlite store: one table events(seq, data) in WAL mode
// with synchronous=FULL, so that a commit is durable when it returns.
type SQLiteStore struct {
	db       *sql.DB
	readOnly bool
	commit   *groupcommit.Committer[[]byte]

	mu   sync.Mutex
	next uint64 // seq of the next record to write
}

// OpenSQLite opens (creating unless read-only) the SQLite store at path.
func OpenSQLite(path string, opts SQLiteOptions) (*SQLiteStore, error) {
	q := url.Values{}
	q.Add("_pragma", "busy_timeout(5000)")
	q.Add("_pragma", "journal_mode(WAL)")
	q.Add("_pragma", "synchronous(FULL)")
	if opts.ReadOnly {
		q.Add("mode", "ro")
	}
	db, err := sql.Open("sqlite", "file:"+(&url.URL{Path: path}).EscapedPath()+"?"+q.Encode())
	if err != nil {
		return nil, fmt.Errorf("chain: sqlite %s: %w", path, err)
	}
	db.SetMaxOpenConns(1)
	s := &SQLiteStore{db: db, readOnly: opts.ReadOnly}
	if !opts.ReadOnly {
		if _, err := db.Exec(`CREATE TABLE IF NOT EXISTS events (seq INTEGER PRIMARY KEY, data BLOB NOT NULL)`); err != nil {
			db.Close()
			return nil, fmt.Errorf("chain: sqlite %s: %w", path, err)
		}
	}
	var n sql.NullInt64
	if err := db.QueryRow(`SELECT MAX(seq) + 1 FROM events`).Scan(&n); err != nil {
		db.Close()
		return nil, fmt.Errorf("%w: %s: %w", ErrNotChain, path, err)
	}
	s.next = uint64(n.Int64)
	if !opts.ReadOnly {
		s.commit = groupcommit.New(opts.MaxBatch, ErrClosed, s.flush)
	}
	return s, nil
}

// Append queues a record; the channel reports when its transaction has
// committed.
func (s *SQLiteStore) Append(data []byte) <-chan error {
	if s.readOnly {
		return errChan(ErrReadOnly)
	}
	return s.commit.Append(data)
}

func (s *SQLiteStore) flush(batch [][]byte) error {
	tx, err := s.db.BeginTx(context.Background(), nil)
	if err != nil {
		return fmt.Errorf("chain: sqlite: %w", err)
	}
	st, err := tx.Prepare(`INSERT INTO events (seq, data) VALUES (?, ?)`)
	if err != nil {
		tx.Rollback()
		return fmt.Errorf("chain: sqlite: %w", err)
	}
	s.mu.Lock()
	next := s.next
	s.mu.Unlock()
	for i, d := range batch {
		if _, err := st.Exec(int64(next+uint64(i)), d); err != nil {
			st.Close()
			tx.Rollback()
			return fmt.Errorf("chain: sqlite: %w", err)
		}
	}
	st.Close()
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("chain: sqlite commit: %w", err)
	}
	s.mu.Lock()
	s.next += uint64(len(batch))
	s.mu.Unlock()
	return nil
}

// Records calls fn with every committed record in order. A gap in the
// sequence numbers is reported as a *RecordError (ErrCorrupt).
func (s *SQLiteStore) Records(fn func(uint64, []byte) error) error {
	rows, err := s.db.Query(`SELECT seq, data FROM events ORDER BY seq`)
	if err != nil {
		return fmt.Errorf("chain: sqlite: %w", err)
	}
	defer rows.Close()
	var want uint64
	for rows.Next() {
		var seq int64
		var data []byte
		if err := rows.Scan(&seq, &data); err != nil {
			return fmt.Errorf("chain: sqlite: %w", err)
		}
		if seq < 0 || uint64(seq) != want {
			return &RecordError{Seq: want, Offset: -1, Err: fmt.Errorf("%w: row %d where %d was expected", ErrCorrupt, seq, want)}
		}
		if err := fn(want, data); err != nil {
			return err
		}
		want++
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("chain: sqlite: %w", err)
	}
	return nil
}

// Close waits for queued records and closes the database.
func (s *SQLiteStore) Close() error {
	var err error
	if s.commit != nil {
		err = s.commit.Close()
	}
	if cerr := s.db.Close(); err == nil && cerr != nil {
		err = fmt.Errorf("chain: sqlite: %w", cerr)
	}
	return err
}
