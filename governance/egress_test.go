package governance

import (
	"errors"
	"testing"
)

// TestNetworkAdmissionFollowsConfigEgress: admission decides "is the network
// on, and what is the allowlist" with config.Config.Egress, the answer the
// egress proxy enforces (egress.PolicyFromConfig): an :http capability
// without a :network section is on, :via :direct is off, and names are
// compared in their IDNA form.
func TestNetworkAdmissionFollowsConfigEgress(t *testing.T) {
	const step = `(step "s" [:effects [[:network {:domains ["api.example.com"]}]]] 1)`
	for _, c := range []struct {
		name, cfg, plan string
		rule            Rule // "" = admitted
	}{
		{"http capability alone", `(agent.config :version "0.1" :agent-id "a" :features [:network]
  :capabilities {:http {:enabled true :egress {:allow-domains ["api.example.com"]}}})`, step, ""},
		{"via direct", `(agent.config :version "0.1" :agent-id "a" :features [:network]
  :capabilities {:http {:enabled true :egress {:allow-domains ["api.example.com"]}}}
  :network {:enabled true :egress {:via :direct :allow-domains ["api.example.com"]}})`, step, RuleNetworkDisabled},
		{"network without the http capability", `(agent.config :version "0.1" :agent-id "a" :features [:network]
  :network {:enabled true :egress {:via :proxy :allow-domains ["api.example.com"]}})`, step, RuleNetworkDisabled},
		{"unicode allowlist, A-label plan", `(profile:networked "a" ["bücher.example"])`,
			`(step "s" [:effects [[:network {:domains ["xn--bcher-kva.example"]}]]] 1)`, ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			cfg := loadConfig(t, c.cfg)
			_, err := AdmitIn(RuntimeContext{Level: LevelFull, Isolation: cfg.Orchestrator.Isolation.Mode}, readPlan(t, c.plan), cfg, testCaps(), nil)
			if c.rule == "" {
				if err != nil {
					t.Fatalf("rejected: %v", err)
				}
				if !cfg.Egress().Enabled {
					t.Fatal("admitted a network step while Config.Egress is off")
				}
				return
			}
			var rs Rejections
			if !errors.As(err, &rs) || rs[0].Rule != c.rule {
				t.Fatalf("got %v, want %s", err, c.rule)
			}
			if cfg.Egress().Enabled {
				t.Fatal("refused a network step while Config.Egress is on")
			}
		})
	}
}
