package orchestrator

import (
	"fmt"
	"slices"

	"github.com/ccos-project/ccos/rtfs"
)

// CallJournal keeps a CallRecord durably, so that a plan run again
// elsewhere (another process, another node) after its host died answers
// the side-effecting calls already made from the record instead of making
// them again. Begin is called, and must have made the entry durable,
// before the call runs; an error from Begin means the call does not run.
// Finish records the outcome. Load returns what earlier attempts recorded.
type CallJournal interface {
	Load() ([]JournalEntry, error)
	Begin(JournalEntry) error
	Finish(JournalEntry) error
}

// JournalEntry is one side-effecting call in a CallJournal. Value is the
// outcome as canonical RTFS (rtfs.Print) when the call succeeded, Error its
// message when it failed; both are empty until Done.
type JournalEntry struct {
	Key, Capability string
	Args            []string
	Done            bool
	Value           string
	Error           string
}

// NewCallRecordWith returns a record kept in j, holding what j already
// recorded: calls done are answered from it, calls started and not done
// are in doubt (ErrInDoubt) and never run again.
func NewCallRecordWith(j CallJournal) (*CallRecord, error) {
	entries, err := j.Load()
	if err != nil {
		return nil, fmt.Errorf("loading the call journal: %w", err)
	}
	r := NewCallRecord()
	r.journal = j
	for _, e := range entries {
		c := &recordedCall{capability: e.Capability, args: slices.Clone(e.Args), done: e.Done, err: e.Error}
		if e.Done && e.Error == "" {
			if c.value, err = readValue(e.Value); err != nil {
				return nil, fmt.Errorf("the call journal's outcome of %s (key %s) does not read: %w", e.Capability, e.Key, err)
			}
		}
		if _, dup := r.calls[e.Key]; dup {
			return nil, fmt.Errorf("the call journal records key %s twice", e.Key)
		}
		r.calls[e.Key] = c
	}
	return r, nil
}

// InDoubt returns the keys of the calls this record refused because an
// earlier attempt started them and never recorded their outcome.
func (r *CallRecord) InDoubt() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.inDoubt)
}

func (r *CallRecord) begin(key, capID string, args []string) error {
	if r.journal == nil {
		return nil
	}
	if err := r.journal.Begin(JournalEntry{Key: key, Capability: capID, Args: slices.Clone(args)}); err != nil {
		return fmt.Errorf("capability %s not run: its call could not be recorded before running: %w", capID, err)
	}
	return nil
}

func (r *CallRecord) finish(key, capID string, args []string, v rtfs.Value, err error) {
	if r.journal == nil {
		return
	}
	e := JournalEntry{Key: key, Capability: capID, Args: slices.Clone(args), Done: true}
	if err != nil {
		e.Error = err.Error()
	} else {
		if v == nil {
			v = rtfs.Nil{}
		}
		e.Value = rtfs.Print(v)
	}
	// A failure leaves the journal saying the call started and never
	// finished: whoever reads it later holds the call in doubt, which is
	// what it is to them.
	_ = r.journal.Finish(e)
}
