//go:build evaluator

// These tests evaluate the profile prelude and the profile examples with
// the RTFS evaluator. They are behind the "evaluator" build tag until the
// evaluator is wired into the Loader; remove the tag then.

package config

import (
	"context"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ccos-project/ccos/rtfs"
)

// interpEvaluator evaluates the prelude and then the config form in a fresh
// interpreter.
type interpEvaluator struct{}

func (interpEvaluator) EvalConfig(prelude []rtfs.Value, form rtfs.Value) (rtfs.Value, error) {
	in := rtfs.New(rtfs.Options{})
	forms := append(append(make([]rtfs.Value, 0, len(prelude)+1), prelude...), form)
	return in.EvalForms(context.Background(), forms)
}

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
