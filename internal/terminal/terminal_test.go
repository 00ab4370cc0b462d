package terminal

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestEscape(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"plain text, ünïcode and emoji 👍🏽\n\tindented", "plain text, ünïcode and emoji 👍🏽\n\tindented"},
		{"\x1b]0;owned\x07", `\u001b]0;owned\u0007`},                               // set the window title
		{"\x1b[2J\x1b[Hall steps approved", `\u001b[2J\u001b[Hall steps approved`}, // clear the screen, paint
		{"done\rall steps approved", `done\u000dall steps approved`},
		{"\u009b2J", `\u009b2J`},                     // the 8-bit CSI
		{"admin\u202egnp.exe", `admin\u202egnp.exe`}, // right-to-left override
		{"\x00\x7f", `\u0000\u007f`},
		{"bad \xff\xfe utf-8", `bad \xff\xfe utf-8`},
		{`a\u001b is text`, `a\u001b is text`}, // backslashes are left alone
		{"", ""},
	} {
		if got := Escape(c.in); got != c.want {
			t.Errorf("Escape(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}

// TestWriterSplitsSequences: a character split across writes is escaped
// (or kept) as a whole.
func TestWriterSplitsSequences(t *testing.T) {
	in := "é\u009b👍\x1b[2J\xff"
	for cut := 0; cut <= len(in); cut++ {
		var out bytes.Buffer
		w := NewWriter(&out)
		if n, err := w.Write([]byte(in[:cut])); err != nil || n != cut {
			t.Fatal(n, err)
		}
		w.Write([]byte(in[cut:]))
		w.Flush()
		if out.String() != Escape(in) {
			t.Errorf("cut at %d: %q, want %q", cut, out.String(), Escape(in))
		}
	}
	// An incomplete sequence at the very end is flushed escaped.
	var out bytes.Buffer
	w := NewWriter(&out)
	w.Write([]byte("ok \xe2\x80"))
	if out.String() != "ok " {
		t.Fatalf("before Flush: %q", out.String())
	}
	w.Flush()
	if out.String() != `ok \xe2\x80` {
		t.Fatalf("after Flush: %q", out.String())
	}
}

// TestJSONThroughWriter: a JSON document passed through the Writer decodes
// to the same values: --json keeps the exact text.
func TestJSONThroughWriter(t *testing.T) {
	doc := map[string]string{"output": "\x1b]0;owned\x07\x1b[2J\u009b\u202e\x7f\r\nall steps approved\t."}
	raw, err := json.Marshal(doc)
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	NewWriter(&out).Write(raw)
	var got map[string]string
	if err := json.Unmarshal(out.Bytes(), &got); err != nil {
		t.Fatalf("escaped JSON does not decode: %v\n%s", err, out.String())
	}
	if got["output"] != doc["output"] {
		t.Fatalf("decoded %q, want %q", got["output"], doc["output"])
	}
	if strings.ContainsAny(out.String(), "\x1b\x07\x7f\u009b\u202e") {
		t.Fatalf("raw controls in %q", out.String())
	}
}

func FuzzEscape(f *testing.F) {
	for _, s := range []string{"\x1b[2J", "é\u009b", "\xff\xe2\x80", "plain"} {
		f.Add(s, 1)
	}
	f.Fuzz(func(t *testing.T, s string, cut int) {
		e := Escape(s)
		if firstUnsafe(e) != len(e) || !utf8.ValidString(e) {
			t.Fatalf("Escape(%q) = %q still has unsafe text", s, e)
		}
		if cut < 0 || cut > len(s) {
			cut = len(s) / 2
		}
		var out bytes.Buffer
		w := NewWriter(&out)
		w.Write([]byte(s[:cut]))
		w.Write([]byte(s[cut:]))
		w.Flush()
		if out.String() != e {
			t.Fatalf("Writer split at %d: %q, want %q", cut, out.String(), e)
		}
	})
}
