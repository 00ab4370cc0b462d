package governance

import (
	"crypto/ed25519"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/ccos-project/ccos/capability"
	"github.com/ccos-project/ccos/config"
	"github.com/ccos-project/ccos/plan"
)

func testCaps() *capability.Registry {
	r := capability.Builtins(nil)
	add := func(id string, c capability.Contract) {
		r.Add(&capability.Capability{ID: id, Class: capability.Host, Contract: c})
	}
	add("test.http.get", capability.Contract{CostUSD: 0.01, MaxTimeMS: 2000,
		Effects: []capability.Effect{{Kind: "network", Domains: []string{"api.example.com"}, Methods: []string{"GET"}}}})
	add("test.fs.read", capability.Contract{Effects: []capability.Effect{{Kind: "fs", Paths: []string{"/data"}}}})
	add("test.llm", capability.Contract{Tokens: 1000, Effects: []capability.Effect{{Kind: "llm", Models: []string{"m1"}}}})
	add("test.gpu", capability.Contract{Effects: []capability.Effect{{Kind: "gpu"}}})
	add("test.env", capability.Contract{Effects: []capability.Effect{{Kind: "env", Vars: []string{"HOME"}}}})
	add("test.expensive", capability.Contract{CostUSD: 100})
	add("test.disabled", capability.Contract{})
	return r
}

func loadConfig(t *testing.T, src string) *config.Config {
	t.Helper()
	res := config.Load([]byte(src), "cfg.rtfs", config.RTFSEvaluator{})
	if res.Diags.HasErrors() {
		t.Fatalf("config %s: %v", src, res.Diags)
	}
	return res.Config
}

func readPlan(t *testing.T, src string) *plan.Plan {
	t.Helper()
	p, err := plan.Read([]byte(src), "plan.rtfs")
	if err != nil {
		t.Fatalf("plan: %v", err)
	}
	return p
}

const (
	minimal   = `(profile:minimal "agent.t")`
	networked = `(profile:networked "agent.t" ["api.example.com" "*.slack.com"])`
	withFS    = `(-> (profile:minimal "agent.t") (assoc-in [:capabilities :fs] {:enabled true :paths ["/data"]}) (assoc :features [:fs]))`
	withLLM   = `(-> (profile:minimal "agent.t") (assoc-in [:capabilities :llm] {:enabled true :models ["m1"]}) (assoc :features [:llm]))`
	withGPU   = `(assoc (profile:minimal "agent.t") :features [:gpu])`
	budgeted  = `(assoc-in (profile:minimal "agent.t") [:governance :policies :default :budgets] {:max_cost_usd 1 :token_budget 500})`
	withEnv   = `(assoc-in (profile:minimal "agent.t") [:capabilities :env] {:enabled true :vars ["LANG" "HOME"]})`
	disabling = `(assoc-in (profile:minimal "agent.t") [:capabilities :entries] [{:capability :test.disabled :contract "test/disabled" :enabled false}])`
)

func TestAdmissionRules(t *testing.T) {
	tests := []struct {
		name, cfg, plan string
		rule            Rule // "" = admitted
		value           string
	}{
		{"pure plan", minimal, `(step "s" (call :ccos.math.add 1 2))`, "", ""},
		{"unknown capability", minimal, `(step "s" (call :nope.x 1))`, RuleUnknownCapability, "nope.x"},
		{"unknown through a function", minimal, `(do (defn f [] (call :nope.y)) (step "s" (f)))`, RuleUnknownCapability, "nope.y"},
		{"dynamic call", minimal, `(step "s" (let [c :ccos.echo] (call c 1)))`, RuleDynamicCall, ""},
		{"dynamic call with declared effects", minimal, `(step "s" [:effects []] (let [c :ccos.echo] (call c 1)))`, "", ""},
		{"dynamic call outside steps", minimal, `(let [c :ccos.echo] (call c 1))`, RuleDynamicCall, ""},
		{"pure call outside steps", minimal, `(call :ccos.echo 1)`, "", ""},
		{"host call outside steps", minimal, `(call :ccos.system.current-time)`, RuleHostCallOutside, "ccos.system.current-time"},
		{"declared narrower than a call", minimal, `(step "s" [:effects []] (call :ccos.system.current-time))`, RuleUndeclaredEffect, "ccos.system.current-time"},
		{"declared covers the call", minimal, `(step "s" [:effects [:time]] (call :ccos.system.current-time))`, "", ""},
		{"network in minimal", minimal, `(step "s" (call :test.http.get "u"))`, RuleNetworkDisabled, "api.example.com"},
		{"network allowed", networked, `(step "s" (call :test.http.get "u"))`, "", ""},
		{"domain outside allowlist", networked, `(step "s" [:effects [[:network {:domains ["evil.example.org"]}]]] 1)`, RuleDomainNotAllowed, "evil.example.org"},
		{"wildcard covers subdomain", networked, `(step "s" [:effects [[:network {:domains ["hooks.slack.com"]}]]] 1)`, "", ""},
		{"wildcard does not cover apex", networked, `(step "s" [:effects [[:network {:domains ["slack.com"]}]]] 1)`, RuleDomainNotAllowed, "slack.com"},
		{"bad method", networked, `(step "s" [:effects [[:network {:domains ["api.example.com"] :methods [:FETCH]}]]] 1)`, RuleMethodNotAllowed, "FETCH"},
		{"fs disabled", minimal, `(step "s" (call :test.fs.read "/data/x"))`, RuleFSDisabled, "/data"},
		{"fs allowed", withFS, `(step "s" (call :test.fs.read "/data/x"))`, "", ""},
		{"fs path outside", withFS, `(step "s" [:effects [[:fs {:paths ["/etc"]}]]] 1)`, RulePathNotAllowed, "/etc"},
		{"fs path escapes with ..", withFS, `(step "s" [:effects [[:fs {:paths ["/data/../etc"]}]]] 1)`, RulePathNotAllowed, "/data/../etc"},
		{"llm disabled", minimal, `(step "s" (call :test.llm "hi"))`, RuleLLMDisabled, ""},
		{"llm allowed", withLLM, `(step "s" (call :test.llm "hi"))`, "", ""},
		{"llm model not allowed", withLLM, `(step "s" [:effects [[:llm {:models ["m2"]}]]] 1)`, RuleModelNotAllowed, "m2"},
		{"gpu without feature", minimal, `(step "s" (call :test.gpu))`, RuleGPUDisabled, ""},
		{"gpu with feature", withGPU, `(step "s" (call :test.gpu))`, "", ""},
		{"environment", minimal, `(step "s" (call :test.env))`, RuleEnvNotConfigured, "HOME"},
		{"get-env without :env", minimal, `(step "s" (call :ccos.system.get-env "LANG"))`, RuleEnvNotConfigured, ""},
		{"get-env with :env", withEnv, `(step "s" (call :ccos.system.get-env "LANG"))`, "", ""},
		{"env var named by the config", withEnv, `(step "s" (call :test.env))`, "", ""},
		{"env var not named", withEnv, `(step "s" [:effects [[:env {:vars ["PATH"]}]]] (call :ccos.system.get-env "PATH"))`, RuleEnvVarNotAllowed, "PATH"},
		{"cost budget", budgeted, `(step "s" (call :test.expensive))`, RuleBudgetExceeded, "100"},
		{"within budget", budgeted, `(step "s" (call :ccos.echo 1))`, "", ""},
		{"retries count in the budget", budgeted, `(step "s" [:retry 2] (call :test.llm "hi"))`, RuleBudgetExceeded, "3000"},
		{"disabled capability", disabling, `(step "s" (call :test.disabled))`, RuleCapabilityDisabled, "test.disabled"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			// The config rules, apart from the security level (see
			// TestSecurityLevels): the full level allows every capability.
			cfg := loadConfig(t, tc.cfg)
			a, err := AdmitIn(RuntimeContext{Level: LevelFull, Isolation: cfg.Orchestrator.Isolation.Mode}, readPlan(t, tc.plan), cfg, testCaps(), nil)
			if tc.rule == "" {
				if err != nil {
					t.Fatalf("rejected: %v", err)
				}
				if a == nil || len(a.Profiles) == 0 && strings.Contains(tc.plan, "step") {
					t.Fatalf("no profiles: %+v", a)
				}
				return
			}
			var rs Rejections
			if !errors.As(err, &rs) {
				t.Fatalf("admitted, want %s", tc.rule)
			}
			for _, r := range rs {
				if r.Rule == tc.rule && strings.Contains(r.Value, tc.value) {
					if !strings.Contains(r.Error(), string(tc.rule)) {
						t.Errorf("message does not name the rule: %s", r.Error())
					}
					return
				}
			}
			t.Errorf("rejections %v do not include %s with value %q", rs, tc.rule, tc.value)
		})
	}
}

// Profiles are derived from the calls a step can reach and never wider than
// the config (microvm-issues.md issue 4).
func TestStepProfiles(t *testing.T) {
	p := readPlan(t, `(plan "p" :body
  (do (defn fetch [u] (call :test.http.get u))
      (step "pure" (call :ccos.math.add 1 2))
      (step "net" [:resources {:max_time_ms 1500}] (fetch "u"))
      (step "clock" (call :ccos.system.current-time))))`)
	a, err := AdmitIn(RuntimeContext{Level: LevelFull}, p, loadConfig(t, networked), testCaps(), nil)
	if err != nil {
		t.Fatal(err)
	}
	pure, net, clock := a.Profile("pure"), a.Profile("net"), a.Profile("clock")
	if len(pure.Network.Domains) != 0 || pure.Determinism.Time != "seeded" || pure.Determinism.Random != "seeded" || !pure.FS.Workdir || !pure.FS.CapabilitiesRO {
		t.Errorf("pure profile: %+v", pure)
	}
	if !slices.Equal(net.Network.Domains, []string{"api.example.com"}) || !slices.Equal(net.Network.Methods, []string{"GET"}) ||
		net.MaxTimeMS != 1500 || !slices.Equal(net.Capabilities, []string{"test.http.get"}) {
		t.Errorf("net profile: %+v", net)
	}
	if clock.Determinism.Time != "real" || clock.Determinism.Random != "seeded" {
		t.Errorf("clock profile: %+v", clock.Determinism)
	}
	if pure.Determinism.Seed == net.Determinism.Seed {
		t.Error("two steps share a seed")
	}
	if a.Tier != config.RiskHigh {
		t.Errorf("tier %s, want high (network)", a.Tier)
	}
	get, _ := testCaps().Lookup("test.http.get")
	echo, _ := testCaps().Lookup("ccos.echo")
	if a.Authorize("net", get) != nil || a.Authorize("net", echo) == nil {
		t.Error("Authorize does not follow the profile")
	}
}

// A step reaching ccos.system.get-env reads only the variable its literal
// argument names, or those its declared :env effect names, or (with a
// computed name) those the config names.
func TestEnvProfiles(t *testing.T) {
	p := readPlan(t, `(do (step "any" (call :ccos.system.get-env (str "LA" "NG")))
  (step "literal" (call :ccos.system.get-env "LANG"))
  (step "narrow" [:effects [[:env {:vars ["LANG"]}]]] (call :ccos.system.get-env "LANG"))
  (step "none" (call :ccos.echo 1))
  (step "both" (call :test.env) (call :ccos.system.get-env "LANG")))`)
	a, err := AdmitIn(RuntimeContext{Level: LevelFull}, p, loadConfig(t, withEnv), testCaps(), nil)
	if err != nil {
		t.Fatal(err)
	}
	for step, want := range map[string][]string{"any": {"LANG", "HOME"}, "literal": {"LANG"}, "narrow": {"LANG"}, "none": {}, "both": {"LANG", "HOME"}} {
		prof := a.Profile(step)
		if !slices.Equal(prof.Env, want) {
			t.Errorf("step %s: env %v, want %v", step, prof.Env, want)
		}
		if len(want) > 0 && !slices.ContainsFunc(prof.Effects, func(e capability.Effect) bool {
			return e.Kind == capability.EffectEnv && slices.Equal(e.Vars, want)
		}) {
			t.Errorf("step %s: effects %+v lack [:env {:vars %v}]", step, prof.Effects, want)
		}
	}
	if a.Tier != config.RiskHigh {
		t.Errorf("tier %s, want high (environment)", a.Tier)
	}
}

func TestApprovals(t *testing.T) {
	pub, priv, _ := ed25519.GenerateKey(nil)
	_, other, _ := ed25519.GenerateKey(nil)
	der, _ := x509.MarshalPKIXPublicKey(pub)
	pemKey := strings.TrimSpace(string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})))
	cfg := loadConfig(t, fmt.Sprintf(`(-> (profile:minimal "agent.t")
  (assoc-in [:governance :policies :default :requires_approvals] 1)
  (assoc-in [:governance :keys :verify] %q))`, pemKey))
	p := readPlan(t, `(step "s" (call :ccos.echo 1))`)
	otherPlan := readPlan(t, `(step "s" (call :ccos.echo 2))`)
	approve := func(pl *plan.Plan, k ed25519.PrivateKey) Approval {
		a, err := ParseApproval(Approve(PlanHash(pl), k))
		if err != nil {
			t.Fatal(err)
		}
		return a
	}
	tests := []struct {
		name      string
		approvals []Approval
		ok        bool
	}{
		{"none", nil, false},
		{"trusted key", []Approval{approve(p, priv)}, true},
		{"untrusted key", []Approval{approve(p, other)}, false},
		{"another plan", []Approval{approve(otherPlan, priv)}, false},
	}
	for _, tc := range tests {
		_, err := Admit(p, cfg, testCaps(), tc.approvals)
		if (err == nil) != tc.ok {
			t.Errorf("%s: err %v, want ok=%v", tc.name, err, tc.ok)
		}
		if err != nil && !strings.Contains(err.Error(), string(RuleApprovalsMissing)) {
			t.Errorf("%s: %v", tc.name, err)
		}
	}
	// A forged signature does not count.
	a := approve(p, priv)
	a.Sig[0] ^= 1
	if _, err := Admit(p, cfg, testCaps(), []Approval{a}); err == nil {
		t.Error("forged approval accepted")
	}
	for _, bad := range []string{"", "ccos-approval v1\nplan x\nkey y\nsig z\n", "hello"} {
		if _, err := ParseApproval(bad); !errors.Is(err, ErrBadApproval) {
			t.Errorf("ParseApproval(%q): %v", bad, err)
		}
	}
}

func TestSecurityLevels(t *testing.T) {
	netCfg := loadConfig(t, networked)
	vmCfg := loadConfig(t, `(assoc-in (profile:microvm-networked "agent.vm" ["api.example.com"]) [:microvm :attestation :expect_rootfs_hash] "sha256:32c1e93f492092af1ca282d02427ba535f453598fd276c28b842d7325e03615a")`)
	fetch := `(step "s" (call :test.http.get "u"))`
	echo := `(step "s" (call :ccos.echo 1))`
	compute := `(+ 1 2)`
	tests := []struct {
		name string
		rc   RuntimeContext
		cfg  *config.Config
		plan string
		rule Rule
	}{
		{"pure computes", RuntimeContext{Level: LevelPure}, netCfg, compute, ""},
		{"pure calls nothing", RuntimeContext{Level: LevelPure}, netCfg, echo, RuleSecurityLevel},
		{"controlled allowlist", RuntimeContext{Level: LevelControlled, Allow: []string{"ccos.*"}}, netCfg, echo, ""},
		{"controlled outside allowlist", RuntimeContext{Level: LevelControlled, Allow: []string{"ccos.math.*"}}, netCfg, echo, RuleCapabilityDenied},
		{"controlled dangerous needs microvm", RuntimeContext{Level: LevelControlled, Allow: []string{"*"}, Isolation: config.IsolationWasm}, netCfg, fetch, RuleIsolationRequired},
		{"controlled dangerous in microvm", RuntimeContext{Level: LevelControlled, Allow: []string{"*"}, Isolation: config.IsolationMicroVM}, vmCfg, fetch, ""},
		{"deny wins over allow", RuntimeContext{Level: LevelFull, Deny: []string{"ccos.e*"}}, netCfg, echo, RuleCapabilityDenied},
		{"full allows", RuntimeContext{Level: LevelFull}, netCfg, fetch, ""},
	}
	for _, tc := range tests {
		_, err := AdmitIn(tc.rc, readPlan(t, tc.plan), tc.cfg, testCaps(), nil)
		if tc.rule == "" {
			if err != nil {
				t.Errorf("%s: %v", tc.name, err)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), string(tc.rule)) {
			t.Errorf("%s: got %v, want %s", tc.name, err, tc.rule)
		}
	}
	if _, err := ParseLevel("root"); err == nil {
		t.Error("ParseLevel accepted root")
	}
}
