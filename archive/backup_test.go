package archive

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ccos-project/ccos/rtfs"
)

func readFixture(t *testing.T, name string) *Backup {
	t.Helper()
	b, err := ReadBackupFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestReadBackupFixtures(t *testing.T) {
	b := readFixture(t, "backup_v1_1.json")
	i := b.Intents["intent_123"]
	if i.Goal != "Summarise the weekly sales report" || i.Created != 1692790000 || string(i.Constraints["max-cost"]) != "10" {
		t.Errorf("intent: %+v", i)
	}
	if string(i.Extra["priority"]) != "3" || i.Extra["future_field"] == nil {
		t.Errorf("unknown intent fields not kept: %v", i.Extra)
	}
	if b.Intents["intent_456"].ID != "intent_456" {
		t.Error("an intent without id does not take its key")
	}
	if e := b.Edges[0]; e.Type != "DependsOn" || *e.Weight != 1 || string(e.Extra["note"]) != `"kept"` {
		t.Errorf("edge: %+v", e)
	}
	if b.Extra["signature_block"] == nil || b.Manifest["note"] == nil {
		t.Errorf("unknown top-level fields or manifest not kept: %v %v", b.Extra, b.Manifest)
	}
	old := readFixture(t, "backup_v1_0.json")
	if old.Edges[0].Type != "IsSubgoalOf" || old.RTFS != "" {
		t.Errorf("1.0 edge: %+v", old.Edges[0])
	}
}

// TestBackupRoundTrip restores a backup into an archive, backs it up again
// and checks that every intent and edge, unknown members included, is the
// same, and that the written backup reads again.
func TestBackupRoundTrip(t *testing.T) {
	in := readFixture(t, "backup_v1_1.json")
	a := openTemp(t)
	if _, err := a.Restore(in); err != nil {
		t.Fatal(err)
	}
	out, err := a.Backup(1700000000, nil)
	if err != nil {
		t.Fatal(err)
	}
	if out.Version != BackupVersion || out.Timestamp != 1700000000 {
		t.Errorf("header: %s %d", out.Version, out.Timestamp)
	}
	if canonJSON(t, in.Intents) != canonJSON(t, out.Intents) || canonJSON(t, in.Edges) != canonJSON(t, out.Edges) {
		t.Errorf("graph changed:\n%s\n%s", canonJSON(t, in.Intents), canonJSON(t, out.Intents))
	}
	path := filepath.Join(t.TempDir(), "b.json")
	if err := WriteBackupFile(path, out); err != nil {
		t.Fatal(err)
	}
	if st, _ := os.Stat(path); st.Mode().Perm() != 0o600 {
		t.Errorf("backup mode %v, want 0600", st.Mode().Perm())
	}
	again, err := ReadBackupFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if canonJSON(t, again) != canonJSON(t, out) {
		t.Error("a written backup reads back different")
	}
	// Reading and writing a backup keeps its unknown top-level members.
	enc, _ := in.Encode()
	if !strings.Contains(string(enc), `"signature_block"`) {
		t.Error("unknown top-level member lost on re-encoding")
	}
}

func canonJSON(t *testing.T, v any) string {
	t.Helper()
	raw, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	c, err := Canonicalize(raw)
	if err != nil {
		t.Fatal(err)
	}
	return string(c)
}

func TestSnapshotReads(t *testing.T) {
	g := readFixture(t, "backup_v1_1.json").Graph()
	snap, err := Snapshot(g)
	if err != nil {
		t.Fatal(err)
	}
	forms, err := rtfs.ReadString(snap, "snap")
	if err != nil {
		t.Fatalf("snapshot does not read: %v\n%s", err, snap)
	}
	want := `(intent {:id "intent_123" :goal "Summarise the weekly sales report" :status "Active" :created 1692790000 ` +
		`:constraints {"max-cost" 10 "region" "eu"} :metadata {"owner" "ops"} :extra {"future_field" {"nested" [1 2.5 "x"]} "priority" 3}})`
	if !strings.Contains(snap, want) {
		t.Errorf("snapshot:\n%s\nwant a line\n%s", snap, want)
	}
	if len(forms) != 1 || rtfs.Print(forms[0].(*rtfs.List).Items[0]) != "intent-graph" {
		t.Errorf("snapshot form: %s", snap)
	}
	if err := checkSnapshot(snap, g); err != nil {
		t.Error(err)
	}
}

func TestReadBackupErrors(t *testing.T) {
	tests := []struct {
		name, in string
		want     error
	}{
		{"not json", `{`, ErrBackup},
		{"no version", `{"intents":{}}`, ErrBackupVersion},
		{"numeric version", `{"version":1.1}`, ErrBackupVersion},
		{"major 2", `{"version":"2.0"}`, ErrBackupVersion},
		{"bad version", `{"version":"1.1.1"}`, ErrBackupVersion},
		{"intent filed under another id", `{"version":"1.1","intents":{"a":{"id":"b"}}}`, ErrGraph},
		{"null intent", `{"version":"1.1","intents":{"a":null}}`, ErrBackup},
		{"dangling edge", `{"version":"1.1","intents":{"a":{}},"edges":[{"from":"a","to":"z","edge_type":"DependsOn"}]}`, ErrGraph},
		{"edge without type", `{"version":"1.1","intents":{"a":{}},"edges":[{"from":"a","to":"a"}]}`, ErrGraph},
		{"wrong types", `{"version":"1.1","intents":[]}`, ErrBackup},
		{"snapshot does not read", `{"version":"1.1","intents":{},"rtfs":"(intent-graph"}`, ErrSnapshotMismatch},
		{"snapshot other intents", `{"version":"1.1","intents":{"a":{}},"rtfs":"(intent-graph (intents (intent {:id \"b\"})) (edges))"}`, ErrSnapshotMismatch},
		{"snapshot other edges", `{"version":"1.1","intents":{"a":{}},"rtfs":"(intent-graph (intents (intent {:id \"a\"})) (edges (edge {:from \"a\" :to \"a\" :type \"X\"})))"}`, ErrSnapshotMismatch},
		{"snapshot wrong head", `{"version":"1.1","intents":{},"rtfs":"(graph)"}`, ErrSnapshotMismatch},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ReadBackup([]byte(tt.in))
			if !errors.Is(err, tt.want) || !errors.Is(err, ErrBackup) {
				t.Errorf("ReadBackup(%s) = %v, want %v", tt.in, err, tt.want)
			}
		})
	}
	if _, err := ReadBackup([]byte(`{"version":"1.7","intents":{},"edges":[],"new":1}`)); err != nil {
		t.Errorf("a later 1.x backup: %v", err)
	}
}

func TestGraphInArchive(t *testing.T) {
	a := openTemp(t)
	h, err := a.UpdateGraph(func(g *Graph) error {
		if err := g.AddIntent(&Intent{ID: "a", Goal: "one"}); err != nil {
			return err
		}
		if err := g.AddIntent(&Intent{ID: "b", Goal: "two"}); err != nil {
			return err
		}
		return g.AddEdge(Edge{From: "a", To: "b", Type: "DependsOn"})
	})
	if err != nil {
		t.Fatal(err)
	}
	g, h2, err := a.LoadGraph()
	if err != nil || h2 != h || len(g.Intents) != 2 || len(g.Edges) != 1 {
		t.Fatalf("LoadGraph = %+v %s %v", g, h2, err)
	}
	if err := g.AddEdge(Edge{From: "a", To: "nope", Type: "X"}); !errors.Is(err, ErrGraph) {
		t.Errorf("dangling AddEdge = %v", err)
	}
	// A save based on a stale graph hash is refused.
	g.Intents["a"].Status = "completed"
	if _, err := a.SaveGraph(g, ""); !errors.Is(err, ErrRefConflict) {
		t.Errorf("stale SaveGraph = %v, want ErrRefConflict", err)
	}
	if _, err := a.SaveGraph(g, h); err != nil {
		t.Fatal(err)
	}
	if ms, _ := a.Verify(); len(ms) != 0 {
		t.Errorf("Verify: %v", ms)
	}
	// Verify sees a graph member that went missing from the index.
	g2, gh, _ := a.LoadGraph()
	data, _ := a.Get(gh)
	var rec graphRecord
	json.Unmarshal(data, &rec)
	if err := a.Delete(rec.Intents["b"]); err != nil {
		t.Fatal(err)
	}
	ms, _ := a.Verify()
	if len(ms) != 1 || ms[0].Problem != ProblemDanglingRef {
		t.Errorf("Verify after deleting a graph member: %v", ms)
	}
	_ = g2
}
