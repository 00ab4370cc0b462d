package docs_test

import (
	"context"
	"errors"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/ccos-project/ccos/config"
	"github.com/ccos-project/ccos/docs"
	"github.com/ccos-project/ccos/engine"
	"github.com/ccos-project/ccos/governance"
	"github.com/ccos-project/ccos/guest"
	"github.com/ccos-project/ccos/sandbox"
	"github.com/ccos-project/ccos/sandbox/process"
)

// TestMain makes this test binary the sandbox guest when the process
// provider starts it.
func TestMain(m *testing.M) {
	sandbox.GuestMain = guest.Run
	process.InitIfChild()
	os.Exit(m.Run())
}

// example is one checked code block of PLANS.md.
type example struct {
	lang, code string
	line       int
	// What the block's ";; " annotations say.
	config, level, value, fails, invalid string
	refused                              []string
	admitted                             bool
}

// examples returns the rtfs and rtfs-config blocks of the guide.
func examples(t *testing.T, text string) []example {
	var out []example
	lines := strings.Split(text, "\n")
	for i := 0; i < len(lines); i++ {
		lang, ok := strings.CutPrefix(lines[i], "```")
		if !ok || (lang != "rtfs" && lang != "rtfs-config") {
			continue
		}
		ex := example{lang: lang, line: i + 2, config: `(profile:minimal "agent.guide")`}
		var code []string
		for i++; i < len(lines) && lines[i] != "```"; i++ {
			l := lines[i]
			if len(code) == 0 && strings.HasPrefix(l, ";; ") {
				ex.annotate(t, strings.TrimPrefix(l, ";; "))
				continue
			}
			code = append(code, l)
		}
		ex.code = strings.Join(code, "\n")
		out = append(out, ex)
	}
	return out
}

func (ex *example) annotate(t *testing.T, a string) {
	key, val, _ := strings.Cut(a, " ")
	switch key {
	case "=>":
		ex.value = val
	case "refused:":
		for _, r := range strings.Split(val, ",") {
			ex.refused = append(ex.refused, strings.TrimSpace(r))
		}
	case "fails:":
		ex.fails = val
	case "admitted":
		ex.admitted = true
	case "config:":
		ex.config = val
	case "level:":
		ex.level = val
	case "invalid:":
		ex.invalid = val
	default:
		t.Errorf("PLANS.md: unknown annotation %q", a)
	}
}

// Every rtfs block of docs/PLANS.md does what its annotations say: it is
// admitted, refused by the named rules, returns the value, or fails with
// the error type; every rtfs-config block is valid (or has the named
// error).
func TestPlanGuideExamples(t *testing.T) {
	exs := examples(t, docs.Plans)
	if len(exs) < 15 {
		t.Fatalf("only %d examples found in PLANS.md", len(exs))
	}
	for _, ex := range exs {
		t.Run(strings.ReplaceAll(strings.Fields(ex.code + " x")[0], "/", "_")+"@"+strconv.Itoa(ex.line), func(t *testing.T) {
			if ex.lang == "rtfs-config" {
				checkConfig(t, ex)
				return
			}
			checkPlan(t, ex)
		})
	}
}

func checkConfig(t *testing.T, ex example) {
	res := config.Load([]byte(ex.code), "PLANS.md", config.RTFSEvaluator{})
	if ex.invalid == "" {
		if res.Diags.HasErrors() {
			t.Errorf("line %d: the config is invalid: %v", ex.line, res.Diags)
		}
		return
	}
	if !slices.Contains(res.Diags.Codes(), ex.invalid) {
		t.Errorf("line %d: want %s, got %v", ex.line, ex.invalid, res.Diags)
	}
}

func checkPlan(t *testing.T, ex example) {
	eng, err := engine.New(engine.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer eng.Close()
	o := engine.AgentOptions{Provider: "process"}
	if ex.level != "" {
		o.Level = governance.Level(ex.level)
	}
	a, err := eng.LoadAgent([]byte(ex.config), "config.rtfs", o)
	if err != nil {
		t.Fatalf("line %d: %v", ex.line, err)
	}
	in := engine.PlanInput{Source: []byte(ex.code), File: "plan.rtfs"}
	if ex.admitted || len(ex.refused) > 0 {
		_, err := a.Admit(in)
		switch {
		case ex.admitted && err != nil:
			t.Errorf("line %d: not admitted: %v", ex.line, err)
		case len(ex.refused) > 0:
			var rs governance.Rejections
			if !errors.As(err, &rs) {
				t.Fatalf("line %d: want refused by %v, got %v", ex.line, ex.refused, err)
			}
			var got []string
			for _, r := range rs {
				got = append(got, string(r.Rule))
			}
			if !slices.Equal(got, ex.refused) {
				t.Errorf("line %d: refused by %v, want %v", ex.line, got, ex.refused)
			}
		}
		return
	}
	res, err := a.Run(context.Background(), engine.RunRequest{PlanInput: in})
	if err != nil {
		t.Fatalf("line %d: %v", ex.line, err)
	}
	switch {
	case ex.fails != "":
		if res.Error == nil || res.Error.Type != ex.fails {
			t.Errorf("line %d: want the plan to fail with %s, got %+v %v", ex.line, ex.fails, res.Error, res.Value)
		}
	case ex.value != "":
		if res.Error != nil || res.Value == nil || *res.Value != ex.value {
			t.Errorf("line %d: value %v (error %+v), want %s", ex.line, deref(res.Value), res.Error, ex.value)
		}
	default:
		t.Errorf("line %d: the example says nothing to check (;; =>, ;; refused:, ;; fails: or ;; admitted)", ex.line)
	}
}

func deref(s *string) string {
	if s == nil {
		return "<nil>"
	}
	return *s
}
