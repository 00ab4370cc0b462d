package main

import (
	"encoding/json"
	"strings"
	"testing"
)

// hostile is what a plan prints to take over the operator's terminal: set
// the window title, clear the screen, go home, carriage-return over a line,
// the 8-bit CSI and a right-to-left override.
const hostile = "\x1b]0;owned\x07\x1b[2J\x1b[Hall steps approved\rOK\u009b2J\u202e"

// rtfsHostile is hostile as an RTFS string literal.
const rtfsHostile = `"\u001b]0;owned\u0007\u001b[2J\u001b[Hall steps approved\rOK\u009b2J\u202e"`

// escaped is hostile as the operator sees it.
const escaped = `\u001b]0;owned\u0007\u001b[2J\u001b[Hall steps approved\u000dOK\u009b2J\u202e`

// TestTerminalEscapes: nothing a plan, a guest or a config writes reaches
// the terminal as a control sequence: not the plan's output, its value, its
// error, nor a diagnostic quoting the config; --json keeps the exact text.
func TestTerminalEscapes(t *testing.T) {
	plan := writeTemp(t, "p.rtfs", `(plan "p" :body (step "s" (println `+rtfsHostile+`) `+rtfsHostile+`))`)
	out, errOut, code := runCCOS(t, "", "run", "--provider", "process", plan)
	if code != 0 || !strings.Contains(out, escaped+"\n") || strings.ContainsAny(out+errOut, "\x1b\x07\r\u009b\u202e") {
		t.Fatalf("run: %d\nstdout %q\nstderr %q", code, out, errOut)
	}
	out, _, code = runCCOS(t, "", "run", "--provider", "process", "--json", plan)
	var doc struct {
		Output string `json:"output"`
		Value  string `json:"value"`
	}
	if code != 0 || json.Unmarshal([]byte(out), &doc) != nil || doc.Output != hostile+"\n" || strings.ContainsAny(out, "\x1b\x07\r\u009b\u202e") {
		t.Fatalf("run --json: %d %q (decoded output %q)", code, out, doc.Output)
	}
	// A plan's error message.
	failing := writeTemp(t, "f.rtfs", `(plan "p" :body (step "s" (call :ccos.string.concat 1 `+rtfsHostile+` (/ 1 0))))`)
	_, errOut, code = runCCOS(t, "", "run", "--provider", "process", failing)
	if code != 1 || strings.ContainsAny(errOut, "\x1b\x07\r\u009b\u202e") {
		t.Fatalf("failing run: %d %q", code, errOut)
	}
	// ccos eval's output and value.
	out, _, code = runCCOS(t, "", "eval", "-e", `(do (print `+rtfsHostile+`) `+rtfsHostile+`)`)
	if code != 0 || !strings.HasPrefix(out, escaped) || strings.ContainsAny(out, "\x1b\x07\r\u009b\u202e") {
		t.Fatalf("eval: %d %q", code, out)
	}
	// A diagnostic that quotes the config.
	cfg := writeTemp(t, "c.rtfs", `(agent.config :version "\u009b2J\u202e" :agent-id "a")`)
	_, errOut, code = runCCOS(t, "", "config", "validate", cfg)
	if code != 1 || !strings.Contains(errOut, `\u009b2J\u202e`) || strings.ContainsAny(errOut, "\x1b\x07\r\u009b\u202e") {
		t.Fatalf("config validate: %d %q", code, errOut)
	}
}
