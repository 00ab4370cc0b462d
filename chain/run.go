package chain

import (
	"strconv"
	"strings"
)

// InRun reports whether an event recorded under session belongs to the
// run whose session id is run: the run itself, or one of the sandboxes
// that replaced a crashed one (run-r1, run-r2, ...).
func InRun(session, run string) bool {
	if session == run {
		return true
	}
	rest, ok := strings.CutPrefix(session, run+"-r")
	if !ok || rest == "" || rest[0] == '0' {
		return false
	}
	_, err := strconv.ParseUint(rest, 10, 32)
	return err == nil
}

// RunEvents returns, in order, the events of run (InRun) among events
// whose sequence number is below size.
func RunEvents(events []*Event, run string, size uint64) []*Event {
	var out []*Event
	for _, e := range events {
		if e.Seq < size && InRun(e.Session, run) {
			out = append(out, e)
		}
	}
	return out
}
