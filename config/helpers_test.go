package config

import (
	"os"
	"strings"
	"testing"

	"github.com/ccos-project/ccos/rtfs"
)

// load loads src with no evaluator.
func load(t testing.TB, src, file string) *Result {
	t.Helper()
	return Load([]byte(src), file, nil)
}

// readFile returns a file's text or fails the test.
func readFile(t testing.TB, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// bases are complete, valid configs the rule tests start from.
var bases = map[string]string{
	"microvm":           "../examples/microvm.rtfs",
	"minimal":           "testdata/golden/minimal.rtfs",
	"networked":         "testdata/golden/networked.rtfs",
	"microvm-min":       "testdata/golden/microvm-min.rtfs",
	"microvm-networked": "testdata/golden/microvm-networked.rtfs",
}

// edit sets the value at a dotted path (keys without colons) to the RTFS
// text val; an empty val removes the key.
type edit struct{ path, val string }

// expandedBase loads a base config and returns its complete map.
func expandedBase(t testing.TB, name string) *rtfs.Map {
	t.Helper()
	res := load(t, readFile(t, bases[name]), bases[name])
	if res.Diags.HasErrors() || res.Expanded == nil {
		t.Fatalf("base %s does not load: %v", name, res.Diags)
	}
	return res.Expanded
}

// applyEdits returns the canonical text of base with the edits applied.
func applyEdits(t testing.TB, base *rtfs.Map, edits []edit) string {
	t.Helper()
	m := base
	for _, e := range edits {
		var v rtfs.Value
		if e.val != "" {
			var err error
			if v, err = rtfs.ReadOne(e.val, "edit"); err != nil {
				t.Fatalf("edit %s: %v", e.path, err)
			}
		}
		m = assocIn(m, strings.Split(e.path, "."), v)
	}
	return Canonical(m)
}

// assocIn returns m with the value at keys set to v (removed when v is nil),
// creating maps along the way.
func assocIn(m *rtfs.Map, keys []string, v rtfs.Value) *rtfs.Map {
	k := rtfs.Keyword{Name: keys[0]}
	if len(keys) == 1 {
		if v == nil {
			return m.Dissoc(k)
		}
		return m.Assoc(k, v)
	}
	inner, _ := m.Get(k)
	im, ok := inner.(*rtfs.Map)
	if !ok {
		im = rtfs.NewMap(1)
	}
	return m.Assoc(k, assocIn(im, keys[1:], v))
}

// find returns the first diagnostic with code, if any.
func find(ds Diagnostics, code string) (Diagnostic, bool) {
	for _, d := range ds {
		if d.Code == code {
			return d, true
		}
	}
	return Diagnostic{}, false
}
