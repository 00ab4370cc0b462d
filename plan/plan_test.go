package plan

import (
	"errors"
	"strings"
	"testing"

	"github.com/ccos-project/ccos/rtfs"
)

func TestReadPlan(t *testing.T) {
	p, err := Read([]byte(`(plan "hello" :intent {:goal "greet"}
  :body (do (step "a" (call :ccos.echo 1)) (let [x (step "b" 2)] x) '(step "quoted" 3)))`), "p.rtfs")
	if err != nil {
		t.Fatal(err)
	}
	if p.Name != "hello" || p.Intent == nil || strings.Join(p.StepNames(), ",") != "a,b" {
		t.Errorf("plan = %q %v %v", p.Name, p.Intent, p.StepNames())
	}
	bare, err := Read([]byte(`(+ 1 2)`), "b.rtfs")
	if err != nil || bare.Name != "" || rtfs.Print(bare.Body) != "(+ 1 2)" || len(bare.Steps) != 0 {
		t.Errorf("bare: %+v %v", bare, err)
	}
}

func TestReadPlanErrors(t *testing.T) {
	tests := []struct{ src, want string }{
		{`(step "a" 1) (step "b" 2)`, "p.rtfs:1:14: a plan file holds one form, this one holds 2"},
		{`(plan)`, "(plan ...) needs a name"},
		{`(plan x :body 1)`, "p.rtfs:1:7: the plan name must be a string, found symbol x"},
		{`(plan "p" :body)`, "takes a name followed by :key value pairs"},
		{`(plan "p" :intent 1 :body 2)`, ":intent must be a map"},
		{`(plan "p" :bdy 1)`, "unknown plan key :bdy"},
		{`(plan "p" :intent {})`, "has no :body"},
		{`(do (step name 1))`, "p.rtfs:1:11: a step name must be a string literal, found symbol name"},
		{`(do (step "a" 1)
  (step "a" 2))`, `p.rtfs:2:3: step "a" is written twice; the first is at line 1 col 5`},
		{`(step)`, "(step ...) needs a name"},
	}
	for _, tc := range tests {
		_, err := Read([]byte(tc.src), "p.rtfs")
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: got %v, want %q", tc.src, err, tc.want)
		}
	}
	if _, err := Read([]byte(" ;; nothing"), "e.rtfs"); !errors.Is(err, ErrNoPlan) {
		t.Errorf("empty: %v", err)
	}
	if _, err := Read([]byte("(a"), "r.rtfs"); err == nil || !strings.Contains(err.Error(), "r.rtfs:1:1: unclosed list") {
		t.Errorf("reader error: %v", err)
	}
}
