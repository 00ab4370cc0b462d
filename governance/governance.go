// Package governance is the kernel that decides, before anything runs,
// whether a plan may run under an agent config: it derives a profile for
// every step from what the step can reach and declares, checks each
// profile against the config, sums the plan's budgets, chooses the policy
// by risk tier and verifies the approvals it requires. A rejection names
// the step, the rule and the offending value, and nothing starts.
package governance

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"

	"github.com/ccos-project/ccos/capability"
	"github.com/ccos-project/ccos/config"
	"github.com/ccos-project/ccos/plan"
	"github.com/ccos-project/ccos/rtfs"
)

// Rule names the rule a rejection applies; it is the first word of the
// rejection's message, for people and for tools.
type Rule string

// Rules a rejection can name.
const (
	RuleUnknownCapability  Rule = "UNKNOWN_CAPABILITY"
	RuleCapabilityDisabled Rule = "CAPABILITY_DISABLED"
	RuleDynamicCall        Rule = "DYNAMIC_CALL"
	RuleHostCallOutside    Rule = "HOST_CALL_OUTSIDE_STEP"
	RuleUndeclaredEffect   Rule = "UNDECLARED_EFFECT"
	RuleNetworkDisabled    Rule = "NETWORK_DISABLED"
	RuleDomainNotAllowed   Rule = "DOMAIN_NOT_ALLOWED"
	RuleMethodNotAllowed   Rule = "METHOD_NOT_ALLOWED"
	RuleFSDisabled         Rule = "FS_DISABLED"
	RulePathNotAllowed     Rule = "PATH_NOT_ALLOWED"
	RuleLLMDisabled        Rule = "LLM_DISABLED"
	RuleModelNotAllowed    Rule = "MODEL_NOT_ALLOWED"
	RuleGPUDisabled        Rule = "GPU_DISABLED"
	RuleEnvNotConfigured   Rule = "ENV_NOT_CONFIGURED"
	RuleEnvVarNotAllowed   Rule = "ENV_VAR_NOT_ALLOWED"
	RuleBudgetExceeded     Rule = "BUDGET_EXCEEDED"
	RuleApprovalsMissing   Rule = "APPROVALS_MISSING"
	RuleSecurityLevel      Rule = "SECURITY_LEVEL"
	RuleCapabilityDenied   Rule = "CAPABILITY_DENIED"
	RuleIsolationRequired  Rule = "ISOLATION_REQUIRED"
	// RuleOutsideProfile refuses, at run time, a call to a capability the
	// step's profile does not name, in a step that did not declare its
	// effects.
	RuleOutsideProfile Rule = "OUTSIDE_PROFILE"
	// RuleStepNotAdmitted refuses, at run time, a call in a step that was
	// not admitted.
	RuleStepNotAdmitted Rule = "STEP_NOT_ADMITTED"
)

// Rejection is one reason a plan, or at run time one capability call, is
// refused.
type Rejection struct {
	// Step is the step concerned ("" for the plan as a whole).
	Step string
	Rule Rule
	// Value is the offending value (a capability, domain, amount...).
	Value string
	Msg   string
	Hint  string
	Span  rtfs.Span
}

func (r *Rejection) Error() string {
	var b strings.Builder
	if !r.Span.IsZero() {
		b.WriteString(r.Span.String() + ": ")
	}
	b.WriteString(string(r.Rule) + ": ")
	if r.Step != "" {
		fmt.Fprintf(&b, "step %q: ", r.Step)
	}
	b.WriteString(r.Msg)
	if r.Hint != "" {
		b.WriteString(" (hint: " + r.Hint + ")")
	}
	return b.String()
}

// Rejections is every reason a plan was refused, in plan order.
type Rejections []*Rejection

func (rs Rejections) Error() string {
	parts := make([]string, len(rs))
	for i, r := range rs {
		parts[i] = r.Error()
	}
	return strings.Join(parts, "\n")
}

// Unwrap returns each reason, so that errors.As finds a *Rejection and
// errors.Is compares with each.
func (rs Rejections) Unwrap() []error {
	out := make([]error, len(rs))
	for i, r := range rs {
		out[i] = r
	}
	return out
}

// NetworkACL is where a step may connect: nothing when Domains is empty.
type NetworkACL struct {
	Domains []string `json:"domains"`
	Methods []string `json:"methods"`
}

// FSPolicy is what a step sees of the file system: its own tmpfs workdir,
// the capabilities directory read-only, and Paths (host paths granted by
// an :fs effect within the config's :capabilities :fs :paths).
type FSPolicy struct {
	Workdir        bool     `json:"workdir"`
	CapabilitiesRO bool     `json:"capabilities_ro"`
	Paths          []string `json:"paths"`
}

// Determinism says whether a step sees the real clock and randomness, or
// values bound to a seed derived from the plan hash and the step name.
type Determinism struct {
	Time   string `json:"time"`   // "real" or "seeded"
	Random string `json:"random"` // "real" or "seeded"
	Seed   string `json:"seed"`   // hex; what seeded values derive from
}

// Features are the feature gates a step needs.
type Features struct {
	LLM bool `json:"llm"`
	GPU bool `json:"gpu"`
}

// StepProfile is everything a step may do, derived at admission and
// enforced while the step runs. It is never wider than the agent config.
type StepProfile struct {
	Step string `json:"step"`
	// Capabilities are the capabilities the step may call.
	Capabilities []string `json:"capabilities"`
	// Dynamic is set when the step declared its effects and may also call
	// capabilities chosen at run time, as long as their contracts stay
	// within Effects.
	Dynamic     bool                `json:"dynamic"`
	Effects     []capability.Effect `json:"effects"`
	Network     NetworkACL          `json:"network"`
	FS          FSPolicy            `json:"fs"`
	Determinism Determinism         `json:"determinism"`
	Features    Features            `json:"features"`
	// Env are the environment variables the step may read with
	// ccos.system.get-env.
	Env []string `json:"env_vars"`
	// Retry is how many times the step may be retried after a failed
	// attempt (:retry N).
	Retry int `json:"retry"`
	// MaxTimeMS bounds the step's wall-clock time when the step declares
	// :resources {:max_time_ms N} (0: only the run's deadline applies).
	MaxTimeMS int64 `json:"max_time_ms"`
	// Derived is what admission read from the literal arguments of the
	// step's calls (a URL's domain and method, a variable's name), and
	// where.
	Derived []Derivation `json:"derived,omitempty"`
	// timeBudget is the declared limit, or the sum of the reached
	// contracts' per-call limits.
	timeBudget int64
}

// Budget is what a plan may spend, summed over its capability calls (each
// call site once: calls in loops are bounded by the step's time limit, not
// counted).
type Budget struct {
	CostUSD float64 `json:"cost_usd"`
	Tokens  int64   `json:"tokens"`
	TimeMS  int64   `json:"time_ms"`
}

// Admission is an admitted plan.
type Admission struct {
	// PlanHash is "sha256:" and the hex SHA-256 of the plan's source text.
	PlanHash string         `json:"plan_hash"`
	Profiles []*StepProfile `json:"steps"`
	// Unstepped are the capabilities the plan calls outside any step (pure
	// ones only).
	Unstepped []string        `json:"unstepped"`
	Tier      config.RiskTier `json:"risk_tier"`
	// Policy is the name of the governance policy applied ("" for none).
	Policy    string   `json:"policy"`
	Budget    Budget   `json:"budget"`
	Approvals []string `json:"approvals"`
	// Level is the security level the plan was admitted at.
	Level Level `json:"security_level"`
	// Agent, ConfigDigest and Isolation identify the config the plan was
	// admitted under: its :agent-id, ConfigDigest of it, and its
	// :orchestrator :isolation :mode. Run receipts carry them.
	Agent        string               `json:"agent"`
	ConfigDigest string               `json:"config_digest"`
	Isolation    config.IsolationMode `json:"isolation"`
	// auth is the decision admission applied, kept for the calls made
	// at run time (Authorize).
	auth *Authorizer
}

// ConfigDigest returns "sha256:" and the hex SHA-256 of the JSON encoding
// of a decoded config: it changes whenever anything admission and the run
// read from the config changes, and not with its spelling or comments.
func ConfigDigest(cfg *config.Config) string {
	b, err := json.Marshal(cfg)
	if err != nil {
		// The config is plain data; this is a programming error.
		panic("governance: encoding the config: " + err.Error())
	}
	sum := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(sum[:])
}

// Profile returns the profile of the named step.
func (a *Admission) Profile(step string) *StepProfile {
	for _, p := range a.Profiles {
		if p.Step == step {
			return p
		}
	}
	return nil
}

// PlanHash returns the hash approvals sign: "sha256:" and the hex SHA-256
// of the plan's source text.
func PlanHash(p *plan.Plan) string {
	sum := sha256.Sum256(p.Source)
	return "sha256:" + hex.EncodeToString(sum[:])
}

// Admit decides whether p may run under cfg with the capabilities of
// caps. approvals are signed approvals of the plan (see Approve). It
// returns the admission, or Rejections naming every reason to refuse.
func Admit(p *plan.Plan, cfg *config.Config, caps *capability.Registry, approvals []Approval) (*Admission, error) {
	return AdmitIn(DefaultContext(cfg), p, cfg, caps, approvals)
}

// AdmitIn is Admit under an explicit runtime context.
func AdmitIn(rc RuntimeContext, p *plan.Plan, cfg *config.Config, caps *capability.Registry, approvals []Approval) (*Admission, error) {
	k := &kernel{p: p, cfg: cfg, caps: caps, rc: rc, auth: NewAuthorizer(rc, cfg, caps)}
	a := &Admission{PlanHash: PlanHash(p), Tier: config.RiskLow, Level: rc.Level, auth: k.auth,
		Agent: cfg.AgentID, ConfigDigest: ConfigDigest(cfg), Isolation: cfg.Orchestrator.Isolation.Mode}
	for i := range p.Steps {
		prof := k.profile(&p.Steps[i], a.PlanHash)
		a.Profiles = append(a.Profiles, prof)
		a.Tier = maxTier(a.Tier, tierOf(prof.Effects))
	}
	k.unstepped(a)
	for _, prof := range a.Profiles {
		a.Budget.TimeMS += prof.timeBudget
	}
	k.policy(a, approvals)
	if len(k.rej) > 0 {
		return nil, k.rej
	}
	return a, nil
}

type kernel struct {
	rc   RuntimeContext
	auth *Authorizer
	p    *plan.Plan
	cfg  *config.Config
	caps *capability.Registry
	rej  Rejections
	cost Budget
}

func (k *kernel) reject(step string, sp rtfs.Span, rule Rule, value, hint, format string, args ...any) {
	k.rej = append(k.rej, &Rejection{Step: step, Rule: rule, Value: value, Span: sp, Hint: hint, Msg: fmt.Sprintf(format, args...)})
}

// profile derives one step's profile and checks it against the config.
func (k *kernel) profile(s *plan.Step, planHash string) *StepProfile {
	prof := &StepProfile{Step: s.Name, Capabilities: []string{}, Env: []string{}, FS: FSPolicy{Workdir: true, CapabilitiesRO: true, Paths: []string{}},
		Network: NetworkACL{Domains: []string{}, Methods: []string{}}}
	for _, c := range s.Calls {
		cp, ok := k.known(s.Name, c)
		if !ok {
			continue
		}
		prof.Capabilities = append(prof.Capabilities, c.Capability)
		// Each attempt of a retried step may call again (only recorded
		// side-effecting calls are not repeated): the bounds count every
		// attempt.
		attempts := int64(1 + s.Options.Retry)
		prof.timeBudget += attempts * cp.Contract.MaxTimeMS
		k.cost.CostUSD += float64(attempts) * cp.Contract.CostUSD
		k.cost.Tokens += attempts * cp.Contract.Tokens
	}
	needed := k.deriveEffects(s, prof)
	switch {
	case s.Options.Declared:
		// The step may do only what it declares: every statically known
		// call must fit, and so must every literal target.
		for _, c := range s.Calls {
			if cp, err := k.caps.Lookup(c.Capability); err == nil && !effectsWithin(cp.Contract.Effects, s.Options.Effects) {
				k.reject(s.Name, c.Span, RuleUndeclaredEffect, c.Capability, "add the capability's effects to the step's :effects",
					"calls %s, whose contract needs %s, beyond the step's declared effects %s",
					c.Capability, describeEffects(cp.Contract.Effects), describeEffects(s.Options.Effects))
			}
		}
		for _, d := range prof.Derived {
			if !literalWithin(d.effect, s.Options.Effects) {
				k.reject(s.Name, d.span, RuleUndeclaredEffect, derivedValue(d), "add it to the step's :effects, or call what the step declares",
					"calls :%s with %s (%s), beyond the step's declared effects %s", d.Capability, d.Value, d.Effect, describeEffects(s.Options.Effects))
			}
		}
		// What the context would refuse in every capability that fits an
		// effect is refused where the effect is declared.
		var r *Rejection
		if err := (SecurityAuthorizer{}).AuthorizeEffects(k.rc, s.Options.Effects); errors.As(err, &r) {
			r.Step, r.Span = s.Name, s.Span
			k.rej = append(k.rej, r)
		}
		prof.Effects = mergeEffects(s.Options.Effects)
		prof.Dynamic = len(s.Dynamic) > 0
	case len(s.Dynamic) > 0:
		k.reject(s.Name, s.Dynamic[0], RuleDynamicCall, "", "declare the step's effects with [:effects [...]] so that only those are allowed at run time",
			"calls a capability chosen at run time, which cannot be checked before the plan runs")
		prof.Effects = needed
	default:
		prof.Effects = mergeEffects(k.scopeEnv(needed))
	}
	prof.Retry = s.Options.Retry
	if s.Options.MaxTimeMS > 0 {
		prof.MaxTimeMS = s.Options.MaxTimeMS
		prof.timeBudget = s.Options.MaxTimeMS
	}
	k.checkEffects(s, prof)
	prof.Determinism = Determinism{Time: "seeded", Random: "seeded", Seed: stepSeed(planHash, s.Name)}
	for _, e := range prof.Effects {
		switch e.Kind {
		case capability.EffectTime:
			prof.Determinism.Time = "real"
		case capability.EffectRandom:
			prof.Determinism.Random = "real"
		}
	}
	return prof
}

// scopeEnv scopes the unscoped :env effects of contracts (get-env's) to
// the variables the config names, before they merge with scoped ones.
func (k *kernel) scopeEnv(effs []capability.Effect) []capability.Effect {
	env := k.cfg.Capabilities.Env
	if !env.Enabled {
		return effs
	}
	out := slices.Clone(effs)
	for i, e := range out {
		if e.Kind == capability.EffectEnv && len(e.Vars) == 0 {
			out[i].Vars = slices.Clone(env.Vars)
		}
	}
	return out
}

// known looks up a capability and applies the decision every call passes
// (Authorizer), rejecting the call where it is written when it fails.
func (k *kernel) known(step string, c plan.Call) (*capability.Capability, bool) {
	cp, r := k.auth.Capability(c.Capability)
	if r != nil {
		if r.Rule == RuleUnknownCapability && len(c.Via) > 0 {
			r.Msg = fmt.Sprintf("calls :%s (through %s), which no capability provides", c.Capability, strings.Join(c.Via, " -> "))
		}
		r.Step, r.Span = step, c.Span
		k.rej = append(k.rej, r)
		// A capability that exists and is enabled, refused by the
		// isolation or the security context, still has its effects
		// checked: a plan learns every reason at once.
		if refusedByContext(r.Rule) {
			if cp, err := k.caps.Lookup(c.Capability); err == nil {
				return cp, true
			}
		}
		return nil, false
	}
	return cp, true
}

// refusedByContext reports whether a rule refuses a capability that
// exists and is enabled, for the isolation or the security context.
func refusedByContext(r Rule) bool {
	return r == RuleIsolationRequired || r == RuleSecurityLevel || r == RuleCapabilityDenied
}

// checkEffects checks a profile's effects against the config and fills in
// its network, file system and feature parts.
func (k *kernel) checkEffects(s *plan.Step, prof *StepProfile) {
	c := k.cfg
	for i, e := range prof.Effects {
		switch e.Kind {
		case capability.EffectNetwork:
			eg := c.Egress()
			if !eg.Enabled {
				k.reject(s.Name, s.Span, RuleNetworkDisabled, strings.Join(e.Domains, ","), "use a networked profile, or remove the network effect",
					"needs the network, which the config does not give: %s", eg.Off)
				continue
			}
			allow := eg.AllowDomains
			for _, d := range e.Domains {
				if domainAllowed(d, allow) {
					continue
				}
				if sp, lit := derivedSpan(prof, capability.EffectNetwork, d); lit != nil {
					k.reject(s.Name, sp, RuleDomainNotAllowed, d, "add it to :network :egress :allow-domains, or call a URL the agent may reach",
						"calls :%s with a URL on %s, which is not in the agent's allowlist %v", lit.Capability, d, allow)
					continue
				}
				k.reject(s.Name, s.Span, RuleDomainNotAllowed, d, "add it to :network :egress :allow-domains, or narrow the step",
					"needs domain %s, which is not in the agent's allowlist %v", d, allow)
			}
			for _, m := range e.Methods {
				if !slices.Contains(httpMethods, strings.ToUpper(m)) {
					k.reject(s.Name, s.Span, RuleMethodNotAllowed, m, "methods are "+strings.Join(httpMethods, " "), "uses HTTP method %s, which is not one", m)
				}
			}
			prof.Network.Domains = appendNew(prof.Network.Domains, e.Domains...)
			prof.Network.Methods = appendNew(prof.Network.Methods, upper(e.Methods)...)
		case capability.EffectFS:
			if !c.Capabilities.FS.Enabled {
				k.reject(s.Name, s.Span, RuleFSDisabled, strings.Join(e.Paths, ","), "enable :capabilities :fs with the paths it may use",
					"needs host file system paths, which the config does not enable")
				continue
			}
			for _, p := range e.Paths {
				if !pathAllowed(p, c.Capabilities.FS.Paths) {
					k.reject(s.Name, s.Span, RulePathNotAllowed, p, "add it to :capabilities :fs :paths", "needs path %s, outside %v", p, c.Capabilities.FS.Paths)
				}
			}
			prof.FS.Paths = appendNew(prof.FS.Paths, e.Paths...)
		case capability.EffectLLM:
			if !c.Capabilities.LLM.Enabled {
				k.reject(s.Name, s.Span, RuleLLMDisabled, "", "enable :capabilities :llm", "needs an LLM, which the config does not enable")
				continue
			}
			for _, m := range e.Models {
				if !slices.Contains(c.Capabilities.LLM.Models, m) {
					k.reject(s.Name, s.Span, RuleModelNotAllowed, m, "add it to :capabilities :llm :models", "needs model %s, not in %v", m, c.Capabilities.LLM.Models)
				}
			}
			prof.Features.LLM = true
		case capability.EffectGPU:
			if !c.HasFeature("gpu") {
				k.reject(s.Name, s.Span, RuleGPUDisabled, "", "add :gpu to :features", "needs a GPU, which the config's :features do not enable")
			}
			prof.Features.GPU = true
		case capability.EffectEnv:
			env := c.Capabilities.Env
			if !env.Enabled || len(env.Vars) == 0 {
				k.reject(s.Name, s.Span, RuleEnvNotConfigured, strings.Join(e.Vars, ","), `add :capabilities :env {:enabled true :vars ["NAME"]} to the config`,
					"reads environment variables, and the config names none a plan may read")
				continue
			}
			for _, v := range e.Vars {
				if !slices.Contains(env.Vars, v) {
					sp := s.Span
					if at, lit := derivedSpan(prof, capability.EffectEnv, v); lit != nil {
						sp = at
					}
					k.reject(s.Name, sp, RuleEnvVarNotAllowed, v, "add it to :capabilities :env :vars, or narrow the step",
						"reads environment variable %s, which is not in the config's :capabilities :env :vars %v", v, env.Vars)
				}
			}
			// An unscoped :env effect (get-env's own contract) is scoped
			// to the variables the config names.
			if len(e.Vars) == 0 {
				prof.Effects[i].Vars = slices.Clone(env.Vars)
			}
			prof.Env = appendNew(prof.Env, prof.Effects[i].Vars...)
		}
	}
}

// unstepped checks the calls made outside every step: only pure
// capabilities may run there.
func (k *kernel) unstepped(a *Admission) {
	for _, sp := range k.p.UnsteppedDynamic {
		k.reject("", sp, RuleDynamicCall, "", "move the call into a step that declares its effects",
			"calls a capability chosen at run time outside any step")
	}
	for _, c := range k.p.Unstepped {
		cp, ok := k.known("", c)
		if !ok {
			continue
		}
		if cp.Class != capability.Pure || len(cp.Contract.Effects) > 0 {
			k.reject("", c.Span, RuleHostCallOutside, c.Capability, "call it inside a (step ...)",
				"calls :%s outside any step; capabilities with effects, or that touch the workdir, run only inside an admitted step", c.Capability)
			continue
		}
		a.Unstepped = append(a.Unstepped, c.Capability)
		k.cost.CostUSD += cp.Contract.CostUSD
		k.cost.Tokens += cp.Contract.Tokens
	}
	a.Budget.CostUSD, a.Budget.Tokens = k.cost.CostUSD, k.cost.Tokens
}

// policy picks the governance policy for the plan's risk tier and checks
// its budgets and approvals.
func (k *kernel) policy(a *Admission, approvals []Approval) {
	name, pol, ok := choosePolicy(k.cfg.Governance.Policies, a.Tier)
	if !ok {
		return
	}
	a.Policy = name
	if b := pol.Budgets; b != nil {
		if b.MaxCostUSD != nil && a.Budget.CostUSD > *b.MaxCostUSD {
			k.reject("", rtfs.Span{}, RuleBudgetExceeded, fmt.Sprint(a.Budget.CostUSD), "raise :max_cost_usd or call fewer costly capabilities",
				"the plan may cost $%.4g, over policy %s's :max_cost_usd of $%.4g", a.Budget.CostUSD, name, *b.MaxCostUSD)
		}
		if b.TokenBudget != nil && float64(a.Budget.Tokens) > *b.TokenBudget {
			k.reject("", rtfs.Span{}, RuleBudgetExceeded, fmt.Sprint(a.Budget.Tokens), "raise :token_budget",
				"the plan may use %d tokens, over policy %s's :token_budget of %.0f", a.Budget.Tokens, name, *b.TokenBudget)
		}
	}
	if pol.RequiresApprovals > 0 {
		valid := verifyApprovals(approvals, a.PlanHash, k.cfg.VerifyKey())
		a.Approvals = valid
		if len(valid) < pol.RequiresApprovals {
			hint := "get approvals with `ccos plan approve PLAN --key KEY` and pass them with --approval"
			if k.cfg.VerifyKey() == nil {
				hint = "the config trusts no key (:governance :keys :verify), so no approval can count"
			} else if pol.RequiresApprovals > 1 {
				hint += "; the config trusts one key, so at most one approval can count"
			}
			k.reject("", rtfs.Span{}, RuleApprovalsMissing, fmt.Sprint(len(valid)), hint,
				"policy %s (risk tier :%s) requires %d approval(s) of plan %s; %d valid", name, a.Tier, pol.RequiresApprovals, a.PlanHash, len(valid))
		}
	}
}

// choosePolicy returns the policy whose risk tier is the plan's; failing
// that the "default" policy.
func choosePolicy(ps map[string]config.Policy, tier config.RiskTier) (string, config.Policy, bool) {
	names := make([]string, 0, len(ps))
	for n := range ps {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		if n != "default" && ps[n].RiskTier == tier {
			return n, ps[n], true
		}
	}
	if p, ok := ps["default"]; ok {
		return "default", p, true
	}
	return "", config.Policy{}, false
}

var tierRank = map[config.RiskTier]int{config.RiskLow: 0, config.RiskMedium: 1, config.RiskHigh: 2}

func maxTier(a, b config.RiskTier) config.RiskTier {
	if tierRank[b] > tierRank[a] {
		return b
	}
	return a
}

// tierOf rates effects: reaching outside (network, models, GPUs, the
// environment) is high risk, host files medium, the rest low.
func tierOf(effs []capability.Effect) config.RiskTier {
	t := config.RiskLow
	for _, e := range effs {
		switch e.Kind {
		case capability.EffectNetwork, capability.EffectLLM, capability.EffectGPU, capability.EffectEnv:
			t = maxTier(t, config.RiskHigh)
		case capability.EffectFS:
			t = maxTier(t, config.RiskMedium)
		}
	}
	return t
}

func stepSeed(planHash, step string) string {
	sum := sha256.Sum256([]byte("ccos step seed\x00" + planHash + "\x00" + step))
	return hex.EncodeToString(sum[:16])
}
