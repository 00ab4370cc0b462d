package archive

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

func TestVerifyFindsEveryProblem(t *testing.T) {
	type damage func(t *testing.T, dir, h string)
	write := func(t *testing.T, p, s string) {
		t.Helper()
		os.MkdirAll(filepath.Dir(p), 0o700)
		if err := os.WriteFile(p, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	editIndex := func(t *testing.T, dir string, f func(string) string) {
		t.Helper()
		data, err := os.ReadFile(filepath.Join(dir, indexName))
		if err != nil {
			t.Fatal(err)
		}
		write(t, filepath.Join(dir, indexName), f(string(data)))
	}
	// indexed stores obj as a file and lists it in the index, bypassing Put.
	indexed := func(t *testing.T, dir, obj string) {
		h := Hash([]byte(obj))
		write(t, filepath.Join(dir, ObjectPath(h)), obj)
		editIndex(t, dir, func(s string) string {
			return strings.Replace(s, `"objects":{`, `"objects":{"`+h+`":{"path":"`+ObjectPath(h)+`","size":`+strconv.Itoa(len(obj))+`},`, 1)
		})
	}
	tests := []struct {
		name string
		do   damage
		want []Problem
	}{
		{"sound", func(*testing.T, string, string) {}, nil},
		{"flipped byte", func(t *testing.T, dir, h string) {
			p := filepath.Join(dir, ObjectPath(h))
			b, _ := os.ReadFile(p)
			b[3] ^= 0x01
			write(t, p, string(b))
		}, []Problem{ProblemHash}},
		{"missing file", func(t *testing.T, dir, h string) {
			os.Remove(filepath.Join(dir, ObjectPath(h)))
		}, []Problem{ProblemMissing}},
		{"unindexed file", func(t *testing.T, dir, h string) {
			obj := `{"x":1}`
			write(t, filepath.Join(dir, ObjectPath(Hash([]byte(obj)))), obj)
		}, []Problem{ProblemUnindexed}},
		{"temp files", func(t *testing.T, dir, h string) {
			write(t, filepath.Join(dir, ".tmp-123"), "{")
			write(t, filepath.Join(dir, ObjectPath(h)[:5], ".tmp-456"), "{")
		}, []Problem{ProblemTemp, ProblemTemp}},
		{"unexpected files", func(t *testing.T, dir, h string) {
			write(t, filepath.Join(dir, "notes.txt"), "x")
			write(t, filepath.Join(dir, ObjectPath(h)[:5], "x.json"), "x")
			write(t, filepath.Join(dir, "zz", "q"), "x")
		}, []Problem{ProblemUnexpected, ProblemUnexpected, ProblemUnexpected}},
		{"not canonical", func(t *testing.T, dir, h string) { indexed(t, dir, `{ "a":1}`) }, []Problem{ProblemNotCanonical}},
		{"unparsable", func(t *testing.T, dir, h string) { indexed(t, dir, `{"a":`) }, []Problem{ProblemUnparsable}},
		{"wrong size", func(t *testing.T, dir, h string) {
			editIndex(t, dir, func(s string) string { return strings.Replace(s, `"size":`, `"size":9`, 1) })
		}, []Problem{ProblemEntry}},
		{"index unreadable", func(t *testing.T, dir, h string) { write(t, filepath.Join(dir, indexName), `{"format":`) },
			[]Problem{ProblemIndex, ProblemUnindexed}},
		{"index path elsewhere", func(t *testing.T, dir, h string) {
			editIndex(t, dir, func(s string) string { return strings.Replace(s, `"path":"`, `"path":"../`, 1) })
		}, []Problem{ProblemIndex, ProblemUnindexed}},
		{"dangling ref", func(t *testing.T, dir, h string) {
			editIndex(t, dir, func(s string) string {
				return strings.Replace(s, `"objects":{`, `"refs":{"x":"`+strings.Repeat("0", 64)+`"},"objects":{`, 1)
			})
		}, []Problem{ProblemDanglingRef}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := openTemp(t)
			h := mustPut(t, a, `{"kind":"test","v":"some content"}`)
			tt.do(t, a.Dir(), h)
			ms, err := a.Verify()
			if err != nil {
				t.Fatal(err)
			}
			var got []Problem
			for _, m := range ms {
				got = append(got, m.Problem)
			}
			if strings.Join(problems(got), ",") != strings.Join(problems(tt.want), ",") {
				t.Errorf("Verify = %v, want %v", ms, tt.want)
			}
		})
	}
}

func problems(ps []Problem) []string {
	out := make([]string, len(ps))
	for i, p := range ps {
		out[i] = string(p)
	}
	return out
}

// TestVerifyFindsEveryFlippedByte flips each byte of each stored object in
// turn: Verify must report exactly that object every time.
func TestVerifyFindsEveryFlippedByte(t *testing.T) {
	a := openTemp(t)
	var hashes []string
	for _, obj := range []string{`{"a":1}`, `{"kind":"ccos.plan","name":"n","source":"(+ 1 2)","steps":[]}`, `{"s":"héllo\n"}`} {
		hashes = append(hashes, mustPut(t, a, obj))
	}
	for _, h := range hashes {
		p := filepath.Join(a.Dir(), ObjectPath(h))
		orig, _ := os.ReadFile(p)
		for i := range orig {
			for _, mask := range []byte{0x01, 0x80} {
				b := []byte(string(orig))
				b[i] ^= mask
				os.WriteFile(p, b, 0o600)
				ms, err := a.Verify()
				if err != nil || len(ms) != 1 || ms[0].Hash != h || ms[0].Problem != ProblemHash {
					t.Fatalf("byte %d ^ %#x of %s: Verify = %v, %v", i, mask, h, ms, err)
				}
			}
		}
		os.WriteFile(p, orig, 0o600)
	}
	if ms, _ := a.Verify(); len(ms) != 0 {
		t.Errorf("restored archive: %v", ms)
	}
}

func TestOpenRecovers(t *testing.T) {
	a := openTemp(t)
	mustPut(t, a, `{"n":1}`)
	dir := a.Dir()
	orphan := `{"n":2}`
	oh := Hash([]byte(orphan))
	os.MkdirAll(filepath.Join(dir, filepath.Dir(ObjectPath(oh))), 0o700)
	os.WriteFile(filepath.Join(dir, ObjectPath(oh)), []byte(orphan), 0o600)
	os.WriteFile(filepath.Join(dir, ".tmp-index-1"), []byte("{"), 0o600)
	os.WriteFile(filepath.Join(dir, filepath.Dir(ObjectPath(oh)), ".tmp-2"), []byte("{"), 0o600)
	bad := `{"n":3}`
	bh := Hash([]byte(bad))
	os.MkdirAll(filepath.Join(dir, filepath.Dir(ObjectPath(bh))), 0o700)
	os.WriteFile(filepath.Join(dir, ObjectPath(bh)), []byte(`{"n":4}`), 0o600)

	if r, _ := OpenReadOnly(dir); r != nil {
		ms, _ := r.Verify()
		if len(ms) != 4 {
			t.Errorf("read-only Verify before recovery = %v, want 2 temp files and 2 unindexed", ms)
		}
		r.Close()
	}
	b, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if ok, _ := b.Has(oh); !ok {
		t.Error("complete orphan object not indexed by Open")
	}
	if ok, _ := b.Has(bh); ok {
		t.Error("damaged orphan indexed")
	}
	ms, _ := b.Verify()
	if len(ms) != 1 || ms[0].Problem != ProblemUnindexed || ms[0].Hash != bh {
		t.Errorf("Verify after recovery = %v, want only the damaged orphan", ms)
	}
}
