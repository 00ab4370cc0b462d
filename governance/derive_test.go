package governance

import (
	"errors"
	"slices"
	"testing"

	"github.com/ccos-project/ccos/capability"
)

// rulesOf returns the rules of a refusal, in order.
func rulesOf(t *testing.T, err error) Rejections {
	t.Helper()
	var rs Rejections
	if !errors.As(err, &rs) {
		t.Fatalf("not refused: %v", err)
	}
	return rs
}

// Literal arguments derive the step's profile: a URL inside the
// allowlist needs no :effects, one outside is refused before anything
// runs (naming the step, the domain, the rule and the call's place), a
// computed one needs declared effects; literals must fit declared
// effects; every reason is given at once.
func TestLiteralTargets(t *testing.T) {
	cfg := loadConfig(t, `(profile:networked "agent.t" ["api.example.com" "*.slack.com"])`)
	full := DefaultContext(cfg)
	full.Level = LevelFull
	admit := func(rc RuntimeContext, src string) (*Admission, error) {
		return AdmitIn(rc, readPlan(t, src), cfg, capability.Builtins(nil), nil)
	}

	a, err := admit(full, `(step "get" (call :ccos.network.http-fetch "https://api.example.com/x"))`)
	if err != nil {
		t.Fatalf("a literal URL inside the allowlist: %v", err)
	}
	p := a.Profile("get")
	if !slices.Equal(p.Network.Domains, []string{"api.example.com"}) || !slices.Equal(p.Network.Methods, []string{"GET"}) ||
		len(p.Derived) != 1 || p.Derived[0].Where != "plan.rtfs:1:13" || p.Derived[0].Value != "https://api.example.com/x" || p.Derived[0].Effect != ":network api.example.com GET" {
		t.Errorf("derived profile: %+v", p)
	}
	a, err = admit(full, `(step "post" (call :ccos.network.http-fetch "https://hooks.slack.com/a" {:method :post :body "x"})
	  (call :ccos.network.http-fetch "https://api.example.com/b"))`)
	if err != nil {
		t.Fatal(err)
	}
	if p := a.Profile("post"); !slices.Equal(p.Network.Domains, []string{"hooks.slack.com", "api.example.com"}) || !slices.Equal(p.Network.Methods, []string{"POST", "GET"}) {
		t.Errorf("two literal calls: %+v", p.Network)
	}

	_, err = admit(full, `(step "get"
  (call :ccos.network.http-fetch "https://evil.example.net/"))`)
	rs := rulesOf(t, err)
	if len(rs) != 1 || rs[0].Rule != RuleDomainNotAllowed || rs[0].Step != "get" || rs[0].Value != "evil.example.net" ||
		rs[0].Span.Start.Line != 2 || rs[0].Span.Start.Col != 3 {
		t.Errorf("a literal URL outside the allowlist: %v", err)
	}

	_, err = admit(full, `(step "get" (call :ccos.network.http-fetch (str "https://" "api.example.com")))`)
	if rs := rulesOf(t, err); len(rs) != 1 || rs[0].Rule != RuleComputedTarget || rs[0].Step != "get" {
		t.Errorf("a computed URL without effects: %v", err)
	}
	if _, err := admit(full, `(step "get" [:effects [[:network {:domains ["api.example.com"]}]]]
	  (call :ccos.network.http-fetch (str "https://" "api.example.com")))`); err != nil {
		t.Errorf("a computed URL with declared effects: %v", err)
	}

	_, err = admit(full, `(step "get" [:effects [[:network {:domains ["api.example.com"] :methods [:GET]}]]]
	  (call :ccos.network.http-fetch "https://hooks.slack.com/x")
	  (call :ccos.network.http-fetch "https://api.example.com/x" {:method "DELETE"}))`)
	if rs := rulesOf(t, err); len(rs) != 2 || rs[0].Rule != RuleUndeclaredEffect || rs[0].Value != "hooks.slack.com" || rs[1].Value != "api.example.com" {
		t.Errorf("literals beyond the declared effects: %v", err)
	}

	_, err = admit(full, `(step "get" (call :ccos.network.http-fetch "ftp://api.example.com/x"))`)
	if rs := rulesOf(t, err); rs[0].Rule != RuleInvalidTarget {
		t.Errorf("a URL that is not http: %v", err)
	}

	// At the controlled level under :wasm isolation, the isolation and
	// the domain are both reported.
	_, err = admit(DefaultContext(cfg), `(step "get" (call :ccos.network.http-fetch "https://evil.example.net/"))`)
	var got []Rule
	for _, r := range rulesOf(t, err) {
		got = append(got, r.Rule)
	}
	if !slices.Equal(got, []Rule{RuleIsolationRequired, RuleDomainNotAllowed}) {
		t.Errorf("every reason at once: %v", got)
	}
}
