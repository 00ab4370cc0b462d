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
// is refused (ErrKeyConflict). It is safe for concurrent use.
type CallRecord struct {
	mu      sync.Mutex
	calls   map[string]*recordedCall
	journal CallJournal // nil: the record lives in memory only
	inDoubt []string    // keys refused as in doubt
}

type recordedCall struct {
	capability string
	args       []string
	done       bool
	value      rtfs.Value
	err        string
}

// MaxRecordedCalls bounds a record: a guest cannot make the host keep
// more side-effecting calls than this.
const MaxRecordedCalls = 1 << 16

// NewCallRecord returns an empty record.
func NewCallRecord() *CallRecord { return &CallRecord{calls: map[string]*recordedCall{}} }

// Len returns how many calls the record holds.
func (r *CallRecord) Len() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.calls)
}

// Once runs the call with key at most once: the first time it records the
// call as started, runs it and records its outcome; afterwards it returns
// that outcome with replayed set.
func (r *CallRecord) Once(key, capID string, args []string, run func() (rtfs.Value, error)) (v rtfs.Value, replayed bool, err error) {
	r.mu.Lock()
	if prev, ok := r.calls[key]; ok {
		defer r.mu.Unlock()
		v, replayed, err := prev.replay(key, capID, args)
		if errors.Is(err, ErrInDoubt) {
			r.inDoubt = append(r.inDoubt, key)
		}
		return v, replayed, err
	}
	if len(r.calls) >= MaxRecordedCalls {
		r.mu.Unlock()
		return nil, false, fmt.Errorf("capability %s not run: the host's call record holds its maximum of %d calls", capID, MaxRecordedCalls)
	}
	prev := &recordedCall{capability: capID, args: slices.Clone(args)}
	r.calls[key] = prev
	r.mu.Unlock()
	if err := r.begin(key, capID, args); err != nil {
		r.mu.Lock()
		delete(r.calls, key)
		r.mu.Unlock()
		return nil, false, err
	}
	v, err = run()
	r.mu.Lock()
	prev.done, prev.value = true, v
	if err != nil {
		prev.err = err.Error()
	}
	r.mu.Unlock()
	r.finish(key, capID, args, v, err)
	return v, false, err
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
