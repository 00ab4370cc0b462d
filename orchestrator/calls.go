package orchestrator

import (
	"errors"
	"fmt"
	"slices"
	"sync"

	"github.com/ccos-project/ccos/rtfs"
)

// ErrKeyConflict is wrapped when a retried call has the idempotency key of
// an earlier call with another capability or other arguments: a retried
// step must make the same side-effecting calls in the same order.
var ErrKeyConflict = errors.New("idempotency key conflict")

// ErrInDoubt is wrapped when a side-effecting call was started under its
// idempotency key and its outcome was never recorded: it may have taken
// effect, so it is not run again.
var ErrInDoubt = errors.New("side-effecting call in doubt")

// CallRecord is the host's record of the side-effecting capability calls
// it ran, by idempotency key (control.CallKey). A call whose key has an
// outcome is answered with that outcome, success or error (whether a
// failed side-effecting call took effect is unknown, so it is not tried
// again either); a key reused for another capability or other arguments
// is refused (ErrKeyConflict). With a CallJournal the record outlives the
// process: every call is journalled as started before it runs and as done
// after, so a run resumed elsewhere (after a supervisor crash, on another
// cluster node) answers done calls from the journal and finds started but
// unfinished ones in doubt. It is safe for concurrent use.
type CallRecord struct {
	mu      sync.Mutex
	calls   map[string]*recordedCall
	journal CallJournal
	inDoubt []string
}

type recordedCall struct {
	capability string
	args       []string
	done       bool
	value      rtfs.Value
	err        string
}

// CallJournal keeps a CallRecord durable. Begin must be durable before it
// returns: the call runs only after it. Implementations: the supervisor's
// run store (SQLite), the Kubernetes node agent's (the API server).
type CallJournal interface {
	// Load returns every call journalled so far.
	Load() ([]JournalEntry, error)
	// Begin records that a call is about to run.
	Begin(JournalEntry) error
	// Finish records a call's outcome.
	Finish(JournalEntry) error
}

// JournalEntry is one journalled call.
type JournalEntry struct {
	Key        string   `json:"key"`
	Capability string   `json:"capability"`
	Args       []string `json:"args"`
	// Done is set once the outcome is known: Error, or Value (canonical
	// RTFS text).
	Done  bool   `json:"done"`
	Value string `json:"value,omitempty"`
	Error string `json:"error,omitempty"`
}

// MaxRecordedCalls bounds a record: a guest cannot make the host keep
// more side-effecting calls than this.
const MaxRecordedCalls = 1 << 16

// NewCallRecord returns an empty record that lives in memory.
func NewCallRecord() *CallRecord { return &CallRecord{calls: map[string]*recordedCall{}} }

// NewCallRecordWith returns a record kept in j, holding what j has
// journalled so far.
func NewCallRecordWith(j CallJournal) (*CallRecord, error) {
	r := NewCallRecord()
	r.journal = j
	entries, err := j.Load()
	if err != nil {
		return nil, fmt.Errorf("loading the call journal: %w", err)
	}
	for _, e := range entries {
		c := &recordedCall{capability: e.Capability, args: slices.Clone(e.Args), done: e.Done, err: e.Error}
		if e.Done && e.Error == "" {
			if c.value, err = readValue(e.Value); err != nil {
				return nil, fmt.Errorf("the call journal's value of %s (key %s) does not read: %w", e.Capability, e.Key, err)
			}
		}
		r.calls[e.Key] = c
	}
	return r, nil
}

// Len returns how many calls the record holds.
func (r *CallRecord) Len() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.calls)
}

// InDoubt returns the keys of the calls that were asked for again while
// in doubt (started, outcome never recorded), in the order asked.
func (r *CallRecord) InDoubt() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.inDoubt)
}

// Once runs the call with key at most once: the first time it records the
// call as started, runs it and records its outcome; afterwards it returns
// that outcome with replayed set.
func (r *CallRecord) Once(key, capID string, args []string, run func() (rtfs.Value, error)) (v rtfs.Value, replayed bool, err error) {
	r.mu.Lock()
	if prev, ok := r.calls[key]; ok {
		defer r.mu.Unlock()
		v, replayed, err = prev.replay(key, capID, args)
		if errors.Is(err, ErrInDoubt) && !slices.Contains(r.inDoubt, key) {
			r.inDoubt = append(r.inDoubt, key)
		}
		return v, replayed, err
	}
	if len(r.calls) >= MaxRecordedCalls {
		r.mu.Unlock()
		return nil, false, fmt.Errorf("capability %s not run: the host's call record holds its maximum of %d calls", capID, MaxRecordedCalls)
	}
	prev := &recordedCall{capability: capID, args: slices.Clone(args)}
	if r.journal != nil {
		// Durably started before it runs: a crash from here on leaves
		// the call in doubt, never forgotten.
		if err := r.journal.Begin(JournalEntry{Key: key, Capability: capID, Args: prev.args}); err != nil {
			r.mu.Unlock()
			return nil, false, fmt.Errorf("capability %s not run: the call could not be journalled: %w", capID, err)
		}
	}
	r.calls[key] = prev
	r.mu.Unlock()
	v, err = run()
	r.mu.Lock()
	prev.done, prev.value = true, v
	if err != nil {
		prev.err = err.Error()
	}
	r.mu.Unlock()
	if r.journal != nil {
		e := JournalEntry{Key: key, Capability: capID, Args: prev.args, Done: true, Error: prev.err}
		if err == nil {
			e.Value = rtfs.Print(orNil(v))
		}
		if jerr := r.journal.Finish(e); jerr != nil && err == nil {
			// The call happened; only its record is missing. The journal
			// keeps it started, so a resumed run finds it in doubt rather
			// than repeating it.
			err = fmt.Errorf("capability %s ran, but its outcome could not be journalled: %w", capID, jerr)
			r.mu.Lock()
			prev.err = err.Error()
			r.mu.Unlock()
		}
	}
	return v, false, err
}

func orNil(v rtfs.Value) rtfs.Value {
	if v == nil {
		return rtfs.Nil{}
	}
	return v
}

func (c *recordedCall) replay(key, capID string, args []string) (rtfs.Value, bool, error) {
	if c.capability != capID || !slices.Equal(c.args, args) {
		return nil, false, fmt.Errorf("%w: %s (key %s) is not the call an earlier attempt made under that key (%s with other arguments), so it is not run; a retried step must make the same side-effecting calls in the same order",
			ErrKeyConflict, capID, key, c.capability)
	}
	if !c.done {
		return nil, false, fmt.Errorf("%w: capability %s (key %s) was started and its outcome never recorded; it may have taken effect, so it is not run again", ErrInDoubt, capID, key)
	}
	if c.err != "" {
		return nil, true, errors.New(c.err)
	}
	return c.value, true, nil
}
