package rtfs

import (
	"strings"
	"testing"
)

func mustRead(t *testing.T, src string) Value {
	t.Helper()
	v, err := ReadOne(src, "t.rtfs")
	if err != nil {
		t.Fatalf("read %q: %v", src, err)
	}
	return v
}

func mustType(t *testing.T, src string) *Type {
	t.Helper()
	ty, err := ParseType(mustRead(t, src))
	if err != nil {
		t.Fatalf("parse type %q: %v", src, err)
	}
	return ty
}

func TestParseTypeErrors(t *testing.T) {
	tests := []struct{ name, src, want string }{
		{"unknown name", `strin`, "unknown type name strin"},
		{"unknown form", `[:vec string]`, "unknown type form :vec"},
		{"empty form", `[]`, "empty type form"},
		{"head not keyword", `["vector" string]`, "starts with a keyword"},
		{"arity", `[:vector string int]`, "takes 1 operand(s), found 2"},
		{"record key", `{"a" string}`, "record keys must be keywords"},
		{"folded duplicate", `{:mem-mb int :mem_mb int}`, "defined twice"},
		{"bound not number", `[:>= "1"]`, "takes a number"},
		{"bad regexp", `[:re "("]`, "bad regular expression"},
		{"not a type", `42`, "expected a type name"},
		{"map entry", `[:map :a]`, "entries are [:key type]"},
		{"count int", `[:min-count 1.5]`, "takes an integer"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseType(mustRead(t, tt.src))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("got %v, want an error containing %q", err, tt.want)
			}
		})
	}
}

func TestCheck(t *testing.T) {
	type want struct {
		path, msg, hint, code string
		kind                  TypeErrorKind
	}
	tests := []struct {
		name, typ, val string
		fold           bool
		want           []want
	}{
		{name: "prim ok", typ: `string`, val: `"a"`},
		{name: "keyword spelling of prim", typ: `:int`, val: `3`},
		{name: "number takes float", typ: `number`, val: `2e5`},
		{name: "int refuses float", typ: `int`, val: `1.0`,
			want: []want{{msg: "expected an integer, found float 1.0", hint: "write a whole number without a decimal point"}}},
		{name: "symbol for keyword", typ: `keyword`, val: `wasm`,
			want: []want{{msg: "expected a keyword, found symbol wasm", hint: "keywords start with a colon: write :wasm"}}},
		{name: "any", typ: `any`, val: `{:x [1 2]}`},
		{name: "vector items", typ: `[:vector string]`, val: `["a" 1 "c"]`,
			want: []want{{path: "1", msg: "expected a string, found integer 1"}}},
		{name: "vector refuses list", typ: `[:vector string]`, val: `("a")`,
			want: []want{{msg: "expected a vector"}}},
		{name: "tuple", typ: `[:tuple keyword map]`, val: `[:network {}]`},
		{name: "tuple length", typ: `[:tuple keyword map]`, val: `[:network]`,
			want: []want{{msg: "expected a vector of 2 item(s), found 1"}}},
		{name: "map-of", typ: `[:map-of keyword int]`, val: `{:a 1 "b" 2}`,
			want: []want{{path: `"b"`, msg: "expected a keyword, found string"}}},
		{name: "enum", typ: `[:enum :wasm :container :microvm]`, val: `:micro-vm`,
			want: []want{{msg: "expected one of :wasm, :container, :microvm, found keyword :micro-vm", hint: "did you mean :microvm?", kind: TypeBadValue}}},
		{name: "enum wrong kind", typ: `[:enum :ro :rw]`, val: `"ro"`,
			want: []want{{msg: "found string", kind: TypeMismatch, hint: "did you mean :ro?"}}},
		{name: "eq", typ: `[:= "0.1"]`, val: `"0.2"`, want: []want{{msg: `expected "0.1", found string "0.2"`, kind: TypeBadValue}}},
		{name: "and stops at first failure", typ: `[:and int [:>= 1]]`, val: `"x"`,
			want: []want{{msg: "expected an integer"}}},
		{name: "and bound", typ: `[:and number [:>= 1]]`, val: `0`,
			want: []want{{msg: "0 must be >= 1", kind: TypeBadValue}}},
		{name: "and bound ok", typ: `[:and number [:>= 1]]`, val: `1`},
		{name: "exclusive bounds", typ: `[:and int [:> 0] [:< 10]]`, val: `10`, want: []want{{msg: "10 must be < 10"}}},
		{name: "code from props", typ: `[:and {:code "INVALID_VCPUS" :hint "1 to 32"} int [:>= 1] [:<= 32]]`, val: `33`,
			want: []want{{msg: "33 must be <= 32", code: "INVALID_VCPUS", hint: "1 to 32"}}},
		{name: "innermost code wins", typ: `[:and {:code "A"} int [:> 0] [:and {:code "B"} [:>= 3]]]`, val: `2`,
			want: []want{{code: "B", msg: "2 must be >= 3"}}},
		{name: "outer code", typ: `[:and {:code "A"} int [:> 0] [:and {:code "B"} [:>= 3]]]`, val: `0`,
			want: []want{{code: "A"}}},
		{name: "or", typ: `[:or string [:vector string]]`, val: `["a"]`},
		{name: "or fails", typ: `[:or string [:vector string]]`, val: `1`,
			want: []want{{msg: "expected a string or a vector, found integer 1"}}},
		{name: "optional nil", typ: `[:optional string]`, val: `nil`},
		{name: "count", typ: `[:and string [:min-count 1]]`, val: `""`, want: []want{{msg: "has 0 item(s), at least 1 required"}}},
		{name: "max count", typ: `[:and [:vector any] [:max-count 1]]`, val: `[1 2]`, want: []want{{msg: "at most 1 allowed"}}},
		{name: "regexp", typ: `[:re "^[a-z]+$"]`, val: `"Ab"`, want: []want{{msg: `"Ab" does not match "^[a-z]+$"`, kind: TypeBadValue}}},
		{name: "record ok", typ: `{:a int :b [:optional string]}`, val: `{:a 1}`},
		{name: "record missing", typ: `{:a int :b string}`, val: `{:a 1}`,
			want: []want{{path: "b", msg: "missing required key :b in the top-level map", hint: "add :b with a string", kind: TypeMissingKey}}},
		{name: "record unknown with suggestion", typ: `{:microvm {:resources {:vcpus int :mem_mb int}}}`,
			val: `{:microvm {:resources {:vcpu 1 :mem_mb 64}}}`,
			want: []want{
				{path: "microvm.resources.vcpus", msg: "missing required key :vcpus in :microvm :resources", kind: TypeMissingKey},
				{path: "microvm.resources.vcpu", msg: "unknown key :vcpu in :microvm :resources", hint: "did you mean :vcpus?", kind: TypeUnknownKey},
			}},
		{name: "record unknown without suggestion", typ: `{:alpha int}`, val: `{:alpha 1 :zzzzzz 2}`,
			want: []want{{path: "zzzzzz", hint: "known keys: :alpha", kind: TypeUnknownKey}}},
		{name: "non-keyword key", typ: `{:a int}`, val: `{:a 1 "b" 2}`, want: []want{{path: `"b"`, msg: "is not a keyword", kind: TypeUnknownKey}}},
		{name: "snake for kebab without folding", typ: `{:allow-domains [:optional [:vector string]]}`, val: `{:allow_domains []}`,
			want: []want{{path: "allow_domains", kind: TypeUnknownKey, hint: "did you mean :allow-domains?"}}},
		{name: "snake for kebab with folding", typ: `{:allow-domains [:vector string]}`, val: `{:allow_domains []}`, fold: true},
		{name: "folded duplicate", typ: `{:mem_mb int}`, val: `{:mem_mb 1 :mem-mb 2}`, fold: true,
			want: []want{{path: "mem_mb", kind: TypeDuplicateKey, msg: "they name the same key"}}},
		{name: "vector map form", typ: `[:map [:a int] [:b [:default int 3]]]`, val: `{:a 1}`},
		{name: "default may be absent", typ: `{:a [:default boolean false]}`, val: `{}`},
		{name: "default checks present value", typ: `{:a [:default boolean false]}`, val: `{:a "no"}`,
			want: []want{{path: "a", hint: "write true or false without quotes"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			errs := mustType(t, tt.typ).Check(mustRead(t, tt.val), CheckOptions{FoldKeys: tt.fold})
			if len(errs) != len(tt.want) {
				t.Fatalf("got %d errors %v, want %d", len(errs), errs, len(tt.want))
			}
			for i, w := range tt.want {
				e := errs[i]
				if got := DottedPath(e.Path); got != w.path {
					t.Errorf("error %d path = %q, want %q", i, got, w.path)
				}
				if !strings.Contains(e.Msg, w.msg) {
					t.Errorf("error %d msg = %q, want it to contain %q", i, e.Msg, w.msg)
				}
				if w.hint != "" && e.Hint != w.hint {
					t.Errorf("error %d hint = %q, want %q", i, e.Hint, w.hint)
				}
				if e.Code != w.code {
					t.Errorf("error %d code = %q, want %q", i, e.Code, w.code)
				}
				if w.kind != 0 && e.Kind != w.kind {
					t.Errorf("error %d kind = %d, want %d", i, e.Kind, w.kind)
				}
				if e.Span.IsZero() {
					t.Errorf("error %d has no span", i)
				}
			}
		})
	}
}

func TestCheckSpans(t *testing.T) {
	ty := mustType(t, `{:a {:b int}}`)
	v := mustRead(t, "{:a\n {:b \"x\"\n  :c 1}}")
	errs := ty.Check(v, CheckOptions{})
	if len(errs) != 2 {
		t.Fatalf("got %v", errs)
	}
	// The wrong value, then the unknown key, each at its own position.
	if got := errs[0].Span.String(); got != "t.rtfs:2:6" {
		t.Errorf("mismatch at %s, want t.rtfs:2:6", got)
	}
	if got := errs[1].Span.String(); got != "t.rtfs:3:3" {
		t.Errorf("unknown key at %s, want t.rtfs:3:3", got)
	}
	if got := errs[1].Error(); got != `t.rtfs:3:3: at :a :c: unknown key :c in :a (hint: known keys: :b)` {
		t.Errorf("Error() = %q", got)
	}
}

func TestCheckMaxErrors(t *testing.T) {
	errs := mustType(t, `[:vector int]`).Check(mustRead(t, `["a" "b" "c"]`), CheckOptions{MaxErrors: 2})
	if len(errs) != 2 {
		t.Fatalf("got %d errors, want 2", len(errs))
	}
}

func TestTypeEnv(t *testing.T) {
	env := NewTypeEnv()
	if _, err := env.Define("Port", mustRead(t, `[:and int [:> 0] [:< 65536]]`)); err != nil {
		t.Fatal(err)
	}
	ty, err := env.Parse(mustRead(t, `{:ports [:vector Port]}`))
	if err != nil {
		t.Fatal(err)
	}
	if errs := ty.Check(mustRead(t, `{:ports [80 0]}`), CheckOptions{}); len(errs) != 1 || DottedPath(errs[0].Path) != "ports.1" {
		t.Fatalf("got %v", errs)
	}
	if _, ok := env.Lookup("Port"); !ok {
		t.Error("Lookup(Port) failed")
	}
}

func TestComplete(t *testing.T) {
	ty := mustType(t, `{:name string
	                     :opts [:default {:verbose [:default boolean false]
	                                      :level [:default int 1]} {}]
	                     :tags [:default [:vector string] []]
	                     :extra [:optional int]
	                     :nested [:vector {:on [:default boolean true]}]}`)
	v := mustRead(t, `{:nested [{} {:on false}] :name "x" :opts {:level 3}}`)
	got := Print(ty.Complete(v, CheckOptions{}))
	want := `{:name "x" :opts {:verbose false :level 3} :tags [] :nested [{:on true} {:on false}]}`
	if got != want {
		t.Fatalf("Complete = %s\nwant       %s", got, want)
	}
}

func TestCompleteCanonicalSpelling(t *testing.T) {
	ty := mustType(t, `{:mem_mb int :allow-domains [:default [:vector string] []]}`)
	v := mustRead(t, `{:allow_domains ["a"] :mem-mb 1 :junk 2}`)
	got := Print(ty.Complete(v, CheckOptions{FoldKeys: true}))
	if want := `{:mem_mb 1 :allow-domains ["a"]}`; got != want {
		t.Fatalf("Complete = %s, want %s", got, want)
	}
}

func TestCompleteDefaultsHaveNoSpan(t *testing.T) {
	ty := mustType(t, `{:a [:default int 1]}`)
	m := ty.Complete(mustRead(t, `{}`), CheckOptions{}).(*Map)
	v, _ := m.GetKeyword("a")
	if !v.Span().IsZero() {
		t.Fatalf("default has span %v; it must not point into the schema", v.Span())
	}
}

func TestClosest(t *testing.T) {
	cands := []string{"vcpus", "mem_mb", "allow-domains"}
	tests := map[string]string{"vcpu": "vcpus", "memmb": "mem_mb", "allow_domain": "allow-domains", "q": "", "cpus": "vcpus", "xyzzy": ""}
	for in, want := range tests {
		if got := Closest(in, cands); got != want {
			t.Errorf("Closest(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestDescribeType(t *testing.T) {
	tests := map[string]string{
		`[:optional string]`:      "a string or nil",
		`[:enum :a :b]`:           "one of :a, :b",
		`[:and int [:>= 1]]`:      "an integer",
		`{:a int}`:                "a map",
		`[:or int [:vector int]]`: "an integer or a vector",
	}
	for src, want := range tests {
		if got := DescribeType(mustType(t, src)); got != want {
			t.Errorf("DescribeType(%s) = %q, want %q", src, got, want)
		}
	}
}

func FuzzCheckType(f *testing.F) {
	f.Add(`{:a [:vector int] :b [:default {:c [:enum :x :y]} {}]}`, `{:a [1 2] :b {:c :z}}`)
	f.Add(`[:and {:code "X"} int [:>= 1] [:<= 3]]`, `4`)
	f.Add(`[:or string [:tuple keyword [:map-of keyword any]]]`, `[:network {:d 1}]`)
	f.Fuzz(func(t *testing.T, typ, val string) {
		tv, err := ReadOne(typ, "t")
		if err != nil {
			return
		}
		ty, err := ParseType(tv)
		if err != nil {
			return
		}
		v, err := ReadOne(val, "v")
		if err != nil {
			return
		}
		opts := CheckOptions{FoldKeys: true}
		errs := ty.Check(v, opts)
		done := ty.Complete(v, opts)
		if len(errs) == 0 {
			// Completing a valid value keeps it valid.
			if again := ty.Check(done, opts); len(again) != 0 {
				t.Fatalf("Complete(%s) = %s fails: %v", val, Print(done), again)
			}
		}
	})
}
