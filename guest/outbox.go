package guest

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"os"

	"github.com/ccos-project/ccos/control"
)

// Outbox buffers the events the guest records about itself until the host
// acknowledges them. Events are numbered from 1 and never dropped: up to
// MemBytes stay in memory, the rest spill to a file (in the sandbox's
// tmpfs) up to SpillBytes; past that Add reports the outbox full, and the
// caller must flush (the step pauses until the host has acknowledged).
// After a broken channel, Pending returns everything not acknowledged, to
// be sent again; the host drops what it already has by sequence number.
type Outbox struct {
	// MemBytes and SpillBytes bound the buffer.
	MemBytes, SpillBytes int64
	// SpillPath is the spill file; "" disables spilling.
	SpillPath string

	mem        []control.EventItem
	memSize    int64
	spillSize  int64
	spillCount int
	next       uint64 // the next sequence number
}

// ErrOutboxFull is returned by Add when the event does not fit: flush
// first.
var ErrOutboxFull = errors.New("guest event buffer full")

// Len returns how many events wait for acknowledgement.
func (o *Outbox) Len() int { return o.spillCount + len(o.mem) }

// Bytes returns the size of the events waiting for acknowledgement.
func (o *Outbox) Bytes() int64 { return o.memSize + o.spillSize }

func (o *Outbox) size(it control.EventItem) int64 {
	return int64(len(it.Type) + len(it.Step) + len(it.Payload) + 32)
}

// Add numbers an event and buffers it. It returns ErrOutboxFull, keeping
// nothing, when the event does not fit.
func (o *Outbox) Add(typ, step, payload string) error {
	it := control.EventItem{Seq: o.next + 1, Type: typ, Step: step, Payload: payload}
	n := o.size(it)
	switch {
	case o.memSize+n <= o.MemBytes && o.spillCount == 0:
		o.mem = append(o.mem, it)
		o.memSize += n
	case o.SpillPath != "" && o.spillSize+n <= o.SpillBytes:
		// Once anything has spilled, later events spill too, so the file
		// and memory stay in sequence order (file first).
		if err := o.spillOut(); err != nil {
			return err
		}
		if err := o.appendSpill(it); err != nil {
			return err
		}
		o.spillSize += n
		o.spillCount++
	default:
		return ErrOutboxFull
	}
	o.next++
	return nil
}

// spillOut moves what is in memory to the spill file.
func (o *Outbox) spillOut() error {
	for _, it := range o.mem {
		if err := o.appendSpill(it); err != nil {
			return err
		}
		o.spillSize += o.size(it)
		o.spillCount++
	}
	o.mem, o.memSize = nil, 0
	return nil
}

func (o *Outbox) appendSpill(it control.EventItem) error {
	f, err := os.OpenFile(o.SpillPath, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("spilling guest events: %w", err)
	}
	line, _ := json.Marshal(it)
	if _, err := f.Write(append(line, '\n')); err != nil {
		f.Close()
		return fmt.Errorf("spilling guest events: %w", err)
	}
	return f.Close()
}

// Pending returns every event not yet acknowledged, in order.
func (o *Outbox) Pending() ([]control.EventItem, error) {
	var out []control.EventItem
	if o.spillCount > 0 {
		f, err := os.Open(o.SpillPath)
		if err != nil {
			return nil, fmt.Errorf("reading spilled guest events: %w", err)
		}
		defer f.Close()
		sc := bufio.NewScanner(f)
		sc.Buffer(make([]byte, 64<<10), 16<<20)
		for sc.Scan() {
			var it control.EventItem
			if err := json.Unmarshal(sc.Bytes(), &it); err != nil {
				return nil, fmt.Errorf("reading spilled guest events: %w", err)
			}
			out = append(out, it)
		}
		if err := sc.Err(); err != nil {
			return nil, fmt.Errorf("reading spilled guest events: %w", err)
		}
		if len(out) != o.spillCount {
			return nil, fmt.Errorf("reading spilled guest events: %d of %d found", len(out), o.spillCount)
		}
	}
	return append(out, o.mem...), nil
}

// Acked drops every event: the host has recorded them all.
func (o *Outbox) Acked() error {
	o.mem, o.memSize = nil, 0
	if o.spillCount > 0 {
		o.spillCount, o.spillSize = 0, 0
		if err := os.Remove(o.SpillPath); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("clearing spilled guest events: %w", err)
		}
	}
	return nil
}
