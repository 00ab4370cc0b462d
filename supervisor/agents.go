package supervisor

import (
	"context"
	"sort"

	"github.com/ccos-project/ccos/rtfs"
)

// AgentInfo describes an agent for the API and the console: its config
// (expanded and formatted), what it allows and its counters.
type AgentInfo struct {
	Agent         string   `json:"agent"`
	File          string   `json:"file"`
	Isolation     string   `json:"isolation"`
	Provider      string   `json:"provider,omitempty"`
	SecurityLevel string   `json:"security_level"`
	Capabilities  []string `json:"capabilities"`
	// Network is whether the agent may reach the network (through the
	// egress proxy), and where.
	Network       bool           `json:"network"`
	AllowDomains  []string       `json:"allow_domains"`
	ReplayOnCrash bool           `json:"replay_on_crash"`
	Config        string         `json:"config"`
	Runs          map[Status]int `json:"runs"`
	// Limits are the bounds its runs get.
	Limits AgentLimits `json:"limits"`
}

// Agents describes every agent, by id.
func (s *Supervisor) Agents() []AgentInfo {
	agents := s.o.Engine.Agents()
	sort.Slice(agents, func(i, j int) bool { return agents[i].ID() < agents[j].ID() })
	out := make([]AgentInfo, 0, len(agents))
	for _, a := range agents {
		res := a.Config()
		cfg := res.Config
		info := AgentInfo{Agent: a.ID(), File: res.File, Isolation: string(cfg.Orchestrator.Isolation.Mode),
			SecurityLevel: string(a.Context().Level), Capabilities: a.Capabilities().IDs(), AllowDomains: []string{},
			ReplayOnCrash: cfg.Orchestrator.ReplayOnCrash, Config: rtfs.FormatValue(res.Expanded, 100)}
		if p, err := a.Provider(""); err == nil {
			info.Provider = p.Name()
		}
		info.Limits = s.agentLimits(a, info.Provider)
		if eg := cfg.Egress(); eg.Enabled {
			info.Network = true
			info.AllowDomains = append(info.AllowDomains, eg.AllowDomains...)
		}
		info.Runs, _ = s.o.Store.counts(context.Background(), a.ID())
		out = append(out, info)
	}
	return out
}
