package archive

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

func openTemp(t *testing.T) *Archive {
	t.Helper()
	a, err := Open(filepath.Join(t.TempDir(), "arc"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close() })
	return a
}

func mustPut(t *testing.T, a *Archive, obj string) string {
	t.Helper()
	h, err := a.Put([]byte(obj))
	if err != nil {
		t.Fatalf("Put(%s): %v", obj, err)
	}
	return h
}

func TestPutGet(t *testing.T) {
	a := openTemp(t)
	h := mustPut(t, a, `{ "b": [1, 2.0], "a": "x", "kind": "test" }`)
	want := `{"a":"x","b":[1,2],"kind":"test"}`
	if h != Hash([]byte(want)) {
		t.Errorf("hash %s is not the SHA-256 of the canonical form", h)
	}
	got, err := a.Get(h)
	if err != nil || string(got) != want {
		t.Fatalf("Get = %s, %v; want %s", got, err, want)
	}
	if p := filepath.Join(a.Dir(), h[:2], h[2:4], h+".json"); !fileExists(p) {
		t.Errorf("object not at %s", p)
	}
	if ok, err := a.Has(h); !ok || err != nil {
		t.Errorf("Has = %v, %v", ok, err)
	}
	list, err := a.List()
	if err != nil || len(list) != 1 || list[0] != (Object{Hash: h, Kind: "test", Path: ObjectPath(h), Size: int64(len(want))}) {
		t.Errorf("List = %+v, %v", list, err)
	}
}

func fileExists(p string) bool { _, err := os.Stat(p); return err == nil }

func TestPutIsNoOpWhenPresent(t *testing.T) {
	a := openTemp(t)
	h := mustPut(t, a, `{"a":1}`)
	idx := filepath.Join(a.Dir(), indexName)
	before, _ := os.Stat(idx)
	obj, _ := os.Stat(filepath.Join(a.Dir(), ObjectPath(h)))
	if h2 := mustPut(t, a, `{ "a" : 1.0 }`); h2 != h {
		t.Fatalf("same object, other hash: %s %s", h, h2)
	}
	after, _ := os.Stat(idx)
	obj2, _ := os.Stat(filepath.Join(a.Dir(), ObjectPath(h)))
	if !os.SameFile(before, after) || !os.SameFile(obj, obj2) {
		t.Error("a second Put of the same object rewrote a file")
	}
}

func TestPutErrors(t *testing.T) {
	a := openTemp(t)
	tests := []struct {
		in   string
		want error
	}{
		{`[1]`, ErrNotObject},
		{`"s"`, ErrNotObject},
		{`{"a":1,"a":1}`, ErrDuplicateKey},
		{`{`, ErrNotJSON},
	}
	for _, tt := range tests {
		if _, err := a.Put([]byte(tt.in)); !errors.Is(err, tt.want) {
			t.Errorf("Put(%s) = %v, want %v", tt.in, err, tt.want)
		}
	}
}

func TestBadHash(t *testing.T) {
	a := openTemp(t)
	for _, h := range []string{"", "../../etc/passwd", "ABCDEF" + fmt.Sprintf("%058d", 0), fmt.Sprintf("%063d", 0)} {
		if _, err := a.Get(h); !errors.Is(err, ErrBadHash) {
			t.Errorf("Get(%q) = %v, want ErrBadHash", h, err)
		}
		if err := a.Delete(h); !errors.Is(err, ErrBadHash) {
			t.Errorf("Delete(%q) = %v, want ErrBadHash", h, err)
		}
	}
	if _, err := a.Get(fmt.Sprintf("%064d", 0)); !errors.Is(err, ErrNotFound) {
		t.Errorf("Get(absent) = %v, want ErrNotFound", err)
	}
}

func TestGetDetectsCorruption(t *testing.T) {
	a := openTemp(t)
	h := mustPut(t, a, `{"a":"hello"}`)
	p := filepath.Join(a.Dir(), ObjectPath(h))
	if err := os.WriteFile(p, []byte(`{"a":"hellp"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Get(h); !errors.Is(err, ErrCorrupt) {
		t.Errorf("Get of a changed object = %v, want ErrCorrupt", err)
	}
}

func TestDeletePersistsIndex(t *testing.T) {
	a := openTemp(t)
	h1 := mustPut(t, a, `{"n":1}`)
	h2 := mustPut(t, a, `{"n":2}`)
	if err := a.Delete(h1); err != nil {
		t.Fatal(err)
	}
	if err := a.Delete(h1); !errors.Is(err, ErrNotFound) {
		t.Errorf("second Delete = %v, want ErrNotFound", err)
	}
	b, err := Open(a.Dir())
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	list, _ := b.List()
	if len(list) != 1 || list[0].Hash != h2 {
		t.Errorf("after Delete and reopen: %+v", list)
	}
	if fileExists(filepath.Join(a.Dir(), ObjectPath(h1))) {
		t.Error("deleted file still there")
	}
	if ms, _ := b.Verify(); len(ms) != 0 {
		t.Errorf("Verify after Delete: %v", ms)
	}
}

func TestRefs(t *testing.T) {
	a := openTemp(t)
	h1 := mustPut(t, a, `{"n":1}`)
	h2 := mustPut(t, a, `{"n":2}`)
	steps := []struct {
		name, old, new string
		want           error
	}{
		{"create", "", h1, nil},
		{"stale old", "", h2, ErrRefConflict},
		{"advance", h1, h2, nil},
		{"absent target", h2, fmt.Sprintf("%064d", 0), ErrNotFound},
		{"bad name", "", h1, ErrBadRef},
	}
	for _, s := range steps {
		name := "head"
		if s.name == "bad name" {
			name = "../x"
		}
		if err := a.SetRef(name, s.old, s.new); !errors.Is(err, s.want) && (err != nil || s.want != nil) {
			t.Errorf("%s: SetRef = %v, want %v", s.name, err, s.want)
		}
	}
	if got, err := a.Ref("head"); got != h2 || err != nil {
		t.Errorf("Ref = %s, %v", got, err)
	}
	if err := a.Delete(h2); !errors.Is(err, ErrReferenced) {
		t.Errorf("Delete of a ref target = %v, want ErrReferenced", err)
	}
	if err := a.SetRef("head", h2, ""); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Ref("head"); !errors.Is(err, ErrNotFound) {
		t.Errorf("removed ref: %v", err)
	}
}

func TestReadOnly(t *testing.T) {
	a := openTemp(t)
	h := mustPut(t, a, `{"n":1}`)
	r, err := OpenReadOnly(a.Dir())
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if _, err := r.Put([]byte(`{"n":2}`)); !errors.Is(err, ErrReadOnly) {
		t.Errorf("Put = %v", err)
	}
	if err := r.Delete(h); !errors.Is(err, ErrReadOnly) {
		t.Errorf("Delete = %v", err)
	}
	if _, err := r.Get(h); err != nil {
		t.Error(err)
	}
	if _, err := OpenReadOnly(filepath.Join(a.Dir(), "nope")); err == nil {
		t.Error("OpenReadOnly of a missing directory succeeded")
	}
}

func TestTypedObjects(t *testing.T) {
	a := openTemp(t)
	p := Plan{Name: "demo", Source: "(plan \"demo\" :body (step \"a\" 1))", Steps: []string{"a"}}
	ph, err := a.PutPlan(p)
	if err != nil {
		t.Fatal(err)
	}
	got, err := a.GetPlan(ph)
	if err != nil || got.Name != p.Name || got.Source != p.Source || !slices.Equal(got.Steps, p.Steps) {
		t.Fatalf("GetPlan = %+v, %v", got, err)
	}
	ch, err := a.PutCheckpoint(Checkpoint{Note: "ccos.chain/1\n3\nabc=\n\n— key sig\n", Plan: ph})
	if err != nil {
		t.Fatal(err)
	}
	c, err := a.GetCheckpoint(ch)
	if err != nil || c.Plan != ph {
		t.Fatalf("GetCheckpoint = %+v, %v", c, err)
	}
	if _, err := a.GetPlan(ch); !errors.Is(err, ErrWrongKind) {
		t.Errorf("GetPlan of a checkpoint = %v, want ErrWrongKind", err)
	}
	env := `{"payload":"e30=","payloadType":"application/vnd.in-toto+json","signatures":[{"keyid":"k","sig":"AA=="}]}`
	rh, err := a.PutReceipt(Receipt{Envelope: env, Run: "ccos-1", Plan: ph})
	if err != nil {
		t.Fatal(err)
	}
	if r, err := a.GetReceipt(rh); err != nil || r.Envelope != env || r.Run != "ccos-1" {
		t.Fatalf("GetReceipt = %+v, %v", r, err)
	}
	list, _ := a.List()
	kinds := map[string]string{}
	for _, o := range list {
		kinds[o.Hash] = o.Kind
	}
	if kinds[ph] != KindPlan || kinds[ch] != KindCheckpoint {
		t.Errorf("index kinds: %v", kinds)
	}
	for _, bad := range []error{
		func() error { _, err := a.PutPlan(Plan{Name: "x"}); return err }(),
		func() error { _, err := a.PutCheckpoint(Checkpoint{}); return err }(),
		func() error { _, err := a.PutReceipt(Receipt{Run: "r"}); return err }(),
		func() error { _, err := a.PutIntent(&Intent{}); return err }(),
	} {
		if !errors.Is(bad, ErrInvalid) {
			t.Errorf("invalid typed object: %v, want ErrInvalid", bad)
		}
	}
}

func TestIndexRebuiltWhenMissing(t *testing.T) {
	a := openTemp(t)
	h := mustPut(t, a, `{"n":1,"kind":"k"}`)
	if err := os.Remove(filepath.Join(a.Dir(), indexName)); err != nil {
		t.Fatal(err)
	}
	b, err := Open(a.Dir())
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	list, _ := b.List()
	if len(list) != 1 || list[0].Hash != h || list[0].Kind != "k" {
		t.Errorf("rebuilt index: %+v", list)
	}
}
