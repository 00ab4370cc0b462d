// These tests evaluate the profile prelude and the profile examples with
// the RTFS evaluator.

package config

import (
	"path/filepath"
	"strings"
	"testing"
)

// interpEvaluator is the evaluator ccos uses.
type interpEvaluator = RTFSEvaluator

// TestProfileExamplesExpandToGolden checks every example that calls a
// profile: it validates clean and expands to its golden file.
func TestProfileExamplesExpandToGolden(t *testing.T) {
	for _, name := range []string{"minimal", "networked", "microvm-min", "microvm-networked"} {
		t.Run(name, func(t *testing.T) {
			res, err := (&Loader{Evaluator: interpEvaluator{}}).LoadFile(filepath.Join("../examples", name+".rtfs"))
			if err != nil {
				t.Fatal(err)
			}
			if len(res.Diags) != 0 {
				t.Fatalf("diagnostics: %v", res.Diags)
			}
			if got, want := Canonical(res.Expanded), readFile(t, "testdata/golden/"+name+".rtfs"); got != want {
				t.Fatalf("expanded:\n%s\nwant:\n%s", got, want)
			}
		})
	}
}

func TestProfileOverrides(t *testing.T) {
	tests := []struct {
		name, src string
		codes     string
	}{
		{"microvm profiles need the rootfs digest", `(profile:microvm-min "agent.vm")`, CodeMissingRootfsHash},
		{"cid override is checked", `(assoc-in (profile:microvm-min "agent.vm") [:microvm :devices :vsock :cid] 2)`, CodeReservedVsockCID},
		{"domains are checked", `(profile:networked "agent.n" ["https://x.com"])`, CodeInvalidDomain + "," + CodeInvalidDomain},
		{"threading works", `(-> (profile:minimal "agent.m") (assoc-in [:capabilities :llm] {:enabled true}) (assoc-in [:features] [:llm]))`, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := (&Loader{Evaluator: interpEvaluator{}}).Load([]byte(tt.src), "t.rtfs")
			if got := strings.Join(res.Diags.Codes(), ","); got != tt.codes {
				t.Fatalf("codes = %q, want %q: %v", got, tt.codes, res.Diags)
			}
		})
	}
}

// TestEveryExampleValidates loads every config in examples/, literal or
// expression, and requires it to be clean.
func TestEveryExampleValidates(t *testing.T) {
	files, err := filepath.Glob("../examples/*.rtfs")
	if err != nil || len(files) < 6 {
		t.Fatalf("examples: %v %v", files, err)
	}
	for _, f := range files {
		res, err := (&Loader{Evaluator: interpEvaluator{}}).LoadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if len(res.Diags) != 0 {
			t.Errorf("%s: %v", f, res.Diags)
		}
	}
}
