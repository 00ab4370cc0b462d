package nodeagent

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/ccos-project/ccos/k8s/api/v1alpha1"
	"github.com/ccos-project/ccos/orchestrator"
)

// ErrJournalFull is wrapped when a call cannot be recorded in the
// AgentRun's call journal because the journal is at its bound; the call
// does not run.
var ErrJournalFull = errors.New("the AgentRun's call journal is full")

// maxEntryBytes bounds one journal entry (key, capability, arguments and
// outcome), and maxJournalBytes the whole journal, so that an AgentRun
// stays well under etcd's request limit whatever a plan calls.
const (
	maxEntryBytes   = 12 << 10
	maxJournalBytes = 512 << 10
)

// journalWriteTimeout bounds one journal write: a call waits for its
// record at most this long before it is refused.
const journalWriteTimeout = 30 * time.Second

// journal is a run's orchestrator.CallJournal kept in its AgentRun's
// status.calls, written with the claim's fenced status update: an entry is
// in the API server before the call runs, and a node that lost the run
// (another node reclaimed it) can write nothing more, so it runs nothing
// more.
type journal struct {
	a *Agent
	h *held
}

var _ orchestrator.CallJournal = (*journal)(nil)

func (j *journal) Load() ([]orchestrator.JournalEntry, error) {
	run := j.h.current()
	out := make([]orchestrator.JournalEntry, 0, len(run.Status.Calls))
	for _, c := range run.Status.Calls {
		out = append(out, orchestrator.JournalEntry{Key: c.Key, Capability: c.Capability, Args: slices.Clone(c.Args),
			Done: c.Done, Value: c.Value, Error: c.Error})
	}
	return out, nil
}

func (j *journal) Begin(e orchestrator.JournalEntry) error {
	size := entrySize(e)
	if size > maxEntryBytes || len(e.Args) > v1alpha1.MaxCallArgs {
		return fmt.Errorf("%w: the call to %s is too large to record (%d bytes, %d arguments; at most %d bytes and %d arguments)",
			ErrJournalFull, e.Capability, size, len(e.Args), maxEntryBytes, v1alpha1.MaxCallArgs)
	}
	for i, a := range e.Args {
		if len(a) > v1alpha1.MaxCallFieldBytes {
			return fmt.Errorf("%w: argument %d of %s is %d bytes, more than the %d a journal entry keeps",
				ErrJournalFull, i+1, e.Capability, len(a), v1alpha1.MaxCallFieldBytes)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), journalWriteTimeout)
	defer cancel()
	return j.a.update(ctx, j.h, func(st *v1alpha1.AgentRunStatus) error {
		if len(st.Calls) >= v1alpha1.MaxCalls {
			return fmt.Errorf("%w: it holds its maximum of %d calls", ErrJournalFull, v1alpha1.MaxCalls)
		}
		total := size
		for _, c := range st.Calls {
			total += callSize(c)
		}
		if total > maxJournalBytes {
			return fmt.Errorf("%w: it holds its maximum of %d bytes", ErrJournalFull, maxJournalBytes)
		}
		st.Calls = append(st.Calls, v1alpha1.CallEntry{Key: e.Key, Capability: e.Capability, Args: slices.Clone(e.Args),
			Node: j.a.o.Node, Attempt: j.h.attempt})
		return nil
	})
}

func (j *journal) Finish(e orchestrator.JournalEntry) error {
	if len(e.Value) > v1alpha1.MaxCallFieldBytes {
		// The call ran; its outcome is too large to keep. A later attempt
		// gets this error rather than a second run of the call.
		e.Value, e.Error = "", fmt.Sprintf("the outcome of %s (%d bytes) was too large to record in the AgentRun's call journal; the call is not run again", e.Capability, len(e.Value))
	}
	if len(e.Error) > v1alpha1.MaxCallFieldBytes {
		e.Error = e.Error[:v1alpha1.MaxCallFieldBytes-3] + "..."
	}
	ctx, cancel := context.WithTimeout(context.Background(), journalWriteTimeout)
	defer cancel()
	return j.a.update(ctx, j.h, func(st *v1alpha1.AgentRunStatus) error {
		for i := range st.Calls {
			c := &st.Calls[i]
			if c.Key == e.Key {
				if c.Done {
					return fmt.Errorf("the call journal already holds the outcome of key %s", e.Key)
				}
				c.Done, c.Value, c.Error = true, e.Value, e.Error
				return nil
			}
		}
		return fmt.Errorf("the call journal has no call with key %s", e.Key)
	})
}

func entrySize(e orchestrator.JournalEntry) int {
	n := len(e.Key) + len(e.Capability) + len(e.Value) + len(e.Error)
	for _, a := range e.Args {
		n += len(a)
	}
	return n
}

func callSize(c v1alpha1.CallEntry) int {
	return entrySize(orchestrator.JournalEntry{Key: c.Key, Capability: c.Capability, Args: c.Args, Value: c.Value, Error: c.Error})
}
