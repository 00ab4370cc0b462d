package capability

import (
	"os"
	"path/filepath"
	"testing"
)

// FuzzDecodeContract feeds arbitrary text to the contract decoder (seeds:
// the example registry and testdata/fuzz/FuzzDecodeContract). It must never
// panic; a contract it accepts has an id and known effect kinds, is within
// itself, and installs into a registry of its own.
func FuzzDecodeContract(f *testing.F) {
	files, _ := filepath.Glob("../examples/capabilities/*.rtfs")
	for _, p := range files {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, src []byte) {
		l, err := DecodeContract(src, "fuzz.rtfs")
		if err != nil {
			if err.Error() == "" {
				t.Fatal("an error without a message")
			}
			return
		}
		if l.ID == "" {
			t.Fatal("accepted a contract without an id")
		}
		for _, e := range l.Contract.Effects {
			if _, ok := effectScopes[e.Kind]; !ok {
				t.Fatalf("accepted effect kind %q", e.Kind)
			}
		}
		if f := broadening(l.Contract, l.Contract); f != nil {
			t.Fatalf("a contract broadens itself: %+v", f)
		}
		if err := NewRegistry().Install([]*Listing{l}, nil); err != nil {
			t.Fatalf("installing into an empty registry: %v", err)
		}
	})
}
