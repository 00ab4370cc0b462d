package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ccos-project/ccos/archive"
)

const archiveBackupV11 = `{
  "version": "1.1",
  "timestamp": 1692796800,
  "intents": {
    "intent_123": {"id": "intent_123", "goal": "Summarise the report", "status": "Active", "priority": 3},
    "intent_456": {"id": "intent_456", "goal": "Email the summary"}
  },
  "edges": [{"from": "intent_456", "to": "intent_123", "edge_type": "DependsOn", "weight": 1.0}],
  "manifest": {"note": "periodic backup"}
}`

func TestArchiveRestoreBackupVerify(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "arc")
	in := writeTemp(t, "backup.json", archiveBackupV11)
	out, errs, code := runCCOS(t, "", "archive", "restore", in, "--into", dir)
	if code != 0 || !strings.Contains(out, "restored 2 intents, 1 edges") {
		t.Fatalf("restore: exit %d\n%s%s", code, out, errs)
	}
	out, errs, code = runCCOS(t, "", "archive", "verify", dir)
	if code != 0 || !strings.Contains(out, "ok, 3 objects verified") {
		t.Fatalf("verify: exit %d\n%s%s", code, out, errs)
	}
	file := filepath.Join(t.TempDir(), "again.json")
	out, errs, code = runCCOS(t, "", "archive", "backup", dir, "--out", file, "--note", "test")
	if code != 0 || !strings.Contains(out, "2 intents, 1 edges") {
		t.Fatalf("backup: exit %d\n%s%s", code, out, errs)
	}
	b, err := archive.ReadBackupFile(file)
	if err != nil {
		t.Fatal(err)
	}
	if b.Version != "1.1" || string(b.Intents["intent_123"].Extra["priority"]) != "3" || b.RTFS == "" || string(b.Manifest["note"]) != `"test"` {
		t.Errorf("backup: %+v", b)
	}
}

func TestArchiveVerifyReportsEveryMismatch(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "arc")
	a, err := archive.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	h1, _ := a.Put([]byte(`{"n":1}`))
	h2, _ := a.Put([]byte(`{"n":2}`))
	a.Close()
	if err := os.WriteFile(filepath.Join(dir, archive.ObjectPath(h1)), []byte(`{"n":7}`), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(dir, archive.ObjectPath(h2))); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, ".tmp-1"), nil, 0o600)

	out, _, code := runCCOS(t, "", "archive", "verify", dir)
	if code != 1 {
		t.Fatalf("exit %d, want 1", code)
	}
	for _, want := range []string{"hash-mismatch " + archive.ObjectPath(h1), "missing " + archive.ObjectPath(h2), "temp-file .tmp-1"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	out, _, code = runCCOS(t, "", "archive", "verify", dir, "--json")
	var rep struct {
		OK         bool
		Objects    int
		Mismatches []archive.Mismatch
	}
	if err := json.Unmarshal([]byte(out), &rep); err != nil || code != 1 || rep.OK || rep.Objects != 2 || len(rep.Mismatches) != 3 {
		t.Errorf("--json: exit %d, %+v, %v\n%s", code, rep, err, out)
	}
}

func TestArchiveCLIErrors(t *testing.T) {
	tmp := t.TempDir()
	badVersion := writeTemp(t, "v2.json", `{"version":"2.0","intents":{}}`)
	dangling := writeTemp(t, "d.json", `{"version":"1.1","intents":{"a":{}},"edges":[{"from":"a","to":"b","edge_type":"X"}]}`)
	tests := []struct {
		name string
		args []string
		code int
		want string
	}{
		{"verify missing dir", []string{"archive", "verify", filepath.Join(tmp, "none")}, 1, "no such file"},
		{"verify no args", []string{"archive", "verify"}, 2, ""},
		{"backup without --out", []string{"archive", "backup", tmp}, 2, "out"},
		{"restore without --into", []string{"archive", "restore", badVersion}, 2, "into"},
		{"restore version 2", []string{"archive", "restore", badVersion, "--into", filepath.Join(tmp, "a")}, 1, `unsupported backup version: "2.0"`},
		{"restore dangling edge", []string{"archive", "restore", dangling, "--into", filepath.Join(tmp, "a")}, 1, `no intent "b"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, errs, code := runCCOS(t, "", tt.args...)
			if code != tt.code || !strings.Contains(errs, tt.want) {
				t.Errorf("exit %d, want %d; stderr:\n%s\nwant %q", code, tt.code, errs, tt.want)
			}
		})
	}
}
