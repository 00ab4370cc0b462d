package governance

import (
	"slices"
	"testing"

	"github.com/ccos-project/ccos/capability"
	"github.com/ccos-project/ccos/config"
)

// The catalog lists what admission would admit in a step, with the
// arguments, effects, risk and place of each capability, and names the
// rule that refuses each of the others.
func TestCatalog(t *testing.T) {
	ids := func(es []CatalogEntry) []string {
		var out []string
		for _, e := range es {
			out = append(out, e.ID)
		}
		return out
	}
	// unavailable returns the rules that refuse id.
	unavailable := func(c *Catalog, id string) ([]string, bool) {
		for _, u := range c.Unavailable {
			if u.ID == id {
				var rules []string
				for _, r := range u.Reasons {
					if r.Msg == "" {
						t.Errorf("%s: rule %s without a message", id, r.Rule)
					}
					rules = append(rules, r.Rule)
				}
				return rules, len(rules) > 0
			}
		}
		return nil, false
	}

	cfg := loadConfig(t, minimal)
	cat := BuildCatalog(DefaultContext(cfg), cfg, capability.Builtins(nil))
	got := ids(cat.Capabilities)
	for _, id := range []string{"ccos.echo", "ccos.math.add", "ccos.io.read-file", "ccos.system.current-time"} {
		if !slices.Contains(got, id) {
			t.Errorf("minimal: %s is not listed as callable: %v", id, got)
		}
	}
	if _, ok := unavailable(cat, "ccos.network.http-fetch"); !ok {
		t.Errorf("minimal: http-fetch should be unavailable with a rule and a reason: %+v", cat.Unavailable)
	}
	if _, ok := unavailable(cat, "ccos.system.get-env"); !ok {
		t.Errorf("minimal: get-env should be unavailable: %+v", cat.Unavailable)
	}
	for _, e := range cat.Capabilities {
		if e.Example == "" || e.Doc == "" {
			t.Errorf("%s has no example or doc", e.ID)
		}
		switch e.ID {
		case "ccos.echo":
			if e.RunsIn != "guest" || e.InStepOnly || e.Risk != config.RiskLow || len(e.Args) != 1 {
				t.Errorf("echo: %+v", e)
			}
		case "ccos.system.current-time":
			if e.RunsIn != "host" || !e.InStepOnly || len(e.Effects) != 1 || e.Effects[0].Kind != "time" {
				t.Errorf("current-time: %+v", e)
			}
		}
	}

	cfg = loadConfig(t, networked)
	rc := DefaultContext(cfg)
	rc.Level = LevelFull
	cat = BuildCatalog(rc, cfg, capability.Builtins(nil))
	i := slices.IndexFunc(cat.Capabilities, func(e CatalogEntry) bool { return e.ID == "ccos.network.http-fetch" })
	if i < 0 {
		t.Fatalf("networked at the full level: http-fetch is not callable: %+v", cat.Unavailable)
	}
	fetch := cat.Capabilities[i]
	if fetch.Risk != config.RiskHigh || fetch.RunsIn != "host" || !fetch.Mutates || fetch.Allowed == nil ||
		!slices.Equal(fetch.Allowed.Domains, []string{"api.example.com", "*.slack.com"}) {
		t.Errorf("http-fetch: %+v", fetch)
	}
	if len(fetch.Args) != 2 || fetch.Args[0].Target != capability.TargetURL {
		t.Errorf("http-fetch args: %+v", fetch.Args)
	}

	// At the controlled level without a microVM, a capability that
	// reaches beyond the sandbox is refused for its isolation.
	cat = BuildCatalog(DefaultContext(cfg), cfg, capability.Builtins(nil))
	if rules, _ := unavailable(cat, "ccos.network.http-fetch"); !slices.Contains(rules, string(RuleIsolationRequired)) {
		t.Errorf("networked, controlled: http-fetch: %v", rules)
	}
	// At the full level without an :env section, get-env is refused
	// because the config names no variable.
	cfg = loadConfig(t, minimal)
	rc = DefaultContext(cfg)
	rc.Level = LevelFull
	cat = BuildCatalog(rc, cfg, capability.Builtins(nil))
	if rules, _ := unavailable(cat, "ccos.system.get-env"); !slices.Contains(rules, string(RuleEnvNotConfigured)) {
		t.Errorf("minimal, full: get-env: %v", rules)
	}
}
