package guest

import (
	"fmt"
	"strings"

	"github.com/ccos-project/ccos/capability"
	"github.com/ccos-project/ccos/control"
	"github.com/ccos-project/ccos/rtfs"
)

// ErrPlan is the RTFS error type of a plan the guest refuses to go on
// with for a reason of the plan's own making (a step entered twice).
const ErrPlan = "PlanError"

// Values the guest records or sends are printed with rtfs.PrintLimited:
// whatever a value is (a DAG of shared vectors whose text would be
// exponentially long), printing it costs no more than its bound, and a
// value past the bound is a LimitExceeded the plan sees.

// fieldBudget is the most an event records of one value in full; a
// longer value is recorded by its summary (control.Summary). It leaves
// room in control.MaxEventPayload for the rest of the event.
const fieldBudget = control.MaxEventPayload - 8<<10

// maxErrorText bounds an error message recorded in an event.
const maxErrorText = 2 << 10

// maxCallArgs bounds the text of the arguments of a call yielded to the
// host: one control message, less room for the envelope.
const maxCallArgs = control.DefaultMaxFrame - 64<<10

// recordableResult returns what an event records of a capability's
// result: v itself when its text is short, else its summary. A value
// whose text is longer than capability.MaxValueBytes cannot be recorded:
// the call fails with a LimitExceeded.
func recordableResult(capID string, v rtfs.Value) (rtfs.Value, error) {
	text, ok := rtfs.PrintLimited(v, capability.MaxValueBytes)
	if !ok {
		return nil, &rtfs.Error{Type: rtfs.ErrLimit, Message: fmt.Sprintf("capability %s: its result prints to more than %d bytes (capability.MaxValueBytes), too large to record",
			capID, capability.MaxValueBytes)}
	}
	if len(text) <= fieldBudget {
		return v, nil
	}
	return control.Summary(text), nil
}

// recordableArgs returns what an event records of a call's arguments: a
// vector (the chain's capability.call payload has one) of the arguments,
// those too long to record in full by their summaries, or, when even that
// is too long (many arguments), a vector of one summary of them all.
func recordableArgs(capID string, args []rtfs.Value) (rtfs.Value, error) {
	all := rtfs.NewVector(args...)
	text, ok := rtfs.PrintLimited(all, capability.MaxValueBytes)
	if !ok {
		return nil, &rtfs.Error{Type: rtfs.ErrLimit, Message: fmt.Sprintf("capability %s: its arguments print to more than %d bytes (capability.MaxValueBytes), too large to record",
			capID, capability.MaxValueBytes)}
	}
	if len(text) <= fieldBudget {
		return all, nil
	}
	each := fieldBudget / len(args)
	out := make([]rtfs.Value, len(args))
	size := 0
	for i, a := range args {
		t, ok := rtfs.PrintLimited(a, each)
		if ok {
			out[i] = a
		} else {
			full, _ := rtfs.PrintLimited(a, capability.MaxValueBytes)
			out[i] = control.Summary(full)
			t = rtfs.Print(out[i])
		}
		size += len(t) + 1
	}
	if size <= fieldBudget {
		return rtfs.NewVector(out...), nil
	}
	return rtfs.NewVector(control.Summary(text)), nil
}

// argTexts prints the arguments of a call yielded to the host, within
// what one control message carries.
func argTexts(capID string, args []rtfs.Value) ([]string, error) {
	texts := make([]string, len(args))
	room := maxCallArgs
	for i, a := range args {
		text, ok := rtfs.PrintLimited(a, room)
		if !ok {
			return nil, &rtfs.Error{Type: rtfs.ErrLimit, Message: fmt.Sprintf("capability %s: its arguments print to more than the %d bytes a call to the host carries", capID, maxCallArgs)}
		}
		texts[i] = text
		room -= len(text)
	}
	return texts, nil
}

// clip shortens s to at most n bytes, saying so.
func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return strings.ToValidUTF8(s[:n], "") + fmt.Sprintf("... (%d bytes)", len(s))
}
