package governance

import (
	"fmt"
	"path"
	"slices"

	"github.com/ccos-project/ccos/capability"
	"github.com/ccos-project/ccos/config"
)

// Level is how much a runtime context lets a plan do (specs 005 and 020).
type Level string

// The security levels.
const (
	// LevelPure allows no capability at all: the plan may only compute.
	LevelPure Level = "pure"
	// LevelControlled allows the capabilities of an explicit allowlist;
	// dangerous ones also need microVM isolation.
	LevelControlled Level = "controlled"
	// LevelFull allows every capability the agent config enables.
	LevelFull Level = "full"
)

// ParseLevel reads a level name.
func ParseLevel(s string) (Level, error) {
	switch l := Level(s); l {
	case LevelPure, LevelControlled, LevelFull:
		return l, nil
	}
	return "", fmt.Errorf("unknown security level %q (use pure, controlled or full)", s)
}

// RuntimeContext is the security context a plan runs in.
type RuntimeContext struct {
	Level Level
	// Allow and Deny are capability id patterns ("ccos.io.*", path.Match
	// syntax); Deny always wins. Allow is consulted at LevelControlled.
	Allow, Deny []string
	// Isolation is the isolation mode the plan will run under.
	Isolation config.IsolationMode
}

// DefaultContext is the context of ccos run unless told otherwise:
// controlled, allowing the built-in ccos.* capabilities and the entries
// the config enables, under the config's isolation.
func DefaultContext(cfg *config.Config) RuntimeContext {
	rc := RuntimeContext{Level: LevelControlled, Allow: []string{"ccos.*"}, Isolation: cfg.Orchestrator.Isolation.Mode}
	for _, e := range cfg.Capabilities.Entries {
		if e.Enabled {
			rc.Allow = append(rc.Allow, e.Capability)
		}
	}
	return rc
}

// Dangerous reports whether a capability can reach beyond the sandbox:
// the network, host files, the environment, models or GPUs. Capabilities
// confined to the sandbox (pure ones, the step workdir) and the clock are
// safe.
func Dangerous(c *capability.Capability) bool { return dangerousKind(c.Contract.Effects) != "" }

// dangerousKind returns the first effect kind of effs that reaches beyond
// the sandbox, or "".
func dangerousKind(effs []capability.Effect) string {
	for _, e := range effs {
		switch e.Kind {
		case capability.EffectNetwork, capability.EffectFS, capability.EffectEnv, capability.EffectLLM, capability.EffectGPU:
			return e.Kind
		}
	}
	return ""
}

// Permissions are the effect kinds a capability call needs.
func Permissions(c *capability.Capability) []string {
	var out []string
	for _, e := range c.Contract.Effects {
		if !slices.Contains(out, e.Kind) {
			out = append(out, e.Kind)
		}
	}
	return out
}

// SecurityAuthorizer decides whether a runtime context allows a
// capability, or a step's declared effects; it is the one place that
// applies the security levels.
type SecurityAuthorizer struct{}

// AuthorizeCapability returns the permissions the call needs, or a
// *Rejection naming the rule that refuses it (its Step and Span are for
// the caller to fill in).
func (SecurityAuthorizer) AuthorizeCapability(rc RuntimeContext, c *capability.Capability) ([]string, error) {
	for _, d := range rc.Deny {
		if match(d, c.ID) {
			return nil, refuse(RuleCapabilityDenied, c.ID, "remove the --deny pattern, or the call",
				"capability %s is denied by the runtime context (%s)", c.ID, d)
		}
	}
	switch rc.Level {
	case LevelPure:
		return nil, refuse(RuleSecurityLevel, c.ID, "run at the controlled or full level, or remove the call",
			"the runtime context is pure: no capability may be called, and the plan calls %s", c.ID)
	case LevelControlled:
		allowed := false
		for _, a := range rc.Allow {
			allowed = allowed || match(a, c.ID)
		}
		if !allowed {
			return nil, refuse(RuleCapabilityDenied, c.ID, "allow it with --allow, or enable its :capabilities :entries entry",
				"capability %s is not in the runtime context's allowlist %v", c.ID, rc.Allow)
		}
		if Dangerous(c) && rc.Isolation != config.IsolationMicroVM {
			return nil, refuse(RuleIsolationRequired, c.ID, "run the agent with :orchestrator :isolation :mode :microvm, or at the full level",
				"capability %s reaches beyond the sandbox (:%s) and, at the controlled level, needs :microvm isolation (the config asks for :%s)",
				c.ID, dangerousKind(c.Contract.Effects), rc.Isolation)
		}
	case LevelFull:
	default:
		return nil, refuse(RuleSecurityLevel, string(rc.Level), "", "unknown security level %q", rc.Level)
	}
	return Permissions(c), nil
}

// AuthorizeEffects decides whether a runtime context allows a step to
// declare effs: the capabilities a step with declared effects may call at
// run time are those whose contracts fit the effects, so an effect the
// context would refuse in every such capability is refused where it is
// declared. It returns nil or a *Rejection.
func (SecurityAuthorizer) AuthorizeEffects(rc RuntimeContext, effs []capability.Effect) error {
	if len(effs) == 0 {
		return nil
	}
	switch rc.Level {
	case LevelPure:
		return refuse(RuleSecurityLevel, ":"+effs[0].Kind, "declare no effects, or run at the controlled or full level",
			"the runtime context is pure: no capability may be called, and the step declares the effect :%s", effs[0].Kind)
	case LevelControlled:
		if k := dangerousKind(effs); k != "" && rc.Isolation != config.IsolationMicroVM {
			return refuse(RuleIsolationRequired, ":"+k, "run the agent with :orchestrator :isolation :mode :microvm, or at the full level",
				"the step declares the effect :%s, which reaches beyond the sandbox and, at the controlled level, needs :microvm isolation (the config asks for :%s)",
				k, rc.Isolation)
		}
	case LevelFull:
	default:
		return refuse(RuleSecurityLevel, string(rc.Level), "", "unknown security level %q", rc.Level)
	}
	return nil
}

func refuse(rule Rule, value, hint, format string, args ...any) *Rejection {
	return &Rejection{Rule: rule, Value: value, Hint: hint, Msg: fmt.Sprintf(format, args...)}
}

func match(pattern, id string) bool {
	ok, err := path.Match(pattern, id)
	return err == nil && ok
}
