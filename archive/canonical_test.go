package archive

import (
	"encoding/json"
	"errors"
	"math"
	"strings"
	"testing"
)

func TestCanonicalize(t *testing.T) {
	tests := []struct {
		name, in, want string
		err            error // a sentinel the error must wrap, besides ErrNotJSON
	}{
		{"sorted keys", `{"b":1,"a":2}`, `{"a":2,"b":1}`, nil},
		{"white space removed", " {\n\t\"a\" : [ 1 , 2 ] ,\r\"b\":{ } } ", `{"a":[1,2],"b":{}}`, nil},
		{"nested sort", `{"z":{"y":1,"x":[{"b":0,"a":0}]}}`, `{"z":{"x":[{"a":0,"b":0}],"y":1}}`, nil},
		{"utf16 order (RFC 8785 3.2.3)",
			`{"\u20ac":1,"\r":2,"\ufb33":3,"1":4,"\ud83d\ude00":5,"\u0080":6,"\u00f6":7}`,
			"{\"\\r\":2,\"1\":4,\"\u0080\":6,\"ö\":7,\"€\":1,\"😀\":5,\"\ufb33\":3}", nil},
		{"escapes", `"\u0041\/\b\f\n\r\t\u001f\u007f\"\\"`, "\"A/\\b\\f\\n\\r\\t\\u001f\u007f\\\"\\\\\"", nil},
		{"U+2028 kept literal", `"\u2028"`, "\"\u2028\"", nil},
		{"literals", `[true,false,null]`, `[true,false,null]`, nil},
		{"float one", `1.0`, `1`, nil},
		{"exponent", `1E2`, `100`, nil},
		{"negative zero", `-0.0`, `0`, nil},
		{"big float", `1e21`, `1e+21`, nil},
		{"small float", `0.0000001`, `1e-7`, nil},
		{"fraction", `-12.50`, `-12.5`, nil},
		{"2^53 integer", `9007199254740992`, `9007199254740992`, nil},
		{"2^53+1 integer", `9007199254740993`, ``, ErrNumberRange},
		{"huge float", `1e400`, ``, ErrNumberRange},
		{"exact big integer", `1000000000000000000`, `1000000000000000000`, nil},
		{"exact 2^68 spelling", `295147905179352830000`, `295147905179352830000`, nil},
		{"big integer as exponent", `10E17`, `1000000000000000000`, nil},
		{"integer 1e21", `1000000000000000000000`, `1e+21`, nil},
		{"rounded big integer", `12345678901234567891`, ``, ErrNumberRange},
		{"duplicate key", `{"a":1,"a":2}`, ``, ErrDuplicateKey},
		{"duplicate by escape", `{"a":1,"\u0061":2}`, ``, ErrDuplicateKey},
		{"lone surrogate", `"\ud800"`, ``, ErrInvalidUTF8},
		{"reversed surrogates", `"\udc00\ud800"`, ``, ErrInvalidUTF8},
		{"invalid utf8", "\"\xff\"", ``, ErrInvalidUTF8},
		{"deep", strings.Repeat("[", MaxDepth+1) + strings.Repeat("]", MaxDepth+1), ``, ErrTooDeep},
		{"leading zero", `01`, ``, nil},
		{"plus sign", `+1`, ``, nil},
		{"bare point", `1.`, ``, nil},
		{"trailing comma", `[1,]`, ``, nil},
		{"control char", "\"a\x01\"", ``, nil},
		{"bad escape", `"\x"`, ``, nil},
		{"trailing text", `{} x`, ``, nil},
		{"empty", ``, ``, nil},
		{"nan", `NaN`, ``, nil},
		{"unterminated", `{"a":1`, ``, nil},
		{"single quote", `{'a':1}`, ``, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Canonicalize([]byte(tt.in))
			if tt.want == "" {
				if err == nil {
					t.Fatalf("Canonicalize(%q) = %q, want an error", tt.in, got)
				}
				if !errors.Is(err, ErrNotJSON) {
					t.Errorf("error %v does not wrap ErrNotJSON", err)
				}
				if tt.err != nil && !errors.Is(err, tt.err) {
					t.Errorf("error %v does not wrap %v", err, tt.err)
				}
				var se *SyntaxError
				if !errors.As(err, &se) {
					t.Errorf("error %T is not a *SyntaxError", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("Canonicalize(%q): %v", tt.in, err)
			}
			if string(got) != tt.want {
				t.Errorf("Canonicalize(%q) = %s, want %s", tt.in, got, tt.want)
			}
			again, err := Canonicalize(got)
			if err != nil || string(again) != string(got) {
				t.Errorf("not idempotent: %s -> %s, %v", got, again, err)
			}
		})
	}
}

// TestFormatNumber uses the binary64 test vectors of RFC 8785 appendix B.
func TestFormatNumber(t *testing.T) {
	tests := []struct {
		bits uint64
		want string
	}{
		{0x0000000000000000, "0"},
		{0x8000000000000000, "0"},
		{0x0000000000000001, "5e-324"},
		{0x8000000000000001, "-5e-324"},
		{0x7fefffffffffffff, "1.7976931348623157e+308"},
		{0xffefffffffffffff, "-1.7976931348623157e+308"},
		{0x4340000000000000, "9007199254740992"},
		{0xc340000000000000, "-9007199254740992"},
		{0x4430000000000000, "295147905179352830000"},
		{0x44b52d02c7e14af5, "9.999999999999997e+22"},
		{0x44b52d02c7e14af6, "1e+23"},
		{0x44b52d02c7e14af7, "1.0000000000000001e+23"},
		{0x444b1ae4d6e2ef4e, "999999999999999700000"},
		{0x444b1ae4d6e2ef4f, "999999999999999900000"},
		{0x444b1ae4d6e2ef50, "1e+21"},
		{0x3eb0c6f7a0b5ed8c, "9.999999999999997e-7"},
		{0x3eb0c6f7a0b5ed8d, "0.000001"},
		{0x41b3de4355555553, "333333333.3333332"},
		{0x41b3de4355555554, "333333333.33333325"},
		{0x41b3de4355555555, "333333333.3333333"},
		{0x41b3de4355555556, "333333333.3333334"},
		{0x41b3de4355555557, "333333333.33333343"},
		{0xbecbf647612f3696, "-0.0000033333333333333333"},
		{0x43143ff3c1cb0959, "1424953923781206.2"},
	}
	for _, tt := range tests {
		if got := FormatNumber(math.Float64frombits(tt.bits)); got != tt.want {
			t.Errorf("FormatNumber(%#016x) = %s, want %s", tt.bits, got, tt.want)
		}
	}
}

// TestCanonicalAgreesWithEncodingJSON checks that canonical output is JSON
// that encoding/json reads back to the same Go value as the input.
func TestCanonicalAgreesWithEncodingJSON(t *testing.T) {
	in := `{"s":"a\u00e9\n","n":[1,2.5,-3e-9,1e300],"o":{"k":null,"b":true}}`
	canon, err := Canonicalize([]byte(in))
	if err != nil {
		t.Fatal(err)
	}
	var a, b any
	if err := json.Unmarshal([]byte(in), &a); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(canon, &b); err != nil {
		t.Fatal(err)
	}
	ja, _ := json.Marshal(a)
	jb, _ := json.Marshal(b)
	if string(ja) != string(jb) {
		t.Errorf("values differ:\n%s\n%s", ja, jb)
	}
}
