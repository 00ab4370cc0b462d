package witness

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/ccos-project/ccos/chain"
	fnote "github.com/transparency-dev/formats/note"
	"golang.org/x/mod/sumdb/note"
	_ "modernc.org/sqlite" // registers the "sqlite" database/sql driver
)

// The refusals of a witness. Each maps to the HTTP status of C2SP
// tlog-witness (Status).
var (
	ErrUnknownLog   = errors.New("witness: unknown log origin")                                        // 404
	ErrNotSigned    = errors.New("witness: no signature of a known log key verifies")                  // 403
	ErrOldSize      = errors.New("witness: old size is larger than the checkpoint's size")             // 400
	ErrFork         = errors.New("witness: same size as the last cosigned checkpoint, different root") // 409
	ErrInconsistent = errors.New("witness: the consistency proof does not verify")                     // 422
	ErrProofNotZero = errors.New("witness: a proof from size 0 must be empty")                         // 422
	ErrState        = errors.New("witness: state store")                                               // 500
)

// ConflictError is a request whose old size is not the size of the last
// checkpoint the witness cosigned for the log (409 with that size).
type ConflictError struct{ Size uint64 }

func (e *ConflictError) Error() string {
	return fmt.Sprintf("witness: old size does not match the last cosigned size %d", e.Size)
}

// Status is the HTTP status of an AddCheckpoint error.
func Status(err error) int {
	var ce *ConflictError
	switch {
	case err == nil:
		return http.StatusOK
	case errors.As(err, &ce), errors.Is(err, ErrFork):
		return http.StatusConflict
	case errors.Is(err, ErrUnknownLog):
		return http.StatusNotFound
	case errors.Is(err, ErrNotSigned):
		return http.StatusForbidden
	case errors.Is(err, ErrInconsistent), errors.Is(err, ErrProofNotZero):
		return http.StatusUnprocessableEntity
	case errors.Is(err, ErrRequest), errors.Is(err, ErrOldSize), errors.Is(err, chain.ErrCheckpointFormat):
		return http.StatusBadRequest
	}
	return http.StatusInternalServerError
}

// Witness cosigns the checkpoints of the logs it knows, each only after
// checking that it extends the last checkpoint it cosigned for that log.
// Its state (the last cosigned size and root per log) is kept in SQLite
// and updated atomically with the check, before any cosignature leaves.
type Witness struct {
	signer note.Signer
	logs   map[string]note.Verifier
	db     *sql.DB
	log    *slog.Logger
	now    func() time.Time

	mu sync.Mutex // serialises check-and-update
}

// Options configure a witness.
type Options struct {
	Logger *slog.Logger     // slog.Default() if nil
	Now    func() time.Time // time.Now if nil
}

// New opens (creating if needed) the witness state at statePath. signer
// makes cosignature/v1 signatures (NewSigner); logs are the log keys the
// witness accepts, one per origin (the key's name).
func New(signer note.Signer, logs []note.Verifier, statePath string, opts Options) (*Witness, error) {
	w := &Witness{signer: signer, logs: map[string]note.Verifier{}, log: opts.Logger, now: opts.Now}
	if w.log == nil {
		w.log = slog.Default()
	}
	if w.now == nil {
		w.now = time.Now
	}
	for _, v := range logs {
		if _, dup := w.logs[v.Name()]; dup {
			return nil, fmt.Errorf("witness: two keys for log %q", v.Name())
		}
		w.logs[v.Name()] = v
	}
	q := url.Values{}
	q.Add("_pragma", "busy_timeout(5000)")
	q.Add("_pragma", "journal_mode(WAL)")
	q.Add("_pragma", "synchronous(FULL)")
	db, err := sql.Open("sqlite", "file:"+(&url.URL{Path: statePath}).EscapedPath()+"?"+q.Encode())
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrState, statePath, err)
	}
	db.SetMaxOpenConns(1)
	for _, stmt := range []string{
		`CREATE TABLE IF NOT EXISTS logs (origin TEXT PRIMARY KEY, size INTEGER NOT NULL, root BLOB NOT NULL)`,
		`CREATE TABLE IF NOT EXISTS refused (time TEXT NOT NULL, origin TEXT NOT NULL, reason TEXT NOT NULL, request BLOB NOT NULL)`,
	} {
		if _, err := db.Exec(stmt); err != nil {
			db.Close()
			return nil, fmt.Errorf("%w: %s: %w", ErrState, statePath, err)
		}
	}
	w.db = db
	return w, nil
}

// NewSigner returns the cosignature/v1 signer of a witness from its note
// signer key (an Ed25519 key from `ccos chain keygen`).
func NewSigner(skey string) (note.Signer, error) {
	s, err := fnote.NewSignerForCosignatureV1(strings.TrimSpace(skey))
	if err != nil {
		return nil, fmt.Errorf("witness: signer key: %w", err)
	}
	return s, nil
}

// NewVerifier returns the verifier of a witness's cosignatures from its
// verifier key: the Ed25519 note verifier key of its signer key, or the
// cosignature/v1 key NewSigner's verifier prints.
func NewVerifier(vkey string) (note.Verifier, error) {
	v, err := fnote.NewVerifierForCosignatureV1(strings.TrimSpace(vkey))
	if err != nil {
		return nil, fmt.Errorf("witness: verifier key: %w", err)
	}
	return v, nil
}

// Close closes the state store.
func (w *Witness) Close() error { return w.db.Close() }

// Latest returns the size and root of the last checkpoint cosigned for
// origin (0 and nil if none).
func (w *Witness) Latest(origin string) (uint64, []byte, error) {
	var size int64
	var root []byte
	err := w.db.QueryRow(`SELECT size, root FROM logs WHERE origin = ?`, origin).Scan(&size, &root)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, nil, nil
	}
	if err != nil {
		return 0, nil, fmt.Errorf("%w: %w", ErrState, err)
	}
	return uint64(size), root, nil
}

// AddCheckpoint handles one add-checkpoint request body and returns the
// witness's cosignature lines (note signature lines, each ending in a
// newline). Errors map to HTTP statuses with Status.
func (w *Witness) AddCheckpoint(ctx context.Context, body []byte) ([]byte, error) {
	req, err := ParseRequest(body)
	if err != nil {
		return nil, err
	}
	origin, _, _ := strings.Cut(string(req.Note), "\n")
	v, ok := w.logs[origin]
	if !ok {
		return nil, fmt.Errorf("%w %q", ErrUnknownLog, origin)
	}
	n, err := note.Open(req.Note, note.VerifierList(v))
	if err != nil {
		var unverified *note.UnverifiedNoteError
		var invalid *note.InvalidSignatureError
		if errors.As(err, &unverified) || errors.As(err, &invalid) {
			return nil, fmt.Errorf("%w (%s): %w", ErrNotSigned, origin, err)
		}
		return nil, fmt.Errorf("%w: the checkpoint is not a signed note: %w", ErrRequest, err)
	}
	cp, err := ParseBody(n.Text)
	if err != nil {
		return nil, err
	}
	if req.OldSize > cp.Size {
		return nil, fmt.Errorf("%w: old %d, checkpoint %d", ErrOldSize, req.OldSize, cp.Size)
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if err := w.check(req, cp); err != nil {
		var ce *ConflictError
		if !errors.As(err, &ce) || errors.Is(err, ErrFork) {
			w.keepRefused(origin, err, body)
		}
		return nil, err
	}
	if _, err := w.db.ExecContext(ctx, `INSERT INTO logs (origin, size, root) VALUES (?, ?, ?)
		ON CONFLICT(origin) DO UPDATE SET size = excluded.size, root = excluded.root`, origin, int64(cp.Size), cp.Root); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrState, err)
	}
	signed, err := note.Sign(&note.Note{Text: n.Text}, w.signer)
	if err != nil {
		return nil, fmt.Errorf("witness: cosigning: %w", err)
	}
	w.log.Info("cosigned", "origin", origin, "size", cp.Size, "old", req.OldSize)
	return signed[len(n.Text)+1:], nil
}

// check decides whether cp extends the last cosigned checkpoint of its log.
func (w *Witness) check(req *Request, cp *chain.Checkpoint) error {
	size, root, err := w.Latest(cp.Origin)
	if err != nil {
		return err
	}
	if req.OldSize != size {
		return &ConflictError{Size: size}
	}
	if req.OldSize == cp.Size && size > 0 {
		if !bytes.Equal(root, cp.Root) {
			return fmt.Errorf("%w: size %d", ErrFork, size)
		}
		if len(req.Proof) != 0 {
			return fmt.Errorf("%w: same size needs an empty proof", ErrInconsistent)
		}
		return nil
	}
	if req.OldSize == 0 {
		if len(req.Proof) != 0 {
			return ErrProofNotZero
		}
		return nil
	}
	if err := chain.VerifyConsistency(req.OldSize, cp.Size, req.Proof, root, cp.Root); err != nil {
		return fmt.Errorf("%w from size %d to %d: %w", ErrInconsistent, req.OldSize, cp.Size, err)
	}
	return nil
}

// keepRefused records a refused request whose checkpoint a known log key
// signed: it may be evidence that the log forked.
func (w *Witness) keepRefused(origin string, why error, body []byte) {
	if _, err := w.db.Exec(`INSERT INTO refused (time, origin, reason, request) VALUES (?, ?, ?, ?)`,
		w.now().UTC().Format(time.RFC3339Nano), origin, why.Error(), body); err != nil {
		w.log.Error("keeping a refused request", "origin", origin, "error", err)
	}
	w.log.Warn("refused a signed checkpoint", "origin", origin, "reason", why)
}

// Refused returns the reasons of the refused signed requests kept for
// origin, oldest first.
func (w *Witness) Refused(origin string) ([]string, error) {
	rows, err := w.db.Query(`SELECT reason FROM refused WHERE origin = ? ORDER BY rowid`, origin)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrState, err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var r string
		if err := rows.Scan(&r); err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, rows.Err()
}

// ServeHTTP serves POST /add-checkpoint (the submission prefix is the
// server's root; mount it under another with http.StripPrefix).
func (w *Witness) ServeHTTP(rw http.ResponseWriter, r *http.Request) {
	if r.URL.Path != "/add-checkpoint" {
		http.NotFound(rw, r)
		return
	}
	if r.Method != http.MethodPost {
		rw.Header().Set("Allow", http.MethodPost)
		http.Error(rw, "use POST", http.StatusMethodNotAllowed)
		return
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, MaxBody+1))
	if err != nil {
		http.Error(rw, "reading the request: "+err.Error(), http.StatusBadRequest)
		return
	}
	sigs, err := w.AddCheckpoint(r.Context(), body)
	var ce *ConflictError
	switch {
	case errors.As(err, &ce):
		rw.Header().Set("Content-Type", "text/x.tlog.size")
		rw.WriteHeader(http.StatusConflict)
		fmt.Fprintf(rw, "%d\n", ce.Size)
	case err != nil:
		http.Error(rw, err.Error(), Status(err))
	default:
		rw.Header().Set("Content-Type", "text/plain; charset=utf-8")
		rw.Write(sigs)
	}
}

// parseSize reads a text/x.tlog.size body.
func parseSize(b []byte) (uint64, error) {
	s, ok := strings.CutSuffix(string(b), "\n")
	n, err := strconv.ParseUint(s, 10, 64)
	if !ok || err != nil || strconv.FormatUint(n, 10) != s {
		return 0, fmt.Errorf("witness: malformed size %q", b)
	}
	return n, nil
}
