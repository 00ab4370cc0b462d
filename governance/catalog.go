package governance

import (
	"github.com/ccos-project/ccos/capability"
	"github.com/ccos-project/ccos/config"
	"github.com/ccos-project/ccos/plan"
)

// Catalog is what an agent's plans may call, as a model or a person needs
// to know it to write a plan: every capability admission would let a step
// call under the config and the security context, with its arguments,
// effects, risk, where it runs and an example, and the capabilities it
// would refuse, each with the rule that refuses it.
type Catalog struct {
	Agent        string               `json:"agent"`
	Level        Level                `json:"security_level"`
	Isolation    config.IsolationMode `json:"isolation"`
	Capabilities []CatalogEntry       `json:"capabilities"`
	Unavailable  []Unavailable        `json:"unavailable"`
}

// CatalogEntry is one callable capability.
type CatalogEntry struct {
	ID  string `json:"id"`
	Doc string `json:"doc"`
	// RunsIn is "guest" (inside the sandbox) or "host" (yielded to the
	// host, which checks it against the step's admitted profile).
	RunsIn string `json:"runs_in"`
	Class  string `json:"class"`
	// InStepOnly says the capability may be called only inside a
	// (step ...); pure capabilities without effects may be called anywhere.
	InStepOnly bool             `json:"in_step_only"`
	Args       []capability.Arg `json:"args"`
	Returns    string           `json:"returns,omitempty"`
	Effects    []EffectDoc      `json:"effects"`
	// Risk is the risk tier a step calling it gets (low, medium, high).
	Risk config.RiskTier `json:"risk"`
	// Mutates says a call changes something beyond its value: its outcome
	// is recorded under its idempotency key and never repeated.
	Mutates   bool    `json:"mutates"`
	MaxTimeMS int64   `json:"max_time_ms"`
	CostUSD   float64 `json:"cost_usd"`
	Tokens    int64   `json:"tokens"`
	// Sandbox is the isolation its contract needs ("" for any).
	Sandbox string `json:"sandbox,omitempty"`
	// Contract is the marketplace contract file ("" for a built-in).
	Contract string `json:"contract,omitempty"`
	Example  string `json:"example,omitempty"`
	// Allowed is what the config lets its effects reach: the domains of
	// the network allowlist, the readable variables, the host paths.
	Allowed *AllowedScope `json:"allowed,omitempty"`
}

// EffectDoc is an effect as a catalog shows it.
type EffectDoc struct {
	Kind    string   `json:"kind"`
	Domains []string `json:"domains,omitempty"`
	Methods []string `json:"methods,omitempty"`
	Paths   []string `json:"paths,omitempty"`
	Models  []string `json:"models,omitempty"`
	Vars    []string `json:"vars,omitempty"`
}

// AllowedScope is what the config allows a capability's effects to reach.
type AllowedScope struct {
	Domains []string `json:"domains,omitempty"`
	Vars    []string `json:"vars,omitempty"`
	Paths   []string `json:"paths,omitempty"`
	Models  []string `json:"models,omitempty"`
}

// Unavailable is a capability admission would refuse, and every reason.
type Unavailable struct {
	ID      string   `json:"id"`
	Reasons []Reason `json:"reasons"`
}

// Reason is one rule that refuses a capability.
type Reason struct {
	Rule string `json:"rule"`
	Msg  string `json:"message"`
	Hint string `json:"hint,omitempty"`
}

// BuildCatalog lists the capabilities of caps as admission sees them under
// rc and cfg: a capability is callable when a step that calls it alone
// would be admitted (the same kernel decides both).
func BuildCatalog(rc RuntimeContext, cfg *config.Config, caps *capability.Registry) *Catalog {
	cat := &Catalog{Agent: cfg.AgentID, Level: rc.Level, Isolation: rc.Isolation, Capabilities: []CatalogEntry{}, Unavailable: []Unavailable{}}
	for _, id := range caps.IDs() {
		cp, err := caps.Lookup(id)
		if err != nil {
			continue
		}
		k := &kernel{p: &plan.Plan{}, cfg: cfg, caps: caps, rc: rc, auth: NewAuthorizer(rc, cfg, caps)}
		step := plan.Step{Name: "catalog", Calls: []plan.Call{{Capability: id}}}
		k.profile(&step, "")
		if len(k.rej) > 0 {
			u := Unavailable{ID: id}
			for _, r := range k.rej {
				u.Reasons = append(u.Reasons, Reason{Rule: string(r.Rule), Msg: r.Msg, Hint: r.Hint})
			}
			cat.Unavailable = append(cat.Unavailable, u)
			continue
		}
		cat.Capabilities = append(cat.Capabilities, catalogEntry(cp, cfg))
	}
	return cat
}

func catalogEntry(cp *capability.Capability, cfg *config.Config) CatalogEntry {
	e := CatalogEntry{ID: cp.ID, Doc: cp.Doc, RunsIn: "guest", Class: cp.Class.String(), Args: cp.Args, Returns: cp.Returns,
		Effects: []EffectDoc{}, Risk: tierOf(cp.Contract.Effects), Mutates: cp.Mutates, MaxTimeMS: cp.Contract.MaxTimeMS,
		CostUSD: cp.Contract.CostUSD, Tokens: cp.Contract.Tokens, Sandbox: cp.Contract.Sandbox, Contract: cp.ContractFile, Example: cp.Example}
	if e.Args == nil {
		e.Args = []capability.Arg{}
	}
	if cp.Class == capability.Host {
		e.RunsIn = "host"
	}
	e.InStepOnly = cp.Class != capability.Pure || len(cp.Contract.Effects) > 0
	var allowed AllowedScope
	for _, ef := range cp.Contract.Effects {
		e.Effects = append(e.Effects, EffectDoc{Kind: ef.Kind, Domains: ef.Domains, Methods: ef.Methods, Paths: ef.Paths, Models: ef.Models, Vars: ef.Vars})
		switch ef.Kind {
		case capability.EffectNetwork:
			if eg := cfg.Egress(); eg.Enabled {
				allowed.Domains = eg.AllowDomains
			}
		case capability.EffectEnv:
			allowed.Vars = cfg.Capabilities.Env.Vars
		case capability.EffectFS:
			allowed.Paths = cfg.Capabilities.FS.Paths
		case capability.EffectLLM:
			allowed.Models = cfg.Capabilities.LLM.Models
		}
	}
	if allowed.Domains != nil || allowed.Vars != nil || allowed.Paths != nil || allowed.Models != nil {
		e.Allowed = &allowed
	}
	return e
}
