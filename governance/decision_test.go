package governance

import (
	"errors"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/ccos-project/ccos/capability"
	"github.com/ccos-project/ccos/config"
)

// A call refused when written literally is refused when its capability is
// computed at run time, by the same rule (issue 13 §1): admission and
// Admission.Authorize apply one decision.
func TestRunTimeDecisionMatchesAdmission(t *testing.T) {
	controlled := func(cfg *config.Config, deny ...string) RuntimeContext {
		rc := DefaultContext(cfg)
		rc.Deny = deny
		return rc
	}
	disabled := `(assoc-in (profile:minimal "agent.t") [:capabilities :entries] [{:capability :ccos.system.current-time :contract "builtin" :enabled false}])`
	secret := `(-> (profile:minimal "agent.t") (assoc-in [:capabilities :env] {:enabled true :vars ["SECRET"]}) (assoc-in [:orchestrator :isolation :mode] :wasm))`
	tests := []struct {
		name, cfg string
		rc        func(*config.Config) RuntimeContext
		capID     string
		// literal calls the capability by name; computed declares
		// effects that fit its contract and computes its id.
		literal, computed string
		rule              Rule
	}{
		{"pure level", minimal, func(*config.Config) RuntimeContext { return RuntimeContext{Level: LevelPure} }, "ccos.system.current-time",
			`(step "s" (call :ccos.system.current-time))`, `(step "s" [:effects []] (call (keyword (str "ccos.system." "current-time"))))`, RuleSecurityLevel},
		{"denied by pattern", minimal, func(c *config.Config) RuntimeContext { return controlled(c, "ccos.system.*") }, "ccos.system.current-time",
			`(step "s" (call :ccos.system.current-time))`, `(step "s" [:effects [:time]] (call (keyword (str "ccos.system." "current-time"))))`, RuleCapabilityDenied},
		{"denied by name", minimal, func(c *config.Config) RuntimeContext { return controlled(c, "ccos.system.current-time") }, "ccos.system.current-time",
			`(step "s" (call :ccos.system.current-time))`, `(step "s" [:effects [:time]] (call (keyword (str "ccos.system." "current-time"))))`, RuleCapabilityDenied},
		{"disabled by the config", disabled, func(c *config.Config) RuntimeContext { return controlled(c) }, "ccos.system.current-time",
			`(step "s" (call :ccos.system.current-time))`, `(step "s" [:effects [:time]] (call (keyword (str "ccos.system." "current-time"))))`, RuleCapabilityDisabled},
		{"dangerous at the controlled level", secret, func(c *config.Config) RuntimeContext { return controlled(c) }, "ccos.system.get-env",
			`(step "s" (call :ccos.system.get-env "SECRET"))`, `(step "s" [:effects []] (call (keyword (str "ccos.system." "get-env")) "SECRET"))`, RuleIsolationRequired},
		{"pure capability at the pure level", minimal, func(*config.Config) RuntimeContext { return RuntimeContext{Level: LevelPure} }, "ccos.echo",
			`(step "s" (call :ccos.echo 1))`, `(step "s" [:effects []] (call (keyword "ccos.echo") 1))`, RuleSecurityLevel},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := loadConfig(t, tc.cfg)
			caps := capability.Builtins(nil)
			_, err := AdmitIn(tc.rc(cfg), readPlan(t, tc.literal), cfg, caps, nil)
			var r *Rejection
			if !errors.As(err, &r) || r.Rule != tc.rule {
				t.Fatalf("literal call: %v, want %s", err, tc.rule)
			}
			a, err := AdmitIn(tc.rc(cfg), readPlan(t, tc.computed), cfg, caps, nil)
			if err != nil {
				t.Fatalf("computed call: %v", err)
			}
			c, _ := caps.Lookup(tc.capID)
			err = a.Authorize("s", c)
			if !errors.As(err, &r) || r.Rule != tc.rule || r.Step != "s" || r.Value != tc.capID {
				t.Fatalf("run time: %v, want %s naming step s and %s", err, tc.rule, tc.capID)
			}
			if !strings.HasPrefix(err.Error(), string(tc.rule)+`: step "s": `) {
				t.Errorf("message %q", err)
			}
			if g := a.Granted("s", caps); slices.Contains(g, tc.capID) {
				t.Errorf("the guest's grant %v includes %s", g, tc.capID)
			}
		})
	}
}

// A step that declares an effect the security context refuses in every
// capability is refused where it declares it.
func TestDeclaredEffectsMeetTheContext(t *testing.T) {
	secret := loadConfig(t, `(-> (profile:minimal "agent.t") (assoc-in [:capabilities :env] {:enabled true :vars ["SECRET"]}) (assoc-in [:orchestrator :isolation :mode] :wasm))`)
	tests := []struct {
		name string
		rc   RuntimeContext
		plan string
		rule Rule
	}{
		{"pure: any effect", RuntimeContext{Level: LevelPure}, `(step "s" [:effects [:time]] (call (keyword (str "ccos.system." "current-time"))))`, RuleSecurityLevel},
		{"pure: no effect", RuntimeContext{Level: LevelPure}, `(step "s" [:effects []] 1)`, ""},
		{"controlled: env needs microvm", DefaultContext(secret), `(step "s" [:effects [[:env {:vars ["SECRET"]}]]] (call (keyword (str "ccos.system." "get-env")) "SECRET"))`, RuleIsolationRequired},
		{"controlled: time is safe", DefaultContext(secret), `(step "s" [:effects [:time]] 1)`, ""},
		{"full: env under wasm", RuntimeContext{Level: LevelFull, Isolation: config.IsolationWasm}, `(step "s" [:effects [[:env {:vars ["SECRET"]}]]] 1)`, ""},
	}
	for _, tc := range tests {
		_, err := AdmitIn(tc.rc, readPlan(t, tc.plan), secret, capability.Builtins(nil), nil)
		var r *Rejection
		if tc.rule == "" {
			if err != nil {
				t.Errorf("%s: %v", tc.name, err)
			}
			continue
		}
		if !errors.As(err, &r) || r.Rule != tc.rule || r.Step != "s" || r.Span.IsZero() {
			t.Errorf("%s: %v, want %s at the step", tc.name, err, tc.rule)
		}
	}
}

// Run-time decisions for marketplace capabilities: a contract-only
// capability no entry enables is refused when its id is computed, and a
// contract that needs :microvm is refused under weaker isolation at
// every level.
func TestRunTimeDecisionMarketplace(t *testing.T) {
	dir := writeRegistry(t, map[string]string{
		"reg/vault.rtfs": `{:id :vendor.vault :effects [:time] :resources {:max_time_ms 1000}}`,
		"reg/clock.rtfs": `{:id :ccos.system.current-time :effects [:time] :resources {:max_time_ms 100} :runtime {:sandbox :microvm}}`,
	})
	res := config.Load([]byte(`(assoc (profile:minimal "agent.m") :marketplace {:registry_paths ["reg"]})`), filepath.Join(dir, "agent.rtfs"), config.RTFSEvaluator{})
	if res.Diags.HasErrors() {
		t.Fatal(res.Diags)
	}
	caps, err := Capabilities(res.Config, dir, capability.Builtins(nil))
	if err != nil {
		t.Fatal(err)
	}
	rc := RuntimeContext{Level: LevelFull, Isolation: config.IsolationWasm}
	a, err := AdmitIn(rc, readPlan(t, `(step "s" [:effects [:time]] (call (keyword (str "vendor." "vault"))))`), res.Config, caps, nil)
	if err != nil {
		t.Fatal(err)
	}
	for id, rule := range map[string]Rule{"vendor.vault": RuleCapabilityDisabled, "ccos.system.current-time": RuleIsolationRequired} {
		c, _ := caps.Lookup(id)
		var r *Rejection
		if err := a.Authorize("s", c); !errors.As(err, &r) || r.Rule != rule {
			t.Errorf("%s: %v, want %s", id, err, rule)
		}
	}
}

// The profile still bounds a call the context allows: a capability
// outside a static step's profile, or beyond a declared step's effects,
// is refused; outside steps only the admitted pure capabilities run.
func TestRunTimeDecisionProfile(t *testing.T) {
	cfg := loadConfig(t, minimal)
	caps := capability.Builtins(nil)
	a, err := AdmitIn(RuntimeContext{Level: LevelFull}, readPlan(t, `(do (call :ccos.echo 0)
  (step "static" (call :ccos.math.add 1 2))
  (step "declared" [:effects []] (call (keyword "ccos.echo") 1)))`), cfg, caps, nil)
	if err != nil {
		t.Fatal(err)
	}
	lookup := func(id string) *capability.Capability {
		c, err := caps.Lookup(id)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	tests := []struct {
		step, capID string
		rule        Rule
	}{
		{"static", "ccos.math.add", ""},
		{"static", "ccos.echo", RuleOutsideProfile},
		{"declared", "ccos.echo", ""},
		{"declared", "ccos.system.current-time", RuleUndeclaredEffect},
		{"", "ccos.echo", ""},
		{"", "ccos.math.add", RuleHostCallOutside},
		{"nowhere", "ccos.echo", RuleStepNotAdmitted},
	}
	for _, tc := range tests {
		err := a.Authorize(tc.step, lookup(tc.capID))
		var r *Rejection
		if tc.rule == "" && err != nil || tc.rule != "" && (!errors.As(err, &r) || r.Rule != tc.rule) {
			t.Errorf("%s in step %q: %v, want %q", tc.capID, tc.step, err, tc.rule)
		}
	}
	if g := a.Granted("static", caps); !slices.Equal(g, []string{"ccos.math.add"}) {
		t.Errorf("static grant %v", g)
	}
	if g := a.Granted("declared", caps); !slices.Contains(g, "ccos.io.read-file") || slices.Contains(g, "ccos.system.current-time") {
		t.Errorf("declared grant %v: every capability without effects, none with", g)
	}
	if err := (&Admission{}).Authorize("s", lookup("ccos.echo")); err == nil {
		t.Error("an admission not made by the kernel authorizes calls")
	}
}

// The security authorizer's refusals are typed: admission reads them
// without parsing text, and Rejections unwraps to them.
func TestTypedRejections(t *testing.T) {
	c, _ := capability.Builtins(nil).Lookup("ccos.echo")
	_, err := SecurityAuthorizer{}.AuthorizeCapability(RuntimeContext{Level: LevelFull, Deny: []string{"ccos.*"}}, c)
	var r *Rejection
	if !errors.As(err, &r) || r.Rule != RuleCapabilityDenied || r.Value != "ccos.echo" {
		t.Fatalf("%v", err)
	}
	_, err = Admit(readPlan(t, `(do (step "a" (call :nope.a)) (step "b" (call :nope.b)))`), loadConfig(t, minimal), capability.Builtins(nil), nil)
	var rs Rejections
	if !errors.As(err, &rs) || len(rs) != 2 || !errors.Is(err, rs[1]) || !errors.As(err, &r) || r != rs[0] {
		t.Errorf("Rejections do not unwrap: %v", err)
	}
}
