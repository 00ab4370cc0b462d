package orchestrator

import (
	"errors"
	"slices"
	"sync"
	"testing"

	"github.com/ccos-project/ccos/rtfs"
)

// memJournal keeps entries in order, as a durable journal would.
type memJournal struct {
	mu       sync.Mutex
	entries  []JournalEntry
	beginErr error
}

func (j *memJournal) Load() ([]JournalEntry, error) {
	j.mu.Lock()
	defer j.mu.Unlock()
	return slices.Clone(j.entries), nil
}

func (j *memJournal) Begin(e JournalEntry) error {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.beginErr != nil {
		return j.beginErr
	}
	j.entries = append(j.entries, e)
	return nil
}

func (j *memJournal) Finish(e JournalEntry) error {
	j.mu.Lock()
	defer j.mu.Unlock()
	for i := range j.entries {
		if j.entries[i].Key == e.Key {
			j.entries[i] = e
			return nil
		}
	}
	return errors.New("finish without begin")
}

// A call is in the journal before it runs and with its outcome after; a
// record loaded from the journal answers it without running it again, with
// the same value or error.
func TestJournalRecordsBeforeAndAfter(t *testing.T) {
	j := &memJournal{}
	r, err := NewCallRecordWith(j)
	if err != nil {
		t.Fatal(err)
	}
	runs := 0
	v, replayed, err := r.Once("k1", "test.bump", []string{`"a"`}, func() (rtfs.Value, error) {
		runs++
		got, _ := j.Load()
		if len(got) != 1 || got[0].Done || got[0].Key != "k1" {
			t.Errorf("while the call runs the journal holds %+v, want k1 started", got)
		}
		return rtfs.MapOf(rtfs.Keyword{Name: "status"}, rtfs.Int{V: 201}), nil
	})
	if err != nil || replayed || rtfs.Print(v) != "{:status 201}" {
		t.Fatalf("first call: %v %v %v", v, replayed, err)
	}
	r.Once("k2", "test.fail", nil, func() (rtfs.Value, error) { runs++; return nil, errors.New("refused by origin") })

	again, err := NewCallRecordWith(j)
	if err != nil {
		t.Fatal(err)
	}
	v, replayed, err = again.Once("k1", "test.bump", []string{`"a"`}, func() (rtfs.Value, error) { runs++; return nil, nil })
	if err != nil || !replayed || rtfs.Print(v) != "{:status 201}" {
		t.Errorf("replayed call: %v %v %v", v, replayed, err)
	}
	_, replayed, err = again.Once("k2", "test.fail", nil, func() (rtfs.Value, error) { runs++; return nil, nil })
	if err == nil || err.Error() != "refused by origin" || !replayed {
		t.Errorf("replayed failure: %v %v", replayed, err)
	}
	if runs != 2 {
		t.Errorf("the calls ran %d times, want 2", runs)
	}
	if _, _, err := again.Once("k1", "test.other", nil, nil); !errors.Is(err, ErrKeyConflict) {
		t.Errorf("another call under k1: %v, want ErrKeyConflict", err)
	}
}

// A call the journal holds as started and not done is in doubt: it is not
// run, and the record says which keys it refused.
func TestJournalInDoubt(t *testing.T) {
	j := &memJournal{entries: []JournalEntry{{Key: "k1", Capability: "ccos.network.http-fetch", Args: []string{`"http://x/"`}}}}
	r, err := NewCallRecordWith(j)
	if err != nil {
		t.Fatal(err)
	}
	ran := false
	_, _, err = r.Once("k1", "ccos.network.http-fetch", []string{`"http://x/"`}, func() (rtfs.Value, error) { ran = true; return nil, nil })
	if !errors.Is(err, ErrInDoubt) || ran {
		t.Fatalf("in-doubt call: ran %v, %v", ran, err)
	}
	if got := r.InDoubt(); !slices.Equal(got, []string{"k1"}) {
		t.Errorf("InDoubt() = %v", got)
	}
}

// A call whose start cannot be recorded does not run, and may be tried
// again once the journal works.
func TestJournalBeginFailureRunsNothing(t *testing.T) {
	j := &memJournal{beginErr: errors.New("conflict: the run was reclaimed")}
	r, _ := NewCallRecordWith(j)
	ran := false
	_, _, err := r.Once("k1", "test.bump", nil, func() (rtfs.Value, error) { ran = true; return rtfs.Int{V: 1}, nil })
	if err == nil || ran {
		t.Fatalf("ran %v, err %v", ran, err)
	}
	j.beginErr = nil
	v, _, err := r.Once("k1", "test.bump", nil, func() (rtfs.Value, error) { ran = true; return rtfs.Int{V: 1}, nil })
	if err != nil || !ran || rtfs.Print(v) != "1" {
		t.Errorf("after the journal recovered: ran %v, %v, %v", ran, v, err)
	}
}

// A journal whose recorded value does not read is refused whole.
func TestJournalBadValue(t *testing.T) {
	j := &memJournal{entries: []JournalEntry{{Key: "k1", Capability: "c", Done: true, Value: "{:a"}}}
	if _, err := NewCallRecordWith(j); err == nil {
		t.Fatal("a journal with an unreadable value loaded")
	}
}
