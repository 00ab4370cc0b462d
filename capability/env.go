package capability

import (
	"context"
	"fmt"
	"os"
	"slices"

	"github.com/ccos-project/ccos/rtfs"
)

// env is ccos.system.get-env: it reads, on the host, only the variables
// the agent config names, and within a step only those of the step's
// admitted :env effect.
type env struct {
	vars   []string
	lookup func(string) (string, bool)
}

// get returns the variable's value, or nil when it is named but unset.
func (e env) get(ctx context.Context, args []rtfs.Value) (rtfs.Value, error) {
	if len(args) != 1 {
		return nil, fmt.Errorf("%w: ccos.system.get-env takes 1 argument, got %d", ErrArgs, len(args))
	}
	var name string
	switch x := args[0].(type) {
	case rtfs.String:
		name = x.V
	case rtfs.Keyword:
		name = x.Name
	default:
		return nil, fmt.Errorf("%w: ccos.system.get-env: the variable name must be a string, got %s", ErrArgs, rtfs.Describe(args[0]))
	}
	if !slices.Contains(e.vars, name) {
		if len(e.vars) == 0 {
			return nil, fmt.Errorf("ccos.system.get-env: %w: %s (the agent config names no variable; add :capabilities :env {:enabled true :vars [%q]})",
				ErrNoEnvConfigured, name, name)
		}
		return nil, fmt.Errorf("ccos.system.get-env: %w: %s is not in the agent config's :capabilities :env :vars %q (add it there to let plans read it)",
			ErrNoEnvConfigured, name, e.vars)
	}
	if scope, ok := ScopeFrom(ctx); ok {
		if vars, scoped := scope.vars(EffectEnv); scoped && !slices.Contains(vars, name) {
			return nil, fmt.Errorf("ccos.system.get-env: %w: %s is not in the step's admitted effect [:env {:vars %q}] (add it to the step's :effects)",
				ErrNoEnvConfigured, name, vars)
		}
	}
	lookup := e.lookup
	if lookup == nil {
		lookup = os.LookupEnv
	}
	v, ok := lookup(name)
	if !ok {
		return rtfs.Nil{}, nil
	}
	return rtfs.String{V: v}, nil
}

// Scope is what the step in progress was admitted to do: capabilities
// read it to narrow what they do to the step's effects.
type Scope struct {
	Step    string
	Effects []Effect
	// NetDomains and NetMethods are the step's admitted network ACL (the
	// egress proxy is programmed with them for the step's requests).
	NetDomains, NetMethods []string
}

// vars returns the variables of the scope's effects of a kind, and whether
// the scope has such an effect.
func (s Scope) vars(kind string) ([]string, bool) {
	var out []string
	found := false
	for _, e := range s.Effects {
		if e.Kind == kind {
			found = true
			out = append(out, e.Vars...)
		}
	}
	return out, found
}

type scopeKey struct{}

// WithScope returns a context carrying the step's admitted scope; the host
// calls capabilities with it.
func WithScope(ctx context.Context, s Scope) context.Context {
	return context.WithValue(ctx, scopeKey{}, s)
}

// ScopeFrom returns the scope a context carries.
func ScopeFrom(ctx context.Context) (Scope, bool) {
	s, ok := ctx.Value(scopeKey{}).(Scope)
	return s, ok
}
