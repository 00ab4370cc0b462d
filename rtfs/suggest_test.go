package rtfs

import (
	"errors"
	"strings"
	"testing"
)

// Every RTFS name that the foreign-name table offers must exist.
func TestForeignNamesResolve(t *testing.T) {
	for foreign, targets := range foreignNames {
		for _, n := range targets {
			_, fn := builtins[n]
			_, sf := specialForms[n]
			if !fn && !sf {
				t.Errorf("foreignNames[%q] offers %q, which is neither a standard function nor a special form", foreign, n)
			}
		}
		if _, defined := builtins[foreign]; defined {
			t.Errorf("foreignNames has %q, which RTFS defines", foreign)
		}
	}
}

func TestUnboundSymbolHint(t *testing.T) {
	tests := []struct{ src, hint string }{
		{`(strlen "abc")`, "did you mean one of: count, string-length"},
		{`(car [1 2])`, "did you mean: first"},
		{`(string-upcase "a")`, "did you mean one of: upper-case, string-upper"},
		{`(defun f [] 1)`, "did you mean: defn"},
		{`(clojure.string/upper-case "a")`, "did you mean one of: upper-case, string/upper-case"},
		{`(fitler even? [1 2])`, "did you mean one of: filter, filterv"},
		{`(lenght [1])`, "length"},
		{`(let [my-value 1] my-valeu)`, "did you mean: my-value"},
		{`(defn compute-total [] 1) (compute-totl)`, "did you mean: compute-total"},
		{`(defmacro with-retry [& b] 1) (with-retyr)`, "did you mean one of: with-retry"},
		{`(numbrs 1 3)`, "numbers"},
		{`(xqzzyv 1)`, ""},
		{"(" + strings.Repeat("a", 5000) + ")", ""},
	}
	for _, tt := range tests {
		_, err := evalSrc(t, New(Options{}), tt.src)
		var e *Error
		if !errors.As(err, &e) || e.Type != ErrUnboundSymbol {
			t.Errorf("%.40s: got %v, want an UnboundSymbol error", tt.src, err)
			continue
		}
		if tt.hint == "" && e.Hint != "" || !strings.Contains(e.Hint, tt.hint) {
			t.Errorf("%.40s: hint %q, want %q", tt.src, e.Hint, tt.hint)
		}
		if tt.hint != "" && !strings.HasSuffix(e.Error(), " (hint: "+e.Hint+")") {
			t.Errorf("%.40s: Error() = %q does not end with the hint", tt.src, e.Error())
		}
	}
}

// Comparing a name against every defined name is billed to the step
// budget: a program that raises unbound-symbol errors in a loop pays for
// the suggestions, and once the budget cannot pay, none are made.
func TestSuggestionsAreBilled(t *testing.T) {
	_, err := evalSrc(t, New(Options{Limits: Limits{MaxSteps: 500}}), "(fitler 1)")
	var e *Error
	if !errors.As(err, &e) || e.Type != ErrUnboundSymbol {
		t.Fatalf("got %v", err)
	}
	if e.Hint != "" {
		t.Errorf("hint %q made beyond the step budget", e.Hint)
	}
}

func TestNearestNames(t *testing.T) {
	cands := []string{"filter", "first", "find", "fn", "for"}
	if got := nearestNames("fidn", cands, 3); strings.Join(got, ",") != "find" {
		t.Errorf("nearestNames(fidn) = %v", got)
	}
	if got := nearestNames("fo", cands, 3); got != nil {
		t.Errorf("two-letter names get no typo suggestions, got %v", got)
	}
	if got := nearestNames("firts", cands, 3); len(got) == 0 || got[0] != "first" {
		t.Errorf("nearestNames(firts) = %v", got)
	}
}
