package main

import (
	"strings"
	"testing"
)

func TestEvalCommand(t *testing.T) {
	file := writeTemp(t, "prog.rtfs", "(defn sq [x] (* x x))\n(println \"squaring\")\n(sq 7)\n")
	bad := writeTemp(t, "bad.rtfs", "(defn inner [x] (/ x 0))\n(defn outer [x] (inner x))\n(outer 1)\n")
	unread := writeTemp(t, "unread.rtfs", "(+ 1 2")
	tests := []struct {
		name       string
		stdin      string
		args       []string
		out, errs  string
		code       int
		errNotHave string
	}{
		{name: "expr", args: []string{"eval", "-e", "(+ 1 2)"}, out: "3\n"},
		{name: "expr last form", args: []string{"eval", "-e", "(def x 2) {:x x :v [x]}"}, out: "{:x 2 :v [2]}\n"},
		{name: "file with output", args: []string{"eval", file}, out: "squaring\n49\n"},
		{name: "stdin", stdin: "(str \"a\" 1)", args: []string{"eval", "-"}, out: "\"a1\"\n"},
		{name: "runtime error", args: []string{"eval", bad}, code: 1,
			errs: bad + ":1:17: DivisionByZero: division by zero in (/ 1 0)\n  at inner (" + bad + ":2:17)\n  at outer (" + bad + ":3:1)\n"},
		{name: "output before error", args: []string{"eval", "-e", `(println "before") (nosuch)`}, code: 1,
			out: "before\n", errs: "<expr>:1:21: UnboundSymbol: unbound symbol nosuch"},
		{name: "reader error", args: []string{"eval", unread}, code: 1, errs: unread + ":1:1:"},
		{name: "step refused", args: []string{"eval", "-e", `(step "s" 1)`}, code: 1, errs: "HostError: step \"s\" cannot run"},
		{name: "limit", args: []string{"eval", "--max-steps", "1000", "-e", "(loop [] (recur))"}, code: 1, errs: "LimitExceeded"},
		{name: "missing file", args: []string{"eval", "/nonexistent.rtfs"}, code: 1, errs: "cannot read"},
		{name: "no args", args: []string{"eval"}, code: 2},
		{name: "file and expr", args: []string{"eval", "-e", "1", file}, code: 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, errs, code := runCCOS(t, tt.stdin, tt.args...)
			if code != tt.code {
				t.Fatalf("exit %d, want %d; stdout %q stderr %q", code, tt.code, out, errs)
			}
			if tt.code != 2 && out != tt.out {
				t.Errorf("stdout %q, want %q", out, tt.out)
			}
			if !strings.Contains(errs, tt.errs) {
				t.Errorf("stderr %q, want it to contain %q", errs, tt.errs)
			}
		})
	}
}

func TestREPLCommand(t *testing.T) {
	in := "(defn f [x]\n  (* x 2))\n(f 21)\n\n(/ 1 0)\n\"multi\nline\"\n(f 1) ; comment (\n(+ 1\n"
	out, errs, code := runCCOS(t, in, "repl")
	if code != 0 {
		t.Fatalf("exit %d; stderr %q", code, errs)
	}
	want := "#<fn f>\n42\n\"multi\\nline\"\n2\n"
	if out != want {
		t.Errorf("stdout %q, want %q", out, want)
	}
	for _, w := range []string{"<repl>:5:1: DivisionByZero", "<repl>:9:1:"} {
		if !strings.Contains(errs, w) {
			t.Errorf("stderr %q, want it to contain %q", errs, w)
		}
	}
}

func TestComplete(t *testing.T) {
	tests := []struct {
		src  string
		want bool
	}{
		{"(+ 1 2)", true},
		{"(+ 1", false},
		{"[1 {:a 2}", false},
		{`"a (`, false},
		{`"a (" )`, true},
		{"(f ; (\n)", true},
		{"#| ( |# 1", true},
		{"#| ( ", false},
		{`"\"" (`, false},
		{")", true},
	}
	for _, tt := range tests {
		if got := complete(tt.src); got != tt.want {
			t.Errorf("complete(%q) = %v, want %v", tt.src, got, tt.want)
		}
	}
}
