package main

import (
	"encoding/json"
	"strings"
	"testing"
)

// ccos capabilities lists what the config makes callable, and with --json
// the same catalog as one document; an invalid config is its diagnostics.
func TestCapabilitiesCommand(t *testing.T) {
	out, errOut, code := runCCOS(t, "", "capabilities")
	if code != 0 || !strings.Contains(out, ":ccos.math.add") || !strings.Contains(out, "example (call :ccos.math.add 1 2 3)") ||
		!strings.Contains(out, "refused:") || !strings.Contains(out, ":ccos.network.http-fetch:") {
		t.Fatalf("exit %d\n%s\n%s", code, out, errOut)
	}
	cfg := writeTemp(t, "net.rtfs", `(profile:networked "agent.cat" ["api.example.com"])`)
	out, errOut, code = runCCOS(t, "", "capabilities", "--config", cfg, "--security-level", "full", "--json")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	var cat struct {
		Agent        string
		Capabilities []struct {
			ID      string `json:"id"`
			RunsIn  string `json:"runs_in"`
			Risk    string `json:"risk"`
			Example string `json:"example"`
			Allowed *struct {
				Domains []string `json:"domains"`
			} `json:"allowed"`
		}
	}
	if err := json.Unmarshal([]byte(out), &cat); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	found := false
	for _, c := range cat.Capabilities {
		if c.ID == "ccos.network.http-fetch" {
			found = c.RunsIn == "host" && c.Risk == "high" && c.Allowed != nil && len(c.Allowed.Domains) == 1 && c.Example != ""
		}
	}
	if cat.Agent != "agent.cat" || !found {
		t.Errorf("catalog: %s", out)
	}
	bad := writeTemp(t, "bad.rtfs", `(agent.config :version "0.1" :agent-id "Bad Id")`)
	_, errOut, code = runCCOS(t, "", "capabilities", "--config", bad)
	if code != 1 || !strings.Contains(errOut, "INVALID_AGENT_ID") {
		t.Errorf("invalid config: exit %d, %s", code, errOut)
	}
}
