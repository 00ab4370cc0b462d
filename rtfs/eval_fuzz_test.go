package rtfs

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ccos-project/ccos/internal/testenv"
)

// fuzzLimits keep each fuzz input to a few milliseconds.
var fuzzLimits = Limits{Timeout: 200 * time.Millisecond, MaxSteps: 20_000, MaxDepth: 100,
	MaxCollection: 10_000, MaxOutput: 10_000}

// FuzzEval reads and evaluates arbitrary input under tight limits. It must
// never panic, hang or report anything but an *Error (or a reader error).
func FuzzEval(f *testing.F) {
	// The shared corpus seeds the fuzzer when it is there.
	var files []string
	if dir, err := testenv.SharedPath(corpusRel); err == nil {
		files, _ = filepath.Glob(filepath.Join(dir, "*.rtfs"))
	}
	for _, name := range files {
		b, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(string(b))
		for _, c := range splitCases(filepath.Base(name), string(b)) {
			if !c.commented {
				f.Add(c.code)
			}
		}
	}
	specFiles, _ := filepath.Glob(filepath.Join(specCorpusDir, "*.rtfs"))
	for _, name := range specFiles {
		b, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(string(b))
		for _, c := range splitSpecCases(filepath.Base(name), string(b)) {
			f.Add(c.code)
		}
	}
	for _, s := range []string{"(defmacro m [& xs] `(do ~@xs (m ~@xs))) (m 1)", "`(a ~@(range 3) ~(+ 1 2) `(b ~~1))",
		"(module m (:exports [f]) (defn f [] (g)) (defn g [] 1)) (import m :as q) (q/f)",
		"(re-seq \"(a+)+b\" \"aaaaaaaaaaaaaaaaaaaaaaaa\")", "(case [1] [1] :v (1 2) :l :d)",
		"(let [x : int 1 [a b] [1]] [x a b])", "(fitlr 1)", "(RuntimeError. \"x\")"} {
		f.Add(s)
	}
	for _, s := range []string{"(loop [] (recur))", "(defn f [x] (f x)) (f 1)", "(range 1e12)",
		"(loop [v [1]] (recur (concat v v)))", "(json/parse \"[[[[1]]]]\")", "(str (range 5000))",
		"(match [1 [2]] [a [b & c :as d]] [a b c d])", "(try (throw {:type :LimitExceeded}) (catch e 1))"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, src string) {
		forms, err := ReadString(src, "fuzz")
		if err != nil {
			return
		}
		in := New(Options{Limits: fuzzLimits, Host: &recordingHost{},
			Sleep: func(context.Context, time.Duration) error { return nil }})
		start := time.Now()
		v, err := in.EvalForms(context.Background(), forms)
		if d := time.Since(start); d > 5*time.Second {
			t.Fatalf("evaluation took %v", d)
		}
		if err != nil {
			var e *Error
			if !errors.As(err, &e) {
				t.Fatalf("error of type %T: %v", err, err)
			}
			if e.Type == ErrInternal {
				t.Fatalf("internal error: %v", e.Message)
			}
			_ = e.Detail()
			return
		}
		if v == nil {
			t.Fatal("nil value without error")
		}
		if s := Print(v); strings.Contains(s, "recur>") {
			t.Fatalf("recur escaped: %s", s)
		}
	})
}
