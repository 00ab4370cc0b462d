package orchestrator

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ccos-project/ccos/capability"
	"github.com/ccos-project/ccos/config"
	"github.com/ccos-project/ccos/governance"
	"github.com/ccos-project/ccos/rtfs"
)

// Every call a plan makes, literal or computed, passes the decision
// admission applies to literal calls (issue 13 §1): each case below is
// refused at admission when written literally, and refused at run time,
// by the same rule, when its capability id is computed, on real
// providers. The host decides host capabilities; guest capabilities the
// guest may run only when the host granted them, else it yields them and
// the host refuses them.
func TestComputedCallsPassTheDecision(t *testing.T) {
	const secret = "s3cret-value"
	caps := func() *capability.Registry {
		return capability.BuiltinsWith(capability.Options{EnvVars: []string{"SECRET"},
			LookupEnv: func(string) (string, bool) { return secret, true }})
	}
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "reg"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "reg", "vault.rtfs"), []byte(`{:id :vendor.vault :effects [:time] :resources {:max_time_ms 100}}`), 0o644); err != nil {
		t.Fatal(err)
	}
	minimal := `(profile:minimal "agent.t")`
	disabled := `(assoc-in (profile:minimal "agent.t") [:capabilities :entries] [{:capability :ccos.system.current-time :contract "builtin" :enabled false}])`
	envWasm := `(-> (profile:minimal "agent.t") (assoc-in [:capabilities :env] {:enabled true :vars ["SECRET"]}) (assoc-in [:orchestrator :isolation :mode] :wasm))`
	market := `(assoc (profile:minimal "agent.t") :marketplace {:registry_paths ["reg"]})`
	level := func(l governance.Level, deny ...string) func(*config.Config) governance.RuntimeContext {
		return func(cfg *config.Config) governance.RuntimeContext {
			rc := governance.DefaultContext(cfg)
			rc.Level, rc.Deny = l, deny
			return rc
		}
	}
	tests := []struct {
		name, cfg         string
		rc                func(*config.Config) governance.RuntimeContext
		literal, computed string
		rule              governance.Rule
	}{
		{"pure level", minimal, level(governance.LevelPure),
			`(step "s" (call :ccos.system.current-time))`,
			`(step "s" [:effects []] (call (keyword (str "ccos.system." "current-time"))))`, governance.RuleSecurityLevel},
		{"deny pattern", minimal, level(governance.LevelControlled, "ccos.system.*"),
			`(step "s" [:effects [:time]] (call :ccos.system.current-time))`,
			`(step "s" [:effects [:time]] (call (keyword (str "ccos.system." "current-time"))))`, governance.RuleCapabilityDenied},
		{"deny name", minimal, level(governance.LevelControlled, "ccos.system.current-time"),
			`(step "s" [:effects [:time]] (call :ccos.system.current-time))`,
			`(step "s" [:effects [:time]] (call (keyword (str "ccos.system." "current-time"))))`, governance.RuleCapabilityDenied},
		{"disabled by the config", disabled, level(governance.LevelControlled),
			`(step "s" [:effects [:time]] (call :ccos.system.current-time))`,
			`(step "s" [:effects [:time]] (call (keyword (str "ccos.system." "current-time"))))`, governance.RuleCapabilityDisabled},
		{"get-env needs microvm at the controlled level", envWasm, level(governance.LevelControlled),
			`(step "s" (call :ccos.system.get-env "SECRET"))`,
			`(step "s" [:effects []] (call (keyword (str "ccos.system." "get-env")) "SECRET"))`, governance.RuleIsolationRequired},
		{"marketplace capability no entry enables", market, level(governance.LevelFull),
			`(step "s" (call :vendor.vault))`,
			`(step "s" [:effects [:time]] (call (keyword (str "vendor." "vault"))))`, governance.RuleCapabilityDisabled},
		{"guest capability at the pure level", minimal, level(governance.LevelPure),
			`(step "s" (call :ccos.echo 1))`,
			`(step "s" [:effects []] (call (keyword (str "ccos." "echo")) 1))`, governance.RuleSecurityLevel},
	}
	provs := realProviders(t)
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			res := config.Load([]byte(tc.cfg), filepath.Join(dir, "agent.rtfs"), config.RTFSEvaluator{})
			if res.Diags.HasErrors() {
				t.Fatal(res.Diags)
			}
			cfg := res.Config
			reg, err := governance.Capabilities(cfg, dir, caps())
			if err != nil {
				t.Fatal(err)
			}
			if _, _, err := admitIn(t, tc.rc(cfg), cfg, tc.literal, reg); ruleOf(err) != tc.rule {
				t.Fatalf("literal call admitted or refused otherwise: %v, want %s", err, tc.rule)
			}
			p, a, err := admitIn(t, tc.rc(cfg), cfg, tc.computed, reg)
			if err != nil {
				t.Fatalf("computed call: %v", err)
			}
			for name, prov := range provs {
				rep, err := runOn(prov, p, a, reg, sandboxLimits())
				if err != nil {
					t.Fatalf("%s: %v", name, err)
				}
				if rep.Error == nil || !strings.Contains(rep.Error.Message, string(tc.rule)+`: step "s"`) {
					t.Errorf("%s: the computed call was not refused by %s: value %v, error %+v", name, tc.rule, rtfs.Print(rep.Value), rep.Error)
				}
				if strings.Contains(rtfs.Print(rep.Value)+rep.Output, secret) {
					t.Errorf("%s: the secret came out", name)
				}
			}
		})
	}
}

// A marketplace contract for ccos.system.get-env that lists no effects
// would let a plan skip ISOLATION_REQUIRED and the high-risk approvals:
// the registry refuses it, naming the contract's place and the effect.
func TestContractHidingAnEffectIsRefused(t *testing.T) {
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, "reg"), 0o755)
	os.WriteFile(filepath.Join(dir, "reg", "env.rtfs"), []byte("{:id :ccos.system.get-env\n :effects []\n :resources {:max_time_ms 100}}"), 0o644)
	res := config.Load([]byte(`(-> (profile:minimal "agent.t") (assoc-in [:capabilities :env] {:enabled true :vars ["SECRET"]}) (assoc :marketplace {:registry_paths ["reg"]}))`),
		filepath.Join(dir, "agent.rtfs"), config.RTFSEvaluator{})
	if res.Diags.HasErrors() {
		t.Fatal(res.Diags)
	}
	_, err := governance.Capabilities(res.Config, dir, capability.Builtins(nil))
	want := filepath.Join(dir, "reg", "env.rtfs") + ":2:11: the contract for :ccos.system.get-env leaves out the :env effect"
	if err == nil || !strings.HasPrefix(err.Error(), want) {
		t.Errorf("got %v, want %q", err, want)
	}
}
