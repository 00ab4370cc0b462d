package guest

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func openWAL(t *testing.T, path, session string) *WAL {
	t.Helper()
	w, err := OpenWAL(path, session)
	if err != nil {
		t.Fatal(err)
	}
	return w
}

func TestWALRecordsAndReopens(t *testing.T) {
	path := filepath.Join(t.TempDir(), ".ccos-wal")
	w := openWAL(t, path, "s1")
	if err := w.Started("k1", "ccos.io.write-file", "d1"); err != nil {
		t.Fatal(err)
	}
	if err := w.Finished("k1", "4", nil); err != nil {
		t.Fatal(err)
	}
	w.Started("k2", "ccos.io.delete-file", "d2")
	w.Finished("k2", "", errors.New("no such file"))
	w.Started("k3", "ccos.io.write-file", "d3")
	w.Close()

	w = openWAL(t, path, "s1")
	defer w.Close()
	if e, ok := w.Lookup("k1"); !ok || !e.Done || e.Value != "4" || e.Capability != "ccos.io.write-file" {
		t.Errorf("k1: %+v %v", e, ok)
	}
	if e, ok := w.Lookup("k2"); !ok || !e.Done || e.Error != "no such file" {
		t.Errorf("k2: %+v %v", e, ok)
	}
	if e, ok := w.Lookup("k3"); !ok || e.Done {
		t.Errorf("k3 must be started, not done: %+v %v", e, ok)
	}
	if _, ok := w.Lookup("k4"); ok {
		t.Error("k4 found")
	}
}

// A guest that died while writing leaves a torn last record: the log keeps
// what precedes it, cuts it, and appends after the cut.
func TestWALTornTail(t *testing.T) {
	for name, tail := range map[string]string{
		"partial line":   `0badc0de {"key":"k2","sta`,
		"bad checksum":   "00000000 {\"key\":\"k2\",\"state\":\"done\",\"value\":\"1\"}\n",
		"not json":       "6c8b5e8a {\"key\"\n",
		"no checksum":    "{\"key\":\"k2\",\"state\":\"done\"}\n",
		"unknown state":  "",
		"garbage binary": "\x00\xff\x00\xff\n",
	} {
		t.Run(name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), ".ccos-wal")
			w := openWAL(t, path, "s")
			w.Started("k1", "c", "")
			w.Finished("k1", "1", nil)
			w.Close()
			good, _ := os.ReadFile(path)
			if name == "unknown state" {
				tail = walLine(t, `{"key":"k2","state":"maybe"}`)
			}
			os.WriteFile(path, append(append([]byte{}, good...), tail...), 0o600)

			w = openWAL(t, path, "s")
			if e, ok := w.Lookup("k1"); !ok || !e.Done || e.Value != "1" {
				t.Fatalf("k1 lost: %+v", e)
			}
			if _, ok := w.Lookup("k2"); ok {
				t.Error("the torn record was applied")
			}
			if got, _ := os.ReadFile(path); string(got) != string(good) {
				t.Errorf("the tail was not cut:\n%q", got)
			}
			if err := w.Started("k2", "c", ""); err != nil {
				t.Fatal(err)
			}
			w.Close()
			w = openWAL(t, path, "s")
			defer w.Close()
			if e, ok := w.Lookup("k2"); !ok || e.Done {
				t.Errorf("appending after the cut: %+v %v", e, ok)
			}
		})
	}
}

// walLine frames a record as the log does.
func walLine(t *testing.T, body string) string {
	t.Helper()
	return frame(body)
}

// Another session's log (a workdir that is not fresh) is discarded.
func TestWALOtherSession(t *testing.T) {
	path := filepath.Join(t.TempDir(), ".ccos-wal")
	w := openWAL(t, path, "old")
	w.Started("k1", "c", "")
	w.Finished("k1", "1", nil)
	w.Close()
	w = openWAL(t, path, "new")
	defer w.Close()
	if _, ok := w.Lookup("k1"); ok {
		t.Error("the old session's record was kept")
	}
	b, _ := os.ReadFile(path)
	if strings.Count(string(b), "\n") != 1 || !strings.Contains(string(b), `"new"`) {
		t.Errorf("log after a new session: %q", b)
	}
}

func TestWALInMemory(t *testing.T) {
	w := openWAL(t, "", "s")
	w.Started("k", "c", "")
	w.Finished("k", ":ok", nil)
	if e, ok := w.Lookup("k"); !ok || e.Value != ":ok" {
		t.Errorf("%+v %v", e, ok)
	}
}

// FuzzWALOpen feeds arbitrary bytes as a log file: opening never panics,
// keeps only a prefix of whole lines, and a log reopened after an append
// holds the appended record.
func FuzzWALOpen(f *testing.F) {
	f.Add([]byte(frame(`{"key":"s","state":"session"}`) + frame(`{"key":"k","state":"started","capability":"c","args":"a"}`) +
		frame(`{"key":"k","state":"done","value":"1"}`)))
	f.Add([]byte(frame(`{"key":"s","state":"session"}`) + `0badc0de {"key":"k","sta`))
	f.Add([]byte(frame(`{"key":"other","state":"session"}`)))
	f.Add([]byte("\x00\x00\n\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		path := filepath.Join(t.TempDir(), "wal")
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
		w, err := OpenWAL(path, "s")
		if err != nil {
			t.Fatal(err)
		}
		kept, _ := os.ReadFile(path)
		if !strings.HasPrefix(string(data), string(kept)) && !strings.HasPrefix(string(kept), frame(`{"key":"s","state":"session"}`)) {
			t.Fatalf("the log is neither a prefix of the input nor a new log: %q", kept)
		}
		if err := w.Started("fuzz-key", "c", "d"); err != nil {
			t.Fatal(err)
		}
		w.Close()
		w = openWAL(t, path, "s")
		defer w.Close()
		if e, ok := w.Lookup("fuzz-key"); !ok || e.Done || e.Args != "d" {
			t.Fatalf("the appended record is lost: %+v %v", e, ok)
		}
	})
}
