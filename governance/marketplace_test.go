package governance

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/ccos-project/ccos/capability"
	"github.com/ccos-project/ccos/config"
)

// The example agent (examples/marketplace.rtfs) admits a plan calling a
// capability known from its contract in examples/capabilities, with the
// profile its contract and config entry give.
func TestExampleMarketplace(t *testing.T) {
	res, err := (&config.Loader{Evaluator: config.RTFSEvaluator{}}).LoadFile("../examples/marketplace.rtfs")
	if err != nil || res.Diags.HasErrors() {
		t.Fatal(err, res.Diags)
	}
	caps, err := Capabilities(res.Config, ConfigDir(res.File), capability.Builtins(nil))
	if err != nil {
		t.Fatal(err)
	}
	src, _ := os.ReadFile("../examples/plans/notify.rtfs")
	a, err := AdmitIn(RuntimeContext{Level: LevelFull, Isolation: config.IsolationWasm}, readPlan(t, string(src)), res.Config, caps, nil)
	if err != nil {
		t.Fatal(err)
	}
	prof := a.Profile("post")
	if !slices.Equal(prof.Network.Domains, []string{"slack.com"}) || !slices.Equal(prof.Network.Methods, []string{"POST"}) {
		t.Errorf("profile %+v", prof.Network)
	}
	if a.Budget.TimeMS != 3000 || a.Budget.CostUSD != 0.001 {
		t.Errorf("budget %+v: the entry narrows the time to 3000 ms, the contract costs $0.001", a.Budget)
	}
}

func writeRegistry(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, text := range files {
		if err := os.MkdirAll(filepath.Dir(filepath.Join(dir, name)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func TestMarketplaceEntries(t *testing.T) {
	dir := writeRegistry(t, map[string]string{
		"reg/vault.rtfs": `{:id :vendor.vault :effects [[:env {:vars ["TZ"]}]] :resources {:max_time_ms 1000} :runtime {:sandbox :microvm}}`,
		"reg/spare.rtfs": `{:id :vendor.spare :resources {:max_time_ms 10}}`,
	})
	cfgWith := func(entry string) *config.Config {
		t.Helper()
		src := `(-> (profile:minimal "agent.m")
    (assoc-in [:capabilities :env] {:enabled true :vars ["TZ" "HOME"]})
    (assoc :marketplace {:registry_paths ["reg"]})
    (assoc-in [:capabilities :entries] [` + entry + `]))`
		res := config.Load([]byte(src), filepath.Join(dir, "agent.rtfs"), config.RTFSEvaluator{})
		if res.Diags.HasErrors() {
			t.Fatal(res.Diags)
		}
		return res.Config
	}
	tests := []struct {
		name, entry, err string
	}{
		// The schema's default :runtime {:sandbox :wasm} is not the
		// entry's: only what is written narrows or broadens.
		{"defaults inherit", `{:capability :vendor.vault :contract "reg/vault.rtfs"}`, ""},
		{"narrower", `{:capability :vendor.vault :contract "reg/vault.rtfs" :resources {:max_time_ms 10} :runtime {:sandbox :microvm}}`, ""},
		{"weaker sandbox", `{:capability :vendor.vault :contract "reg/vault.rtfs" :runtime {:sandbox :wasm}}`,
			"agent.rtfs:4:114: the config entry for :vendor.vault broadens its contract " + filepath.Join(dir, "reg", "vault.rtfs") + ": :runtime :sandbox is :wasm, weaker than :microvm"},
		{"more vars", `{:capability :vendor.vault :contract "reg/vault.rtfs" :effects [[:env {:vars ["TZ" "HOME"]}]]}`,
			`agent.rtfs:4:104: the config entry for :vendor.vault broadens its contract ` + filepath.Join(dir, "reg", "vault.rtfs") + `: :effects :env :vars includes "HOME", beyond ["TZ"]`},
		{"longer", `{:capability :vendor.vault :contract "reg/vault.rtfs" :resources {:max_time_ms 2000}}`, ":resources :max_time_ms is 2000, beyond 1000"},
		{"another file", `{:capability :vendor.vault :contract "vault.rtfs"}`, "names the contract " + filepath.Join(dir, "vault.rtfs")},
		{"no contract anywhere", `{:capability :vendor.none :contract "reg/none.rtfs"}`, "capability entry :vendor.none has no contract"},
		{"bad effect", `{:capability :vendor.vault :contract "reg/vault.rtfs" :effects [[:env {:names ["TZ"]}]]}`, "capability entry :vendor.vault: " + filepath.Join(dir, "agent.rtfs")},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Capabilities(cfgWith(tc.entry), dir, capability.Builtins(nil))
			if tc.err == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Fatalf("%v, want %q", err, tc.err)
			}
		})
	}
	// A contract that needs :microvm is admitted only under :microvm.
	cfg := cfgWith(`{:capability :vendor.vault :contract "reg/vault.rtfs"}`)
	caps, err := Capabilities(cfg, dir, capability.Builtins(nil))
	if err != nil {
		t.Fatal(err)
	}
	p := readPlan(t, `(step "s" (call :vendor.vault))`)
	_, err = AdmitIn(RuntimeContext{Level: LevelFull, Isolation: config.IsolationWasm}, p, cfg, caps, nil)
	var rs Rejections
	if !errors.As(err, &rs) || rs[0].Rule != RuleIsolationRequired || rs[0].Value != "vendor.vault" {
		t.Errorf("under :wasm: %v", err)
	}
	a, err := AdmitIn(RuntimeContext{Level: LevelFull, Isolation: config.IsolationMicroVM}, p, cfg, caps, nil)
	if err != nil || !slices.Equal(a.Profile("s").Env, []string{"TZ"}) {
		t.Errorf("under :microvm: %v %+v", err, a)
	}
	// A contract alone enables nothing: the config must have an entry.
	_, err = AdmitIn(RuntimeContext{Level: LevelFull, Isolation: config.IsolationMicroVM}, readPlan(t, `(step "s" (call :vendor.spare))`), cfg, caps, nil)
	if !errors.As(err, &rs) || rs[0].Rule != RuleCapabilityDisabled || !strings.Contains(rs[0].Error(), "no :capabilities :entries entry enables it") {
		t.Errorf("capability without an entry: %v", err)
	}
	// A missing registry directory is an error naming it.
	cfg.Marketplace.RegistryPaths = []string{"nowhere"}
	if _, err := Capabilities(cfg, dir, capability.Builtins(nil)); err == nil || !strings.Contains(err.Error(), `:registry_paths "nowhere"`) {
		t.Errorf("missing directory: %v", err)
	}
}
