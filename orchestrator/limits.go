package orchestrator

import (
	"errors"
	"fmt"

	"github.com/ccos-project/ccos/sandbox"
)

// Bounds are the host's bounds on what the guest of one run can make it
// hold or record: whatever the guest sends, the host's memory for a run
// stays within them (and within MaxOutput for the plan's output, and one
// control frame for a message). Zero fields take DefaultBounds.
type Bounds struct {
	// Events bounds the guest's own events recorded in a run, and
	// EventBytes the bytes of their payload text.
	Events     int
	EventBytes int64
	// Calls bounds the capability calls the guest yields to the host in a
	// run, and CallBytes the bytes of their argument text.
	Calls     int
	CallBytes int64
}

// DefaultBounds returns the bounds used where a Request sets none. A
// guest records two events per call it runs itself, each at most
// control.MaxEventPayload bytes.
func DefaultBounds() Bounds {
	return Bounds{Events: 1 << 16, EventBytes: 64 << 20, Calls: 1 << 14, CallBytes: 64 << 20}
}

func (b Bounds) withDefaults() Bounds {
	d := DefaultBounds()
	if b.Events <= 0 {
		b.Events = d.Events
	}
	if b.EventBytes <= 0 {
		b.EventBytes = d.EventBytes
	}
	if b.Calls <= 0 {
		b.Calls = d.Calls
	}
	if b.CallBytes <= 0 {
		b.CallBytes = d.CallBytes
	}
	return b
}

// Names of the limits a LimitExceeded can name.
const (
	LimitEvents     = "events"
	LimitEventBytes = "event-bytes"
	LimitCalls      = "calls"
	LimitCallBytes  = "call-bytes"
	LimitMemory     = "memory"
	LimitDeadline   = "deadline"
)

// LimitExceeded is a run that went past a limit: one of the host's
// per-run bounds (Bounds), or one of the sandbox's limits (its memory, its
// deadline). It is recorded in the causal chain before the run ends. Run
// returns it wrapped with ErrGuest; errors.As finds it.
type LimitExceeded struct {
	// Limit names the limit (LimitEvents...), Value its value and Unit
	// what Value counts ("bytes", "events", "calls", "ms").
	Limit string
	Value int64
	Unit  string
	// Detail says what went past it, when known.
	Detail string
}

func (e *LimitExceeded) Error() string {
	msg := fmt.Sprintf("LimitExceeded: the run went past its %s limit of %d %s", e.Limit, e.Value, e.Unit)
	if e.Detail != "" {
		msg += ": " + e.Detail
	}
	return msg
}

// sandboxLimit returns the limit a sandbox's exit reports, or nil when it
// ended for another reason.
func sandboxLimit(werr error, lim sandbox.Limits) *LimitExceeded {
	var ee *sandbox.ExitError
	if !errors.As(werr, &ee) {
		return nil
	}
	switch ee.Reason {
	case sandbox.ExitMemory:
		return &LimitExceeded{Limit: LimitMemory, Value: lim.MemoryBytes, Unit: "bytes", Detail: "the sandbox ran out of memory (" + ee.Error() + ")"}
	case sandbox.ExitDeadline:
		return &LimitExceeded{Limit: LimitDeadline, Value: lim.Deadline.Milliseconds(), Unit: "ms", Detail: "the sandbox was stopped at its deadline (" + ee.Error() + ")"}
	}
	return nil
}
