package governance

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/ccos-project/ccos/capability"
	"github.com/ccos-project/ccos/config"
)

// Authorizer is the one decision every capability call passes, whoever
// makes it and however its id was written: admission applies it to the
// calls written in a plan, and Admission.Authorize to every call at run
// time, literal or computed, so that the two cannot drift apart. It
// checks, in order: that the capability exists; that the config does not
// disable it, and enables it when it is known only by a marketplace
// contract; that the isolation its contract asks for (:runtime {:sandbox
// :microvm}) is the one the plan runs under; and the security context
// (SecurityAuthorizer: level, allow and deny patterns, dangerous
// capabilities at the controlled level).
type Authorizer struct {
	rc   RuntimeContext
	cfg  *config.Config
	caps *capability.Registry
}

// NewAuthorizer returns the decision for plans run under cfg in the
// context rc, with the capabilities of caps.
func NewAuthorizer(rc RuntimeContext, cfg *config.Config, caps *capability.Registry) *Authorizer {
	return &Authorizer{rc: rc, cfg: cfg, caps: caps}
}

// Capability looks up id and decides whether it may be called. A refusal
// is a *Rejection without Step or Span (the caller knows them).
func (z *Authorizer) Capability(id string) (*capability.Capability, *Rejection) {
	c, err := z.caps.Lookup(id)
	if err != nil {
		return nil, refuse(RuleUnknownCapability, id, "the capabilities are: "+strings.Join(z.caps.IDs(), ", "),
			"calls :%s, which no capability provides", id)
	}
	if r := z.Decide(c); r != nil {
		return nil, r
	}
	return c, nil
}

// Decide decides whether the capability c may be called, c being the
// implementation that would run (the host's registry entry, with its
// contract). A refusal is a *Rejection without Step or Span.
func (z *Authorizer) Decide(c *capability.Capability) *Rejection {
	entered := false
	for _, e := range z.cfg.Capabilities.Entries {
		if e.Capability != c.ID {
			continue
		}
		entered = true
		if !e.Enabled {
			return refuse(RuleCapabilityDisabled, c.ID, "enable it in :capabilities :entries, or remove the call",
				"calls :%s, which the config disables", c.ID)
		}
	}
	if c.ContractFile != "" && !entered {
		return refuse(RuleCapabilityDisabled, c.ID, fmt.Sprintf(`add {:capability :%s :contract %q} to :capabilities :entries`, c.ID, c.ContractFile),
			"calls :%s, whose contract is in the marketplace (%s), but no :capabilities :entries entry enables it", c.ID, c.ContractFile)
	}
	if c.Contract.Sandbox == string(config.IsolationMicroVM) && z.rc.Isolation != config.IsolationMicroVM {
		return refuse(RuleIsolationRequired, c.ID, "run the agent with :orchestrator :isolation :mode :microvm",
			"calls :%s, whose contract needs :runtime {:sandbox :microvm}, and the plan would run under :%s isolation", c.ID, z.rc.Isolation)
	}
	if _, err := (SecurityAuthorizer{}).AuthorizeCapability(z.rc, c); err != nil {
		var r *Rejection
		if errors.As(err, &r) {
			return r
		}
		return refuse(RuleSecurityLevel, c.ID, "", "%v", err)
	}
	return nil
}

// Authorize decides at run time whether the capability c (the
// implementation that would run) may be called in step ("" outside every
// step). It is the decision admission applied to the calls written in
// the plan (Authorizer), and then the step's profile: a capability the
// profile names, or, in a step that declared its effects, one whose
// contract fits them. Outside steps, only the pure capabilities admitted
// there may be called. It returns nil or a *Rejection naming the step and
// the rule.
func (a *Admission) Authorize(step string, c *capability.Capability) error {
	if a.auth == nil {
		return errors.New("governance: the admission carries no run-time decision (admit plans with governance.Admit or AdmitIn)")
	}
	if r := a.auth.Decide(c); r != nil {
		r.Step = step
		return r
	}
	if step == "" {
		if !slices.Contains(a.Unstepped, c.ID) {
			return &Rejection{Rule: RuleHostCallOutside, Value: c.ID, Hint: "call it inside a (step ...)",
				Msg: fmt.Sprintf("calls :%s outside any step, where only the pure capabilities the plan names there (%v) may run", c.ID, a.Unstepped)}
		}
		return nil
	}
	prof := a.Profile(step)
	if prof == nil {
		return &Rejection{Step: step, Rule: RuleStepNotAdmitted, Value: step, Msg: fmt.Sprintf("calls :%s in a step that was not admitted", c.ID)}
	}
	if slices.Contains(prof.Capabilities, c.ID) {
		return nil
	}
	if !prof.Dynamic {
		return &Rejection{Step: step, Rule: RuleOutsideProfile, Value: c.ID, Hint: "write the call with a literal capability id, or declare the step's :effects",
			Msg: fmt.Sprintf("calls :%s, which is not in the step's admitted profile %v", c.ID, prof.Capabilities)}
	}
	if !effectsWithin(c.Contract.Effects, prof.Effects) {
		return &Rejection{Step: step, Rule: RuleUndeclaredEffect, Value: c.ID, Hint: "add the capability's effects to the step's :effects",
			Msg: fmt.Sprintf("calls :%s, whose contract needs %s, beyond the step's declared effects %s",
				c.ID, describeEffects(c.Contract.Effects), describeEffects(prof.Effects))}
	}
	return nil
}

// Granted returns the ids of the capabilities of caps that step may call
// at run time (Authorize), sorted: the grant the host hands the guest, so
// that the guest runs locally only what the host would allow.
func (a *Admission) Granted(step string, caps *capability.Registry) []string {
	out := []string{}
	for _, id := range caps.IDs() {
		c, err := caps.Lookup(id)
		if err == nil && a.Authorize(step, c) == nil {
			out = append(out, id)
		}
	}
	return out
}
