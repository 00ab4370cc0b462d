package plan

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/ccos-project/ccos/rtfs"
)

// FuzzRead feeds arbitrary text to the plan reader (seeds: the example
// plans and forms that exercise steps, options and calls). It must never
// panic; an error is a reader error list, a *Error with a message, or
// ErrNoPlan, and an accepted plan's steps have unique names.
func FuzzRead(f *testing.F) {
	files, _ := filepath.Glob("../examples/plans/*.rtfs")
	for _, p := range files {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	for _, s := range []string{
		`(step "s" [:effects [[:network {:domains ["a.com"] :methods [:GET]}] :time] :retry 2 :resources {:max_time_ms 5}] (call :ccos.echo 1))`,
		`(plan "p" :intent {:goal "x"} :body (do (defn f [] (call :x.y)) (step "a" (f)) (step "b" {:effects []} (call (keyword "z")))))`,
		`(step "s" (step "s" 1))`, `(plan)`, `(step 1)`, `'(step "q" 1)`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, src []byte) {
		p, err := Read(src, "fuzz.rtfs")
		if err != nil {
			var pe *Error
			var el rtfs.ErrorList
			switch {
			case errors.As(err, &pe):
				if pe.Msg == "" {
					t.Fatal("a plan error without a message")
				}
			case errors.As(err, &el), errors.Is(err, ErrNoPlan):
			default:
				t.Fatalf("an error of an unexpected kind: %T %v", err, err)
			}
			return
		}
		seen := map[string]bool{}
		for _, s := range p.Steps {
			if seen[s.Name] {
				t.Fatalf("step %q twice", s.Name)
			}
			seen[s.Name] = true
		}
	})
}
