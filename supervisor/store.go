package supervisor

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"os"
	"strings"
	"syscall"
	"time"

	"github.com/ccos-project/ccos/internal/groupcommit"
	"github.com/ccos-project/ccos/orchestrator"
	_ "modernc.org/sqlite" // registers the "sqlite" database/sql driver
)

// Store keeps the supervisor's runs, their call journals and their events
// in SQLite (WAL, synchronous=FULL): a run is durable before its
// submission is acknowledged, a side-effecting call is durable as started
// before it runs. Writes of all goroutines share commits (group commit);
// reads go to their own connections.
//
// Schema (version 1):
//
//	runs(id PK, agent, status, file, source, approvals JSON, plan, plan_hash,
//	     provider, submitted, started, finished (unix ns), attempts, result JSON,
//	     receipt: the run's signed receipt, a DSSE envelope, '' for none)
//	calls(run, key, capability, args JSON, done, value, error; PK run, key)
//	events(run, seq, data JSON; PK run, seq)
type Store struct {
	lock   *os.File
	w      *sql.DB
	r      *sql.DB
	commit *groupcommit.Committer[*op]
	// changes numbers the changes of runs' states, for GET /v1/events.
	changes *runFeed
}

// op is one write. Each runs inside a savepoint of the batch's
// transaction, so that a write that fails (a constraint) fails alone and
// the batch commits; only a failed commit fails everything.
type op struct {
	fn  func(*sql.Tx) error
	err error
}

// do queues a write and waits until it is durable.
func (s *Store) do(fn func(*sql.Tx) error) error {
	o := &op{fn: fn}
	if err := s.commit.Do(o); err != nil {
		return err
	}
	return o.err
}

// ErrStoreClosed is returned after Close.
var ErrStoreClosed = errors.New("supervisor: run store closed")

// ErrNotFound is returned for a run id the store does not hold.
var ErrNotFound = errors.New("supervisor: no such run")

const schema = `
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS runs (
	id TEXT PRIMARY KEY, agent TEXT NOT NULL, status TEXT NOT NULL, file TEXT NOT NULL,
	source TEXT NOT NULL, approvals TEXT NOT NULL, plan TEXT NOT NULL, plan_hash TEXT NOT NULL,
	provider TEXT NOT NULL, submitted INTEGER NOT NULL, started INTEGER NOT NULL, finished INTEGER NOT NULL,
	attempts INTEGER NOT NULL, result TEXT NOT NULL, receipt TEXT NOT NULL DEFAULT '');
CREATE INDEX IF NOT EXISTS runs_by_time ON runs (submitted DESC, id DESC);
CREATE INDEX IF NOT EXISTS runs_by_agent ON runs (agent, submitted DESC, id DESC);
CREATE INDEX IF NOT EXISTS runs_by_status ON runs (status);
CREATE TABLE IF NOT EXISTS calls (
	run TEXT NOT NULL, key TEXT NOT NULL, capability TEXT NOT NULL, args TEXT NOT NULL,
	done INTEGER NOT NULL, value TEXT NOT NULL, error TEXT NOT NULL, PRIMARY KEY (run, key));
CREATE TABLE IF NOT EXISTS events (run TEXT NOT NULL, seq INTEGER NOT NULL, data TEXT NOT NULL, PRIMARY KEY (run, seq));
INSERT OR IGNORE INTO meta (key, value) VALUES ('schema', '1');
`

// ErrStoreInUse is returned when another process has the run store open:
// two supervisors must never resume the same runs.
var ErrStoreInUse = errors.New("supervisor: the run store is in use by another process")

// OpenStore opens (creating) the run store at path, holding an exclusive
// lock (path + ".lock", flock) until Close.
func OpenStore(path string) (*Store, error) {
	lock, err := os.OpenFile(path+".lock", os.O_RDWR|os.O_CREATE|syscall.O_NOFOLLOW, 0o600)
	if err != nil {
		return nil, fmt.Errorf("supervisor: run store lock: %w", err)
	}
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		lock.Close()
		return nil, fmt.Errorf("%w (%s)", ErrStoreInUse, path)
	}
	s, err := openStore(path)
	if err != nil {
		lock.Close()
		return nil, err
	}
	s.lock = lock
	return s, nil
}

func openStore(path string) (*Store, error) {
	dsn := func(ro bool) string {
		q := url.Values{}
		q.Add("_pragma", "busy_timeout(10000)")
		q.Add("_pragma", "journal_mode(WAL)")
		q.Add("_pragma", "synchronous(FULL)")
		q.Add("_pragma", "foreign_keys(ON)")
		if ro {
			q.Add("_pragma", "query_only(1)")
		}
		return "file:" + (&url.URL{Path: path}).EscapedPath() + "?" + q.Encode()
	}
	w, err := sql.Open("sqlite", dsn(false))
	if err != nil {
		return nil, fmt.Errorf("supervisor: run store %s: %w", path, err)
	}
	w.SetMaxOpenConns(1)
	if _, err := w.Exec(schema); err != nil {
		w.Close()
		return nil, fmt.Errorf("supervisor: run store %s: %w", path, err)
	}
	var version string
	if err := w.QueryRow(`SELECT value FROM meta WHERE key = 'schema'`).Scan(&version); err != nil || version != "1" {
		w.Close()
		return nil, fmt.Errorf("supervisor: run store %s has schema %q; this ccos reads schema 1", path, version)
	}
	r, err := sql.Open("sqlite", dsn(true))
	if err != nil {
		w.Close()
		return nil, err
	}
	r.SetMaxOpenConns(4)
	s := &Store{w: w, r: r, changes: newRunFeed()}
	s.commit = groupcommit.New(256, ErrStoreClosed, s.flush)
	return s, nil
}

func (s *Store) flush(batch []*op) error {
	tx, err := s.w.Begin()
	if err != nil {
		return err
	}
	for _, o := range batch {
		if _, err := tx.Exec(`SAVEPOINT op`); err != nil {
			tx.Rollback()
			return err
		}
		if o.err = o.fn(tx); o.err != nil {
			if _, err := tx.Exec(`ROLLBACK TO op`); err != nil {
				tx.Rollback()
				return err
			}
		}
		if _, err := tx.Exec(`RELEASE op`); err != nil {
			tx.Rollback()
			return err
		}
	}
	return tx.Commit()
}

// Close waits for the queued writes, closes the database and releases
// the lock.
func (s *Store) Close() error {
	err := s.commit.Close()
	err = errors.Join(err, s.r.Close(), s.w.Close())
	if s.lock != nil {
		err = errors.Join(err, s.lock.Close())
	}
	return err
}

// Status is a run's state.
type Status string

// The run states. queued and running are live; the others are final.
const (
	StatusQueued    Status = "queued"
	StatusRunning   Status = "running"
	StatusSucceeded Status = "succeeded"
	StatusFailed    Status = "failed"
	StatusInDoubt   Status = "in_doubt"
	StatusCancelled Status = "cancelled"
)

// Final reports whether a run in this state is over.
func (s Status) Final() bool { return s != StatusQueued && s != StatusRunning }

// ParseStatus reads a status name.
func ParseStatus(s string) (Status, error) {
	switch st := Status(s); st {
	case StatusQueued, StatusRunning, StatusSucceeded, StatusFailed, StatusInDoubt, StatusCancelled:
		return st, nil
	}
	return "", fmt.Errorf("unknown run status %q (queued, running, succeeded, failed, in_doubt, cancelled)", s)
}

// record is a run as stored: what was submitted and where it stands.
type record struct {
	Run
	Source    string
	Approvals []string
}

// insert queues a new run and waits until it is durable.
func (s *Store) insert(r *record) error {
	approvals, _ := json.Marshal(r.Approvals)
	result, _ := json.Marshal(r.Outcome)
	err := s.do(func(tx *sql.Tx) error {
		_, err := tx.Exec(`INSERT INTO runs (id, agent, status, file, source, approvals, plan, plan_hash, provider, submitted, started, finished, attempts, result)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 0, 0, 0, ?)`,
			r.ID, r.Agent, string(r.Status), r.File, r.Source, string(approvals), r.Plan, r.PlanHash, r.Provider, r.Submitted.UnixNano(), string(result))
		return err
	})
	return s.noted(r.ID, err)
}

// noted tells the feed that a run changed, when its write succeeded.
func (s *Store) noted(id string, err error) error {
	if err == nil {
		s.changes.note(id)
	}
	return err
}

// started records that a run's attempt began, and waits until durable.
func (s *Store) started(id, provider string, at time.Time) error {
	return s.noted(id, s.do(func(tx *sql.Tx) error {
		_, err := tx.Exec(`UPDATE runs SET status = ?, provider = ?, started = ?, attempts = attempts + 1 WHERE id = ?`,
			string(StatusRunning), provider, at.UnixNano(), id)
		return err
	}))
}

// finish records a run's final state, outcome and receipt, and waits
// until durable.
func (s *Store) finish(id string, st Status, out Outcome, receipt []byte, at time.Time) error {
	result, _ := json.Marshal(out)
	return s.noted(id, s.do(func(tx *sql.Tx) error {
		_, err := tx.Exec(`UPDATE runs SET status = ?, finished = ?, result = ?, receipt = ? WHERE id = ?`,
			string(st), at.UnixNano(), string(result), string(receipt), id)
		return err
	}))
}

// receipt returns a run's signed receipt (nil when it has none).
func (s *Store) receipt(ctx context.Context, id string) ([]byte, error) {
	var r string
	err := s.r.QueryRowContext(ctx, `SELECT receipt FROM runs WHERE id = ?`, id).Scan(&r)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, ErrNotFound
	}
	if err != nil || r == "" {
		return nil, err
	}
	return []byte(r), nil
}

// requeue puts a run that was in progress back in the queue, for a
// resumed supervisor.
func (s *Store) requeue(id string) error {
	return s.noted(id, s.do(func(tx *sql.Tx) error {
		_, err := tx.Exec(`UPDATE runs SET status = ? WHERE id = ?`, string(StatusQueued), id)
		return err
	}))
}

// appendEvents queues events without waiting: they are a view, the chain
// is the record.
func (s *Store) appendEvents(run string, evs []storedEvent) <-chan error {
	return s.commit.Append(&op{fn: func(tx *sql.Tx) error {
		for _, e := range evs {
			if _, err := tx.Exec(`INSERT OR IGNORE INTO events (run, seq, data) VALUES (?, ?, ?)`, run, e.Seq, string(e.Data)); err != nil {
				return err
			}
		}
		return nil
	}})
}

type storedEvent struct {
	Seq  int
	Data []byte
}

const runColumns = `id, agent, status, file, plan, plan_hash, provider, submitted, started, finished, attempts, result`

func scanRun(sc interface{ Scan(...any) error }) (*Run, error) {
	var r Run
	var status, result string
	var submitted, started, finished int64
	if err := sc.Scan(&r.ID, &r.Agent, &status, &r.File, &r.Plan, &r.PlanHash, &r.Provider, &submitted, &started, &finished, &r.Attempts, &result); err != nil {
		return nil, err
	}
	r.Status = Status(status)
	r.Submitted = time.Unix(0, submitted).UTC()
	if started != 0 {
		t := time.Unix(0, started).UTC()
		r.Started = &t
	}
	if finished != 0 {
		t := time.Unix(0, finished).UTC()
		r.Finished = &t
	}
	if err := json.Unmarshal([]byte(result), &r.Outcome); err != nil {
		return nil, fmt.Errorf("run %s: stored result: %w", r.ID, err)
	}
	return &r, nil
}

// get returns one run, with its source and approvals.
func (s *Store) get(ctx context.Context, id string) (*record, error) {
	row := s.r.QueryRowContext(ctx, `SELECT `+runColumns+`, source, approvals FROM runs WHERE id = ?`, id)
	var source, approvals string
	var rec record
	r, err := scanRun(scanFunc(func(dest ...any) error {
		return row.Scan(append(dest, &source, &approvals)...)
	}))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, err
	}
	rec.Run, rec.Source = *r, source
	json.Unmarshal([]byte(approvals), &rec.Approvals)
	return &rec, nil
}

type scanFunc func(...any) error

func (f scanFunc) Scan(dest ...any) error { return f(dest...) }

// Filter selects runs for List.
type Filter struct {
	Agent  string
	Status Status
	// Limit bounds the page (100 when 0, 1000 at most).
	Limit int
	// Before is the cursor of the previous page's last run ("" for the
	// first page).
	Before string
}

// list returns a page of runs, newest first, and the cursor of the next
// page ("" at the end).
func (s *Store) list(ctx context.Context, f Filter) ([]*Run, string, error) {
	if f.Limit <= 0 {
		f.Limit = 100
	}
	f.Limit = min(f.Limit, 1000)
	var where []string
	var args []any
	if f.Agent != "" {
		where, args = append(where, "agent = ?"), append(args, f.Agent)
	}
	if f.Status != "" {
		where, args = append(where, "status = ?"), append(args, string(f.Status))
	}
	if f.Before != "" {
		ts, id, ok := strings.Cut(f.Before, ":")
		var n int64
		if _, err := fmt.Sscan(ts, &n); !ok || err != nil {
			return nil, "", fmt.Errorf("bad cursor %q", f.Before)
		}
		where, args = append(where, "(submitted < ? OR (submitted = ? AND id < ?))"), append(args, n, n, id)
	}
	q := `SELECT ` + runColumns + ` FROM runs`
	if len(where) > 0 {
		q += " WHERE " + strings.Join(where, " AND ")
	}
	q += " ORDER BY submitted DESC, id DESC LIMIT ?"
	args = append(args, f.Limit+1)
	rows, err := s.r.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, "", err
	}
	defer rows.Close()
	var out []*Run
	for rows.Next() {
		r, err := scanRun(rows)
		if err != nil {
			return nil, "", err
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, "", err
	}
	next := ""
	if len(out) > f.Limit {
		out = out[:f.Limit]
		last := out[len(out)-1]
		next = fmt.Sprintf("%d:%s", last.Submitted.UnixNano(), last.ID)
	}
	return out, next, nil
}

// live returns the runs that were queued or running, oldest first: what a
// restarted supervisor resumes.
func (s *Store) live(ctx context.Context) ([]*record, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT id FROM runs WHERE status IN (?, ?) ORDER BY submitted, id`, string(StatusQueued), string(StatusRunning))
	if err != nil {
		return nil, err
	}
	var ids []string
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			rows.Close()
			return nil, err
		}
		ids = append(ids, id)
	}
	rows.Close()
	var out []*record
	for _, id := range ids {
		r, err := s.get(ctx, id)
		if err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, nil
}

// counts returns how many runs are in each state: of one agent, or of
// all when agent is "".
func (s *Store) counts(ctx context.Context, agent string) (map[Status]int, error) {
	q, args := `SELECT status, COUNT(*) FROM runs GROUP BY status`, []any{}
	if agent != "" {
		q, args = `SELECT status, COUNT(*) FROM runs WHERE agent = ? GROUP BY status`, []any{agent}
	}
	rows, err := s.r.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := map[Status]int{}
	for rows.Next() {
		var st string
		var n int
		if err := rows.Scan(&st, &n); err != nil {
			return nil, err
		}
		out[Status(st)] = n
	}
	return out, rows.Err()
}

// events returns a run's stored events with a sequence number above
// after, in order, at most limit of them.
func (s *Store) events(ctx context.Context, run string, after, limit int) ([]storedEvent, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT seq, data FROM events WHERE run = ? AND seq > ? ORDER BY seq LIMIT ?`, run, after, limit)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []storedEvent
	for rows.Next() {
		var e storedEvent
		var data string
		if err := rows.Scan(&e.Seq, &data); err != nil {
			return nil, err
		}
		e.Data = []byte(data)
		out = append(out, e)
	}
	return out, rows.Err()
}

// journal is a run's call journal in the store.
type journal struct {
	s   *Store
	run string
}

// Journal returns the call journal of a run (see orchestrator.CallJournal).
func (s *Store) Journal(run string) orchestrator.CallJournal { return &journal{s: s, run: run} }

func (j *journal) Load() ([]orchestrator.JournalEntry, error) {
	rows, err := j.s.w.Query(`SELECT key, capability, args, done, value, error FROM calls WHERE run = ?`, j.run)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []orchestrator.JournalEntry
	for rows.Next() {
		var e orchestrator.JournalEntry
		var args string
		var done int
		if err := rows.Scan(&e.Key, &e.Capability, &args, &done, &e.Value, &e.Error); err != nil {
			return nil, err
		}
		if err := json.Unmarshal([]byte(args), &e.Args); err != nil {
			return nil, fmt.Errorf("call %s: stored arguments: %w", e.Key, err)
		}
		e.Done = done != 0
		out = append(out, e)
	}
	return out, rows.Err()
}

func (j *journal) Begin(e orchestrator.JournalEntry) error {
	args, _ := json.Marshal(e.Args)
	return j.s.do(func(tx *sql.Tx) error {
		_, err := tx.Exec(`INSERT INTO calls (run, key, capability, args, done, value, error) VALUES (?, ?, ?, ?, 0, '', '')`,
			j.run, e.Key, e.Capability, string(args))
		return err
	})
}

func (j *journal) Finish(e orchestrator.JournalEntry) error {
	return j.s.do(func(tx *sql.Tx) error {
		_, err := tx.Exec(`UPDATE calls SET done = 1, value = ?, error = ? WHERE run = ? AND key = ?`, e.Value, e.Error, j.run, e.Key)
		return err
	})
}
