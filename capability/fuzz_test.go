package capability

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/ccos-project/ccos/rtfs"
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

// FuzzParseEffects feeds arbitrary forms to the effects reader (what a
// step's :effects and a contract's :effects hold). It must never panic; an
// error is a *DecodeError with a place, and accepted effects are of known
// kinds and print back to effects that read the same.
func FuzzParseEffects(f *testing.F) {
	for _, s := range []string{
		`[[:network {:domains ["a.example.com" "*.b.org"] :methods [:GET "POST"]}] :time [:env {:vars ["TZ"]}]]`,
		`[:fs [:fs {:paths ["/data"]}] :llm [:llm {:models ["m"]}] :gpu :random]`,
		`[]`, `[:nope]`, `[[:network {:hosts []}]]`, `{:a 1}`, `[[:env]]`, `[[]]`,
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, src string) {
		v, err := rtfs.ReadOne(src, "fuzz.rtfs")
		if err != nil {
			return
		}
		effs, err := ParseEffects(v)
		if err != nil {
			var de *DecodeError
			if !errors.As(err, &de) || de.Msg == "" {
				t.Fatalf("an error that is not a DecodeError with a message: %v", err)
			}
			return
		}
		for _, e := range effs {
			if _, ok := effectScopes[e.Kind]; !ok {
				t.Fatalf("accepted effect kind %q", e.Kind)
			}
		}
		if f := broadening(Contract{Effects: effs}, Contract{Effects: effs}); f != nil {
			t.Fatalf("effects broaden themselves: %+v", f)
		}
	})
}
