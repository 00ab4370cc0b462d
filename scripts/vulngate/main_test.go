package main

import (
	"strings"
	"testing"
)

// A govulncheck stream: GO-1 called, GO-2 only imported, GO-3 called and
// accepted.
const stream = `{"config":{"scanner_name":"govulncheck"}}
{"osv":{"id":"GO-1","summary":"bad parse"}}
{"osv":{"id":"GO-2","summary":"bad unused"}}
{"osv":{"id":"GO-3","summary":"std bug"}}
{"finding":{"osv":"GO-1","fixed_version":"v1.2.0","trace":[{"module":"example.com/m","package":"example.com/m/p","function":"Parse"}]}}
{"finding":{"osv":"GO-2","trace":[{"module":"example.com/n","package":"example.com/n/q"}]}}
{"finding":{"osv":"GO-3","fixed_version":"v1.26.9","trace":[{"module":"stdlib","package":"net/http","function":"Serve"}]}}
`

func TestJudge(t *testing.T) {
	rep, err := read(strings.NewReader(stream))
	if err != nil {
		t.Fatal(err)
	}
	acc, err := readAccepted(strings.NewReader("# comment\nGO-3 needs a newer Go toolchain\nGO-9 fixed long ago\n"))
	if err != nil {
		t.Fatal(err)
	}
	var out strings.Builder
	if judge(rep, acc, &out) {
		t.Fatalf("passed with GO-1 called:\n%s", out.String())
	}
	for _, want := range []string{
		"CALLED    GO-1 example.com/m (fixed in v1.2.0): bad parse",
		"accepted  GO-3 stdlib (fixed in v1.26.9): std bug",
		"because: needs a newer Go toolchain",
		"stale     GO-9",
		"not called (informational): GO-2",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
	acc["GO-1"] = "waiting for upstream"
	if !judge(rep, acc, &strings.Builder{}) {
		t.Error("failed with every called id accepted")
	}
	if _, err := readAccepted(strings.NewReader("GO-1\n")); err == nil {
		t.Error("an id without a reason was accepted")
	}
}
