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
func Dangerous(c *capability.Capability) bool {
	for _, e := range c.Contract.Effects {
		switch e.Kind {
		case capability.EffectNetwork, capability.EffectFS, capability.EffectEnv, capability.EffectLLM, capability.EffectGPU:
			return true
		}
	}
	return false
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
// capability; it is the one place that applies the security levels.
type SecurityAuthorizer struct{}

// AuthorizeCapability returns the permissions the call needs, or an error
// naming the rule that refuses it.
func (SecurityAuthorizer) AuthorizeCapability(rc RuntimeContext, c *capability.Capability) ([]string, error) {
	for _, d := range rc.Deny {
		if match(d, c.ID) {
			return nil, fmt.Errorf("%s: capability %s is denied by the runtime context (%s)", RuleCapabilityDenied, c.ID, d)
		}
	}
	switch rc.Level {
	case LevelPure:
		return nil, fmt.Errorf("%s: the runtime context is pure: no capability may be called, and the plan calls %s", RuleSecurityLevel, c.ID)
	case LevelControlled:
		allowed := false
		for _, a := range rc.Allow {
			allowed = allowed || match(a, c.ID)
		}
		if !allowed {
			return nil, fmt.Errorf("%s: capability %s is not in the runtime context's allowlist %v", RuleCapabilityDenied, c.ID, rc.Allow)
		}
		if Dangerous(c) && rc.Isolation != config.IsolationMicroVM {
			return nil, fmt.Errorf("%s: capability %s reaches beyond the sandbox and, at the controlled level, needs :microvm isolation (the config asks for :%s)",
				RuleIsolationRequired, c.ID, rc.Isolation)
		}
	case LevelFull:
	default:
		return nil, fmt.Errorf("%s: unknown security level %q", RuleSecurityLevel, rc.Level)
	}
	return Permissions(c), nil
}

func match(pattern, id string) bool {
	ok, err := path.Match(pattern, id)
	return err == nil && ok
}
