package guest

import (
	"errors"
	"path/filepath"
	"testing"
)

func TestOutboxBuffersSpillsAndResends(t *testing.T) {
	o := &Outbox{MemBytes: 200, SpillBytes: 400, SpillPath: filepath.Join(t.TempDir(), "events")}
	var added int
	for {
		err := o.Add("capability.call", "s", `{:n 1}`)
		if errors.Is(err, ErrOutboxFull) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		added++
	}
	if added < 5 || o.Len() != added {
		t.Fatalf("added %d, buffered %d", added, o.Len())
	}
	// Everything not acknowledged comes back in order, memory and spill
	// alike, as often as asked (a broken channel sends it again).
	for round := 0; round < 2; round++ {
		items, err := o.Pending()
		if err != nil {
			t.Fatal(err)
		}
		if len(items) != added {
			t.Fatalf("round %d: %d pending, want %d", round, len(items), added)
		}
		for i, it := range items {
			if it.Seq != uint64(i+1) || it.Type != "capability.call" || it.Step != "s" {
				t.Fatalf("round %d: item %d = %+v", round, i, it)
			}
		}
	}
	if err := o.Acked(); err != nil {
		t.Fatal(err)
	}
	if o.Len() != 0 {
		t.Errorf("%d left after ack", o.Len())
	}
	// Numbering continues after an acknowledgement.
	if err := o.Add("guest.event", "", "1"); err != nil {
		t.Fatal(err)
	}
	items, _ := o.Pending()
	if len(items) != 1 || items[0].Seq != uint64(added+1) {
		t.Errorf("after ack: %+v", items)
	}
}

func TestOutboxWithoutSpill(t *testing.T) {
	o := &Outbox{MemBytes: 100}
	if err := o.Add("guest.event", "", string(make([]byte, 200))); !errors.Is(err, ErrOutboxFull) {
		t.Errorf("oversize event: %v", err)
	}
	if o.Len() != 0 {
		t.Errorf("a refused event was kept")
	}
}
