package config

import (
	"slices"
	"strings"
	"testing"
)

func TestEgress(t *testing.T) {
	for _, c := range []struct {
		name, src string
		on        bool
		allow     []string
		mtls      bool
		off       string
	}{
		{"minimal", `(profile:minimal "a")`, false, nil, false, ":http capability is not enabled"},
		{"networked", `(profile:networked "a" ["api.example.com"])`, true, []string{"api.example.com"}, true, ""},
		{"http alone", `(agent.config :version "0.1" :agent-id "a" :features [:network]
  :capabilities {:http {:enabled true :egress {:allow-domains ["x.example"]}}})`, true, []string{"x.example"}, false, ""},
		{"network off", `(agent.config :version "0.1" :agent-id "a" :features [:network]
  :capabilities {:http {:enabled true}} :network {:enabled false})`, false, nil, false, "network is not enabled"},
		{"via direct", `(agent.config :version "0.1" :agent-id "a" :features [:network]
  :capabilities {:http {:enabled true}} :network {:enabled true :egress {:via :direct :allow-domains ["x.example"]}})`, false, nil, false, ":via :direct"},
		{"via none", `(agent.config :version "0.1" :agent-id "a" :features [:network]
  :capabilities {:http {:enabled true}} :network {:enabled true :egress {:via :none}})`, false, nil, false, ":via :none"},
		{"http mtls", `(agent.config :version "0.1" :agent-id "a" :features [:network]
  :capabilities {:http {:enabled true :egress {:allow-domains ["x.example"] :mtls true}}}
  :network {:enabled true :egress {:via :proxy :allow-domains ["x.example"]}})`, true, []string{"x.example"}, true, ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			res := Load([]byte(c.src), "c.rtfs", RTFSEvaluator{})
			if res.Config == nil {
				t.Fatalf("%v", res.Diags)
			}
			eg := res.Config.Egress()
			if eg.Enabled != c.on || !slices.Equal(eg.AllowDomains, c.allow) || eg.MTLS != c.mtls || !strings.Contains(eg.Off, c.off) || (c.on && eg.Off != "") {
				t.Fatalf("Egress() = %+v", eg)
			}
		})
	}
}
