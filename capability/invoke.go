package capability

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/ccos-project/ccos/rtfs"
)

// MaxValueBytes bounds the canonical text of a value a capability takes
// or returns where it is recorded: a built-in refuses to build a larger
// result, and the guest refuses to record (or send to the host) a larger
// argument or result, with a LimitExceeded.
const MaxValueBytes = 16 << 20

// ErrTimeLimit is wrapped by the error of a call that ran past its time
// limit (TimeLimitError).
var ErrTimeLimit = errors.New("capability time limit exceeded")

// TimeLimitError is a capability call that ran past its time limit: its
// contract's :max_time_ms, or the deadline of whoever called it (the
// plan's evaluation time limit), whichever came first.
type TimeLimitError struct {
	Capability string
	// Limit is the time the call had.
	Limit time.Duration
	// Contract is set when the limit was the contract's :max_time_ms.
	Contract bool
}

func (e *TimeLimitError) Error() string {
	if e.Limit <= 0 {
		return fmt.Sprintf("capability %s was called after its caller's deadline had passed", e.Capability)
	}
	which := "the caller's deadline"
	if e.Contract {
		which = "its contract's :max_time_ms"
	}
	return fmt.Sprintf("capability %s ran past its time limit of %d ms (%s)", e.Capability, e.Limit.Milliseconds(), which)
}

func (e *TimeLimitError) Unwrap() error { return ErrTimeLimit }

// Invoke calls c with args under its time limit: the contract's
// :max_time_ms (none when 0) or ctx's deadline, whichever ends first. The
// context the implementation gets ends then, and a call that returns
// after it fails with a *TimeLimitError whatever it returned: a limit
// holds even for an implementation that does not watch its context.
func Invoke(ctx context.Context, c *Capability, args []rtfs.Value) (rtfs.Value, error) {
	start := time.Now()
	deadline, has := ctx.Deadline()
	contract := false
	if c.Contract.MaxTimeMS > 0 {
		if d := start.Add(time.Duration(c.Contract.MaxTimeMS) * time.Millisecond); !has || d.Before(deadline) {
			deadline, has, contract = d, true, true
		}
	}
	if !has {
		return c.Fn(ctx, args)
	}
	if !start.Before(deadline) {
		return nil, &TimeLimitError{Capability: c.ID, Contract: contract}
	}
	ctx, cancel := context.WithDeadline(ctx, deadline)
	defer cancel()
	v, err := c.Fn(ctx, args)
	// Where Go cannot preempt (wasip1) the context's timer may not have
	// fired yet: the clock decides.
	if time.Now().After(deadline) || errors.Is(err, context.DeadlineExceeded) {
		return nil, &TimeLimitError{Capability: c.ID, Limit: deadline.Sub(start).Round(time.Millisecond), Contract: contract}
	}
	return v, err
}

// expired reports whether ctx has ended, checking its deadline against
// the clock too (see Invoke).
func expired(ctx context.Context) bool {
	if ctx.Err() != nil {
		return true
	}
	d, ok := ctx.Deadline()
	return ok && time.Now().After(d)
}
