package rtfs

import (
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestPrintCanonical(t *testing.T) {
	tests := []struct {
		v    Value
		want string
	}{
		{Nil{}, "nil"},
		{Int{V: -7, Raw: "-0x7"}, "-7"},
		{Float{V: 12300}, "12300.0"},
		{Float{V: 0.5, Raw: "1/2"}, "0.5"},
		{Float{V: 1e21}, "1e+21"},
		{Float{V: -0.0456}, "-0.0456"},
		{Float{V: math.Inf(-1)}, "##-Inf"},
		{Float{V: math.NaN()}, "##NaN"},
		{String{V: "a\"b\\c\nd\te\x01"}, `"a\"b\\c\nd\te\u0001"`},
		{String{V: "αβγ"}, `"αβγ"`},
		{Keyword{Name: "ns.a/b"}, ":ns.a/b"},
		{MapOf(Keyword{Name: "b"}, Int{V: 1}, Keyword{Name: "a"}, NewVector(Int{V: 2}, String{V: "x"})), `{:b 1 :a [2 "x"]}`},
		{NewList(Symbol{Name: "f"}, NewList(), NewVector(), NewMap(0)), "(f () [] {})"},
	}
	for _, tc := range tests {
		if got := Print(tc.v); got != tc.want {
			t.Errorf("Print = %s, want %s", got, tc.want)
		}
		back, err := ReadOne(tc.want, "")
		if err != nil {
			t.Errorf("reading %s: %v", tc.want, err)
			continue
		}
		if !Equal(back, tc.v) {
			t.Errorf("%s read back as %s", tc.want, Print(back))
		}
	}
}

func TestPrintRawKeepsSpelling(t *testing.T) {
	v := readOne(t, "[0xFF 1e5 +42 1/2 2024-01-15T10:30:45Z]")
	if got := PrintRaw(v); got != "[0xFF 1e5 +42 1/2 2024-01-15T10:30:45Z]" {
		t.Errorf("PrintRaw = %s", got)
	}
	if got := Print(v); got != "[255 100000.0 42 0.5 2024-01-15T10:30:45Z]" {
		t.Errorf("Print = %s", got)
	}
}

// corpusSources returns every readable RTFS text the project has: the
// corpus files that read whole, the seed config (fixed) and the test data.
func corpusSources(t testing.TB) map[string][]byte {
	out := map[string][]byte{}
	files, _ := filepath.Glob(filepath.Join(corpusDir(t), "*.rtfs"))
	more, _ := filepath.Glob("testdata/*.rtfs")
	for _, f := range append(files, more...) {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := Read(b, f, ReadOptions{}); err == nil {
			out[f] = b
		}
	}
	if len(out) < 14 {
		t.Fatalf("only %d readable corpus files", len(out))
	}
	return out
}

func TestRoundTripCorpus(t *testing.T) {
	for name, src := range corpusSources(t) {
		checkRoundTrip(t, name, src)
	}
}

// checkRoundTrip asserts the printer contracts on one readable text: the
// canonical form of every form reads back equal; the pretty form reads back
// to equal forms with the same comments, and formatting it again changes
// nothing.
func checkRoundTrip(t *testing.T, name string, src []byte) {
	t.Helper()
	s, err := Read(src, name, ReadOptions{})
	if err != nil {
		return
	}
	for _, v := range s.Forms {
		text := Print(v)
		back, err := ReadOne(text, "")
		if err != nil {
			t.Fatalf("%s: canonical %q does not read: %v", name, text, err)
		}
		if !Equal(back, v) {
			t.Fatalf("%s: canonical %q reads back as %q", name, text, Print(back))
		}
		if strings.Contains(text, "\n") {
			t.Fatalf("%s: canonical form spans lines: %q", name, text)
		}
	}
	pretty := Format(s, DefaultWidth)
	s2, err := Read([]byte(pretty), name, ReadOptions{})
	if err != nil {
		t.Fatalf("%s: formatted text does not read: %v\n%s", name, err, pretty)
	}
	if len(s2.Forms) != len(s.Forms) {
		t.Fatalf("%s: formatting changed the form count %d -> %d\n%s", name, len(s.Forms), len(s2.Forms), pretty)
	}
	for i := range s.Forms {
		if !Equal(s.Forms[i], s2.Forms[i]) {
			t.Fatalf("%s: form %d changed by formatting:\n%s\n%s", name, i, Print(s.Forms[i]), Print(s2.Forms[i]))
		}
	}
	if len(s2.Comments) != len(s.Comments) {
		t.Fatalf("%s: formatting changed the comment count %d -> %d\n%s", name, len(s.Comments), len(s2.Comments), pretty)
	}
	for i := range s.Comments {
		if s.Comments[i].Text != s2.Comments[i].Text {
			t.Fatalf("%s: comment %d changed: %q -> %q", name, i, s.Comments[i].Text, s2.Comments[i].Text)
		}
	}
	if again := Format(s2, DefaultWidth); again != pretty {
		t.Fatalf("%s: formatting is not idempotent:\n--- first\n%s\n--- second\n%s", name, pretty, again)
	}
}

func TestFormatLayout(t *testing.T) {
	src := `;; header

(agent.config :version "0.1" :agent-id "agent.x" ; the id
 :orchestrator {:isolation {:mode :microvm :fs {:ephemeral true :mounts {:capabilities {:mode :ro}}}} :dlp {:enabled true :policy :strict}}
 ;; features
 :features [:network])
(defn f [x] (+ x 1))`
	want := `;; header

(agent.config
  :version "0.1"
  :agent-id "agent.x" ; the id
  :orchestrator {:isolation {:mode :microvm
                             :fs {:ephemeral true
                                  :mounts {:capabilities {:mode :ro}}}}
                 :dlp {:enabled true :policy :strict}}
  ;; features
  :features [:network])
(defn f [x] (+ x 1))
`
	s, err := Read([]byte(src), "", ReadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got := Format(s, 80); got != want {
		t.Errorf("got:\n%s\nwant:\n%s", got, want)
	}
}

func TestFormatCommentBeforeCloser(t *testing.T) {
	src := "(a\n  b ; trailing\n  ;; last\n  )"
	s, _ := Read([]byte(src), "", ReadOptions{})
	got := Format(s, 80)
	want := "(a b ; trailing\n  ;; last\n  )\n"
	if got != want {
		t.Errorf("got %q, want %q", got, want)
	}
	checkRoundTrip(t, "closer", []byte(src))
}

// PrintLimited prints what Print prints within its limit, and stops soon
// after the limit otherwise, even for a value whose text would be
// exponentially long (a DAG of shared vectors).
func TestPrintLimited(t *testing.T) {
	for _, src := range []string{`[1 "two" :three {:a ^{:m 1} [4]} '(quote x) 2.5]`, `{}`, `"a\"b"`} {
		v, err := ReadOne(src, "t")
		if err != nil {
			t.Fatal(err)
		}
		want := Print(v)
		if got, ok := PrintLimited(v, len(want)); !ok || got != want {
			t.Errorf("%s: %q %v, want %q", src, got, ok, want)
		}
		if _, ok := PrintLimited(v, len(want)-1); ok {
			t.Errorf("%s: printed past the limit", src)
		}
	}
	dag := Value(NewVector(String{V: "leaf"}))
	for range 64 {
		dag = NewVector(dag, dag)
	}
	if s, ok := PrintLimited(dag, 1<<20); ok || s != "" {
		t.Errorf("a DAG of 2^64 leaves printed within 1 MiB: %d bytes", len(s))
	}
}
