package main

import (
	"encoding/json"
	"os"
	"strings"
	"testing"
)

func TestParseCommand(t *testing.T) {
	good := writeTemp(t, "good.rtfs", "(agent.config :version \"0.1\")\n")
	if out, errOut, code := runCCOS(t, "", "parse", good); code != 0 || out != "" || errOut != "" {
		t.Errorf("parse good: code %d, out %q, err %q", code, out, errOut)
	}
	bad := writeTemp(t, "bad.rtfs", "(a \"\\q\")\n(b))\n")
	_, errOut, code := runCCOS(t, "", "parse", bad)
	if code != 1 {
		t.Errorf("parse bad: exit %d, want 1", code)
	}
	lines := strings.Split(strings.TrimSpace(errOut), "\n")
	if len(lines) != 2 || !strings.HasPrefix(lines[0], bad+":1:5: invalid escape") || !strings.HasPrefix(lines[1], bad+":2:4: unexpected ')'") {
		t.Errorf("parse bad stderr:\n%s", errOut)
	}
	if _, errOut, code := runCCOS(t, "", "parse", "/nonexistent/x.rtfs"); code != 1 || !strings.Contains(errOut, "cannot read /nonexistent/x.rtfs") {
		t.Errorf("missing file: exit %d, %q", code, errOut)
	}
	if _, _, code := runCCOS(t, ""); code != 0 {
		t.Errorf("no args: exit %d", code)
	}
	if _, _, code := runCCOS(t, "", "parse"); code != 2 {
		t.Errorf("parse without a file: exit %d, want 2", code)
	}
	if _, _, code := runCCOS(t, "", "parse", "--bogus", good); code != 2 {
		t.Errorf("unknown flag: exit %d, want 2", code)
	}
}

func TestParseJSON(t *testing.T) {
	out, _, code := runCCOS(t, "[1 :k]", "parse", "--json", "-")
	if code != 0 {
		t.Fatalf("exit %d", code)
	}
	var doc struct {
		Forms []struct {
			Kind  string
			Span  map[string]any
			Items []struct {
				Kind  string
				Value any
			}
		}
		Errors []any
	}
	if err := json.Unmarshal([]byte(out), &doc); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, out)
	}
	if len(doc.Forms) != 1 || doc.Forms[0].Kind != "vector" || len(doc.Forms[0].Items) != 2 ||
		doc.Forms[0].Items[1].Value != ":k" || doc.Forms[0].Span["end_col"] != float64(7) || len(doc.Errors) != 0 {
		t.Errorf("unexpected tree: %s", out)
	}
	out, _, code = runCCOS(t, "{:a}", "parse", "--json", "-")
	if code != 1 || !strings.Contains(out, `"message": "map has an odd number of forms`) {
		t.Errorf("errors in JSON: exit %d\n%s", code, out)
	}
}

func TestFmtCommand(t *testing.T) {
	messy := "(defn   f [x]\n\n\n  (+ x   1))  ; add\n"
	want := "(defn f [x] (+ x 1)) ; add\n"
	p := writeTemp(t, "m.rtfs", messy)
	if out, _, code := runCCOS(t, "", "fmt", p); code != 0 || out != want {
		t.Errorf("fmt: exit %d, got %q want %q", code, out, want)
	}
	if _, errOut, code := runCCOS(t, "", "fmt", "--check", p); code != 1 || !strings.Contains(errOut, "not formatted") {
		t.Errorf("fmt --check on messy: exit %d %q", code, errOut)
	}
	if _, _, code := runCCOS(t, "", "fmt", "-w", p); code != 0 {
		t.Fatalf("fmt -w: exit %d", code)
	}
	if b, _ := os.ReadFile(p); string(b) != want {
		t.Errorf("fmt -w wrote %q", b)
	}
	if _, _, code := runCCOS(t, "", "fmt", "--check", p); code != 0 {
		t.Errorf("fmt --check after -w: exit %d", code)
	}
	bad := writeTemp(t, "bad.rtfs", "(a\n")
	if _, errOut, code := runCCOS(t, "", "fmt", "-w", bad); code != 1 || !strings.Contains(errOut, "unclosed list") {
		t.Errorf("fmt on unreadable file: exit %d %q", code, errOut)
	}
	if b, _ := os.ReadFile(bad); string(b) != "(a\n" {
		t.Errorf("fmt -w changed an unreadable file: %q", b)
	}
	if _, _, code := runCCOS(t, "", "fmt", "--check", "-w", p); code != 2 {
		t.Errorf("--check with -w: exit %d, want 2", code)
	}
}
