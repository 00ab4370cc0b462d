package rtfs

import (
	"errors"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func readOne(t *testing.T, src string) Value {
	t.Helper()
	v, err := ReadOne(src, "t.rtfs")
	if err != nil {
		t.Fatalf("ReadOne(%q): %v", src, err)
	}
	return v
}

func TestReadScalars(t *testing.T) {
	ts, _ := time.Parse(time.RFC3339Nano, "2024-01-15T10:30:45.123Z")
	tests := []struct {
		src  string
		want Value
	}{
		{"42", Int{V: 42}},
		{"-17", Int{V: -17}},
		{"+42", Int{V: 42}},
		{"-0", Int{V: 0}},
		{"9223372036854775807", Int{V: math.MaxInt64}},
		{"-9223372036854775808", Int{V: math.MinInt64}},
		{"0x42", Int{V: 66}},
		{"0xFF", Int{V: 255}},
		{"0o755", Int{V: 493}},
		{"0b1010", Int{V: 10}},
		{"-0x10", Int{V: -16}},
		{"3.14159", Float{V: 3.14159}},
		{"-2.5", Float{V: -2.5}},
		{"1e5", Float{V: 1e5}},
		{"2e6", Float{V: 2e6}},
		{"1.5e-3", Float{V: 1.5e-3}},
		{"1.23e4", Float{V: 12300}},
		{"-4.56E-2", Float{V: -0.0456}},
		{"1E+3", Float{V: 1000}},
		{"1/2", Float{V: 0.5}},
		{"##Inf", Float{V: math.Inf(1)}},
		{"##-Inf", Float{V: math.Inf(-1)}},
		{"##NaN", Float{V: math.NaN()}},
		{`"hello world"`, String{V: "hello world"}},
		{`""`, String{V: ""}},
		{`"line1\nline2\ttabbed\"quoted\\"`, String{V: "line1\nline2\ttabbed\"quoted\\"}},
		{`"cr\r"`, String{V: "cr\r"}},
		{`"\u00e9\u4e2d"`, String{V: "é中"}},
		{`"\uD83D\uDE00"`, String{V: "😀"}},
		{"\"multi\nline\"", String{V: "multi\nline"}},
		{`"Unicode: αβγ"`, String{V: "Unicode: αβγ"}},
		{"true", Bool{V: true}},
		{"false", Bool{V: false}},
		{"nil", Nil{}},
		{":a", Keyword{Name: "a"}},
		{":ns.a/b", Keyword{Name: "ns.a/b"}},
		{":com.acme:v1.0/b", Keyword{Name: "com.acme:v1.0/b"}},
		{":kebab-case-keyword", Keyword{Name: "kebab-case-keyword"}},
		{":_private", Keyword{Name: "_private"}},
		{":$global", Keyword{Name: "$global"}},
		{":*dynamic*", Keyword{Name: "*dynamic*"}},
		{":+operator+", Keyword{Name: "+operator+"}},
		{"agent.config", Symbol{Name: "agent.config"}},
		{"profile:microvm-min", Symbol{Name: "profile:microvm-min"}},
		{"ns/name", Symbol{Name: "ns/name"}},
		{"->", Symbol{Name: "->"}},
		{"->>", Symbol{Name: "->>"}},
		{"+", Symbol{Name: "+"}},
		{"-", Symbol{Name: "-"}},
		{"/", Symbol{Name: "/"}},
		{"a-b?", Symbol{Name: "a-b?"}},
		{"x:int", Symbol{Name: "x:int"}},
		{":", Symbol{Name: ":"}},
		{"if-not", Symbol{Name: "if-not"}},
		{"-not", Symbol{Name: "-not"}},
		{"λ", Symbol{Name: "λ"}},
		{"swap!", Symbol{Name: "swap!"}},
		{"%1", Symbol{Name: "%1"}},
		{"2024-01-15T10:30:45.123Z", Timestamp{T: ts}},
		{"550e8400-e29b-41d4-a716-446655440000", UUID{V: "550e8400-e29b-41d4-a716-446655440000"}},
		{"a50e8400-e29b-41d4-a716-446655440000", UUID{V: "a50e8400-e29b-41d4-a716-446655440000"}},
		{"resource://local/data/file.txt", Resource{URI: "resource://local/data/file.txt"}},
	}
	for _, tc := range tests {
		got := readOne(t, tc.src)
		if !Equal(got, tc.want) {
			t.Errorf("read %q = %s (%s), want %s (%s)", tc.src, Print(got), got.Kind(), Print(tc.want), tc.want.Kind())
		}
	}
}

func TestReadCollectionsAndSugar(t *testing.T) {
	tests := []struct{ src, want string }{
		{"(a b c)", "(a b c)"},
		{"[1 [2 [3]]]", "[1 [2 [3]]]"},
		{"{:a 1, :b [2 3]}", "{:a 1 :b [2 3]}"},
		{`{"k" 1 [1 2] :v {:m 1} 2 nil 3}`, `{"k" 1 [1 2] :v {:m 1} 2 nil 3}`},
		{"'x", "'x"},
		{"'(1 2)", "'(1 2)"},
		{"`(a ~b ~@c)", "`(a ~b ~@c)"},
		{"@state", "@state"},
		{"#(* % %)", "#(* % %)"},
		{"#(+ %1 %2)", "#(+ %1 %2)"},
		{"^{:doc \"d\"} f", "^{:doc \"d\"} f"},
		{"^:private [1]", "^:private [1]"},
		{"(defn f [x:int] :int x)", "(defn f [x:int] :int x)"},
		{"(defn f [] :[:union :int :string] 1)", "(defn f [] :[:union :int :string] 1)"},
		{"[& numbers:[:vector :int]]", "[& numbers:[:vector :int]]"},
		{"(a ; comment\n b)", "(a b)"},
		{"(a #| block\n comment |# b)", "(a b)"},
		{"(a #| outer #| nested |# still |# b)", "(a b)"},
		{"(a #_ (ignored) b)", "(a b)"},
	}
	for _, tc := range tests {
		if got := Print(readOne(t, tc.src)); got != tc.want {
			t.Errorf("read %q printed %q, want %q", tc.src, got, tc.want)
		}
	}
}

func TestReadExpandsSugar(t *testing.T) {
	tests := []struct{ src, want string }{
		{"'x", "(quote x)"},
		{"@a", "(deref a)"},
		{"~@xs", "(unquote-splicing xs)"},
		{"#(* % %)", "(fn [%] (* % %))"},
		{"#(+ %1 %3)", "(fn [%1 %2 %3] (+ %1 %3))"},
		{"#(f % %2 %&)", "(fn [%1 %2 & %&] (let [% %1] (f % %2 %&)))"},
	}
	for _, tc := range tests {
		l := readOne(t, tc.src).(*List)
		if got := Print(&List{Items: l.Items}); got != tc.want {
			t.Errorf("read %q expands to %q, want %q", tc.src, got, tc.want)
		}
	}
}

func TestWordBoundaries(t *testing.T) {
	forms, err := ReadString("(if-not a->b x-1 x:int->y)", "")
	if err != nil {
		t.Fatal(err)
	}
	items := forms[0].(*List).Items
	want := []string{"if-not", "a->b", "x-1", "x:int->y"}
	for i, w := range want {
		if s, ok := items[i].(Symbol); !ok || s.Name != w {
			t.Errorf("item %d = %s, want symbol %s", i, Describe(items[i]), w)
		}
	}
}

func TestSpans(t *testing.T) {
	src := "(agent.config\n  :version \"0.1\"\n  :ids [α :b])"
	v := readOne(t, src).(*List)
	check := func(what string, got Span, line, col, endLine, endCol int) {
		t.Helper()
		if got.Start.Line != line || got.Start.Col != col || got.End.Line != endLine || got.End.Col != endCol {
			t.Errorf("%s span = %d:%d-%d:%d, want %d:%d-%d:%d", what, got.Start.Line, got.Start.Col,
				got.End.Line, got.End.Col, line, col, endLine, endCol)
		}
		if got.File != "t.rtfs" {
			t.Errorf("%s file = %q", what, got.File)
		}
	}
	check("list", v.S, 1, 1, 3, 15)
	check("head", v.Items[0].Span(), 1, 2, 1, 14)
	check("keyword", v.Items[1].Span(), 2, 3, 2, 11)
	check("string", v.Items[2].Span(), 2, 12, 2, 17)
	vec := v.Items[4].(*Vector)
	check("vector", vec.S, 3, 8, 3, 14)
	// Columns count characters: α is one column though two bytes.
	check("unicode symbol", vec.Items[0].Span(), 3, 9, 3, 10)
	check("after unicode", vec.Items[1].Span(), 3, 11, 3, 13)
	if got := vec.Items[1].Span().Start.Offset; got != strings.Index(src, ":b") {
		t.Errorf("offset of :b = %d, want %d", got, strings.Index(src, ":b"))
	}
}

// readErrs reads src and returns its errors, failing if there are none.
func readErrs(t *testing.T, src string) ErrorList {
	t.Helper()
	_, err := Read([]byte(src), "t.rtfs", ReadOptions{})
	var list ErrorList
	if !errors.As(err, &list) {
		t.Fatalf("read %q: want errors, got %v", src, err)
	}
	return list
}

func TestReadErrors(t *testing.T) {
	tests := []struct {
		name string
		src  string
		// want holds, per expected error, "line:col" and a fragment of the message.
		want [][2]string
	}{
		{"unterminated string", "(a\n  \"abc", [][2]string{{"2:3", "unterminated string: the string opened here"}}},
		{"unterminated list", "(agent.config\n  :a [1 2]", [][2]string{{"1:1", "unclosed list: (agent.config ...) opened here is not closed before the end of the input at line 2; expected ')'"}}},
		{"unterminated vector", "(a [1 2)", [][2]string{
			{"1:8", "unexpected ')': the innermost open form is the vector '[' opened at line 1 col 4, which needs ']'"},
			{"1:1", "unclosed list: (a ...) opened here"},
		}},
		{"unterminated map", "{:a 1", [][2]string{{"1:1", "unclosed map: '{' opened here"}}},
		{"unterminated block comment", "a #| never", [][2]string{{"1:3", "unterminated block comment"}}},
		{"stray closer", "(a b))", [][2]string{{"1:6", "unexpected ')': nothing is open here; the list (a ...) opened at line 1 col 1 was already closed at line 1 col 5"}}},
		{"stray closer first", ")", [][2]string{{"1:1", "unexpected ')': nothing is open here"}}},
		{"mismatched", "(let [x 1)\n  x)", [][2]string{{"1:10", "unexpected ')': the innermost open form is the vector '[' opened at line 1 col 6, which needs ']'"}}},
		{"mismatched skip", "[a }\n b]", [][2]string{{"1:4", "unexpected '}'"}}},
		{"odd map", "{:a 1\n :b}", [][2]string{{"1:1", "map has an odd number of forms (3): the keyword :b at line 2 col 2 has no value"}}},
		{"duplicate key", "{:a 1\n :a 2}", [][2]string{{"2:2", "duplicate map key :a; it was first written at line 1 col 2"}}},
		{"duplicate collection key", "{[1 2] 1 [1 2] 2}", [][2]string{{"1:10", "duplicate map key [1 2]"}}},
		{"invalid escape", `"a\qb" "c\x"`, [][2]string{{"1:3", `invalid escape '\q' in string`}, {"1:10", `invalid escape '\x'`}}},
		{"bad unicode escape", `"\u12G4"`, [][2]string{{"1:2", "invalid unicode escape"}}},
		{"unpaired surrogate", `"\uD800x"`, [][2]string{{"1:2", "unpaired surrogate"}}},
		{"auto keyword", "::x", [][2]string{{"1:1", "auto-resolved keywords"}}},
		{"invalid number", "1.2.3", [][2]string{{"1:1", "invalid number 1.2.3"}}},
		{"digit symbol", "(+ 1abc 2)", [][2]string{{"1:4", "invalid number 1abc"}}},
		{"leading point", ".5", [][2]string{{"1:1", "invalid number .5"}}},
		{"int overflow", "9223372036854775808", [][2]string{{"1:1", "integer 9223372036854775808 is out of range"}}},
		{"bad timestamp", "2024-13-45T10:30:45Z", [][2]string{{"1:1", "invalid timestamp"}}},
		{"bad char in symbol", "foo@bar", [][2]string{{"1:1", `invalid character '@' in symbol foo@bar`}}},
		{"unknown dispatch", "#x", [][2]string{{"1:1", "unknown dispatch '#x'"}}},
		{"regex literal", `#"\\d+"`, [][2]string{{"1:1", "RTFS has no regex literal"}}},
		{"unknown special", "##Foo", [][2]string{{"1:1", "unknown special number ##Foo"}}},
		{"set literal", "#{1 2}", [][2]string{{"1:1", "set literals #{...} are not part of RTFS"}}},
		{"nested anon fn", "#(a #(b %))", [][2]string{{"1:5", "#(...) functions cannot be nested"}}},
		{"quote at end", "(a ')", [][2]string{{"1:4", "expected a form after ''', found ')'"}}},
		{"bad metadata", "^1 x", [][2]string{{"1:2", "metadata must be a map or a keyword"}}},
		{"metadata on number", "^:m 1", [][2]string{{"1:1", "metadata can be attached only to a symbol or a collection"}}},
		{"several errors recover", "(a \"\\q\")\n{:k 1 :k 2}\n1.2.3\n(b))", [][2]string{
			{"1:5", "invalid escape"},
			{"2:7", "duplicate map key :k"},
			{"3:1", "invalid number 1.2.3"},
			{"4:4", "unexpected ')'"},
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			errs := readErrs(t, tc.src)
			if len(errs) != len(tc.want) {
				t.Fatalf("got %d errors, want %d:\n%v", len(errs), len(tc.want), errs)
			}
			for i, w := range tc.want {
				e := errs[i]
				pos := strings.Join([]string{itoa(e.Pos.Line), itoa(e.Pos.Col)}, ":")
				if pos != w[0] || !strings.Contains(e.Msg, w[1]) {
					t.Errorf("error %d = %v\nwant at %s containing %q", i, e, w[0], w[1])
				}
				if !strings.HasPrefix(e.Error(), "t.rtfs:"+pos+": ") {
					t.Errorf("error %d does not start with file:line:col: %q", i, e.Error())
				}
			}
		})
	}
}

func itoa(n int) string {
	return strings.TrimSpace(strings.Repeat(" ", 0) + formatInt(n))
}

func formatInt(n int) string { return Print(Int{V: int64(n)}) }

// The seed config closes (agent.config after :marketplace and leaves
// :features [...]) dangling: the error must point at the stray ')' and say
// where agent.config opened and was closed.
func TestSeedStrayParen(t *testing.T) {
	src, err := os.ReadFile("testdata/seed_agent_config.rtfs")
	if err != nil {
		t.Fatal(err)
	}
	_, rerr := Read(src, "seed.rtfs", ReadOptions{})
	var list ErrorList
	if !errors.As(rerr, &list) || len(list) != 1 {
		t.Fatalf("want exactly one error, got %v", rerr)
	}
	want := "seed.rtfs:83:36: unexpected ')': nothing is open here; the list (agent.config ...) opened at line 12 col 1 was already closed at line 79 col 21"
	if !strings.HasPrefix(list[0].Error(), want) {
		t.Errorf("got  %s\nwant %s...", list[0].Error(), want)
	}
}

func TestDepthLimit(t *testing.T) {
	src := strings.Repeat("[", 200000)
	errs := readErrs(t, src)
	if len(errs) != 1 || !strings.Contains(errs[0].Msg, "nesting is deeper than 1000 levels") {
		t.Fatalf("got %v", errs)
	}
	if errs[0].Pos.Col != 1001 {
		t.Errorf("depth error at col %d, want 1001", errs[0].Pos.Col)
	}
	// Within the limit, deep nesting reads.
	ok := strings.Repeat("[", 900) + strings.Repeat("]", 900)
	if _, err := ReadOne(ok, ""); err != nil {
		t.Errorf("900 levels: %v", err)
	}
	if _, err := Read([]byte(strings.Repeat("(", 50)), "", ReadOptions{MaxDepth: 10}); err == nil {
		t.Error("MaxDepth 10 accepted 50 levels")
	}
}

func TestTooManyErrors(t *testing.T) {
	errs := readErrs(t, strings.Repeat(") ", 500))
	if len(errs) != DefaultMaxErrors+1 || !strings.Contains(errs[len(errs)-1].Msg, "too many errors") {
		t.Fatalf("got %d errors, last %v", len(errs), errs[len(errs)-1])
	}
}

func TestReadOne(t *testing.T) {
	if _, err := ReadOne("", "f"); err == nil || !strings.Contains(err.Error(), "f:1:1: expected one form, found none") {
		t.Errorf("empty: %v", err)
	}
	if _, err := ReadOne("1\n  2", "f"); err == nil || !strings.Contains(err.Error(), "f:2:3: expected one form, found 2") {
		t.Errorf("two: %v", err)
	}
}

func TestComments(t *testing.T) {
	s, err := Read([]byte("; one\n(a #| two |# b) ;; three"), "", ReadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var texts []string
	for _, c := range s.Comments {
		texts = append(texts, c.Text)
	}
	if got := strings.Join(texts, "|"); got != "; one|#| two |#|;; three" {
		t.Errorf("comments = %q", got)
	}
}

// Every file of the conformance corpus reads, except the two whose
// upstream authors commented out only the first line of some cases; those
// fail exactly at the remnants (see docs/rtfs-conformance.md).
func TestConformanceCorpusReads(t *testing.T) {
	dir := corpusDir(t)
	files, err := filepath.Glob(filepath.Join(dir, "*.rtfs"))
	if err != nil || len(files) != 16 {
		t.Fatalf("want the 16 corpus files in %s, found %d (%v)", dir, len(files), err)
	}
	broken := map[string]int{"type_system.rtfs": 9, "with_resource_expressions.rtfs": 9}
	for _, f := range files {
		src, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		_, rerr := Read(src, filepath.Base(f), ReadOptions{})
		var list ErrorList
		errors.As(rerr, &list)
		if n := broken[filepath.Base(f)]; len(list) != n {
			t.Errorf("%s: %d errors, want %d: %v", filepath.Base(f), len(list), n, rerr)
		}
		for _, e := range list {
			if !strings.HasPrefix(e.Msg, "unexpected ") {
				t.Errorf("%s: unexpected kind of error %v", filepath.Base(f), e)
			}
		}
	}
}
