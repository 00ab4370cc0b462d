package governance

import (
	"fmt"
	"net"
	"net/url"
	"slices"
	"strings"

	"github.com/ccos-project/ccos/capability"
	"github.com/ccos-project/ccos/plan"
	"github.com/ccos-project/ccos/rtfs"
)

// Rules of literal targets.
const (
	// RuleComputedTarget: a call whose target (a URL) is computed at run
	// time, in a step that declares no effects.
	RuleComputedTarget Rule = "COMPUTED_TARGET"
	// RuleInvalidTarget: a literal target that does not read (a URL
	// that is not http or https).
	RuleInvalidTarget Rule = "INVALID_TARGET"
)

// Derivation is what admission read from a literal argument of a call:
// ccos plan check shows it, and the step's profile is made of it.
type Derivation struct {
	Capability string `json:"capability"`
	// Arg names the argument ("url", "options :method", "name").
	Arg string `json:"arg"`
	// Value is the literal as written; Effect what it derives
	// (":network api.example.com GET").
	Value  string `json:"value"`
	Effect string `json:"effect"`
	// Where is the call's place, file:line:col.
	Where  string `json:"where"`
	span   rtfs.Span
	effect capability.Effect
}

// siteTargets reads the literal targets of one call site: the effects
// they derive (replacing the contract's open ones of those kinds), what
// was read, and the targets that are computed.
type siteTargets struct {
	effects  []capability.Effect
	derived  []Derivation
	computed []string
	// kinds are the effect kinds the literals narrowed.
	kinds map[string]bool
}

// readTargets reads a call site's target arguments (capability.Arg
// Target) when they are literals.
func (k *kernel) readTargets(step string, cp *capability.Capability, site plan.Call) siteTargets {
	st := siteTargets{kinds: map[string]bool{}}
	var host, method, urlLit string
	hostKnown, methodKnown := false, false
	note := func(arg, value, desc string, e capability.Effect) {
		st.effects = append(st.effects, e)
		st.kinds[e.Kind] = true
		st.derived = append(st.derived, Derivation{Capability: cp.ID, Arg: arg, Value: value, Effect: desc, Where: site.Span.String(), span: site.Span, effect: e})
	}
	for _, t := range cp.TargetArgs() {
		form, present := argForm(site.Args, t)
		switch t.Target {
		case capability.TargetURL:
			s, ok := form.(rtfs.String)
			if !present || !ok {
				st.computed = append(st.computed, t.Name)
				continue
			}
			h, err := urlHost(s.V)
			if err != nil {
				k.reject(step, site.Span, RuleInvalidTarget, s.V, "write an absolute http:// or https:// URL", "calls :%s with %q: %v", cp.ID, s.V, err)
				continue
			}
			host, hostKnown, urlLit = h, true, s.V
		case capability.TargetMethod:
			if !present {
				// The capability's default method.
				method, methodKnown = "GET", true
				continue
			}
			if m, ok := literalName(form); ok {
				method, methodKnown = strings.ToUpper(m), true
			}
		case capability.TargetEnvVar:
			if v, ok := literalName(form); ok && present {
				note(t.Name, v, ":env "+v, capability.Effect{Kind: capability.EffectEnv, Vars: []string{v}})
			}
		case capability.TargetPath:
			if s, ok := form.(rtfs.String); ok && present {
				note(t.Name, s.V, ":fs "+s.V, capability.Effect{Kind: capability.EffectFS, Paths: []string{s.V}})
			}
		}
	}
	if hostKnown {
		e := capability.Effect{Kind: capability.EffectNetwork, Domains: []string{host}}
		desc := ":network " + host
		if methodKnown {
			e.Methods = []string{method}
			desc += " " + method
		}
		note("url", urlLit, desc, e)
	}
	return st
}

// argForm returns the form of a target: the argument itself, or the
// value of its map's key (absent when the argument or key is not
// written; nil form when it is not a map literal).
func argForm(args []rtfs.Value, t capability.ArgTarget) (rtfs.Value, bool) {
	if t.Index >= len(args) {
		return nil, false
	}
	a := args[t.Index]
	if t.Key == "" {
		return a, true
	}
	m, ok := a.(*rtfs.Map)
	if !ok {
		// A computed options map: the key may be anything.
		return nil, true
	}
	v, ok := m.GetKeyword(t.Key)
	return v, ok
}

func literalName(v rtfs.Value) (string, bool) {
	switch x := v.(type) {
	case rtfs.String:
		return x.V, true
	case rtfs.Keyword:
		return x.Name, true
	}
	return "", false
}

// urlHost returns the lower-case host of an http or https URL.
func urlHost(raw string) (string, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return "", err
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return "", fmt.Errorf("the scheme is %q, not http or https", u.Scheme)
	}
	h := u.Hostname()
	if h == "" {
		return "", fmt.Errorf("the URL has no host")
	}
	if ip := net.ParseIP(h); ip != nil {
		return h, nil
	}
	return strings.TrimSuffix(strings.ToLower(h), "."), nil
}

// deriveEffects is a step's need from the capabilities it reaches: each
// capability's contract effects, with the open scopes its literal
// targets narrow (a URL's domain and method, a variable's name). A
// capability reached with a computed URL keeps its contract's open
// network effect, which only declared effects can make admissible.
func (k *kernel) deriveEffects(s *plan.Step, prof *StepProfile) []capability.Effect {
	var needed []capability.Effect
	for _, c := range s.Calls {
		cp, err := k.caps.Lookup(c.Capability)
		if err != nil {
			continue
		}
		if len(cp.TargetArgs()) == 0 {
			needed = append(needed, cp.Contract.Effects...)
			continue
		}
		narrowed := map[string]bool{}
		var derived []capability.Effect
		openSite := map[string]bool{}
		for _, site := range s.Sites {
			if site.Capability != c.Capability {
				continue
			}
			st := k.readTargets(s.Name, cp, site)
			k.withinContract(s.Name, cp, site, st.effects)
			prof.Derived = append(prof.Derived, st.derived...)
			derived = append(derived, st.effects...)
			for _, e := range cp.Contract.Effects {
				if st.kinds[e.Kind] {
					narrowed[e.Kind] = true
				} else {
					openSite[e.Kind] = true
				}
			}
			if len(st.computed) > 0 && !s.Options.Declared && hasOpenNetwork(cp) {
				k.reject(s.Name, site.Span, RuleComputedTarget, c.Capability,
					"write the URL as a literal, or declare the step's effects: [:effects [[:network {:domains [\"api.example.com\"]}]]]",
					"calls :%s with a %s computed at run time, so admission cannot check where it goes, and the step declares no :effects",
					c.Capability, strings.Join(st.computed, " and "))
			}
		}
		needed = append(needed, derived...)
		for _, e := range cp.Contract.Effects {
			// An effect every site narrowed is replaced by what the
			// literals derived; one a site left open stays as the
			// contract says.
			if !narrowed[e.Kind] || openSite[e.Kind] {
				needed = append(needed, e)
			}
		}
	}
	return needed
}

// hasOpenNetwork reports whether a capability's contract reaches the
// network without naming where.
func hasOpenNetwork(cp *capability.Capability) bool {
	for _, e := range cp.Contract.Effects {
		if e.Kind == capability.EffectNetwork && len(e.Domains) == 0 {
			return true
		}
	}
	return false
}

// withinContract refuses literal targets outside what the capability's
// contract names (a contract that lists its domains, variables or
// paths): a literal never widens a contract.
func (k *kernel) withinContract(step string, cp *capability.Capability, site plan.Call, derived []capability.Effect) {
	for _, d := range derived {
		for _, e := range cp.Contract.Effects {
			if e.Kind != d.Kind {
				continue
			}
			var out []string
			for _, x := range d.Domains {
				if len(e.Domains) > 0 && !domainAllowed(x, e.Domains) {
					out = append(out, x)
				}
			}
			for _, x := range d.Vars {
				if len(e.Vars) > 0 && !subset([]string{x}, e.Vars) {
					out = append(out, x)
				}
			}
			for _, x := range d.Paths {
				if len(e.Paths) > 0 && !pathAllowed(x, e.Paths) {
					out = append(out, x)
				}
			}
			for _, x := range out {
				k.reject(step, site.Span, RuleUndeclaredEffect, x, "call it with a target its contract names",
					"calls :%s with %s, outside the capability's contract %s", cp.ID, x, describeEffects(cp.Contract.Effects))
			}
		}
	}
}

// literalWithin reports whether a derived effect fits the declared
// ones: its domain, variable or path covered by a declared effect of its
// kind, and its method among that effect's methods when it lists any.
func literalWithin(d capability.Effect, declared []capability.Effect) bool {
	for _, e := range declared {
		if e.Kind != d.Kind {
			continue
		}
		ok := true
		for _, x := range d.Domains {
			ok = ok && domainAllowed(x, e.Domains)
		}
		if len(e.Methods) > 0 {
			ok = ok && subset(upper(d.Methods), upper(e.Methods))
		}
		ok = ok && subset(d.Vars, e.Vars) && pathsWithin(d.Paths, e.Paths)
		if ok {
			return true
		}
	}
	return false
}

// derivedSpan returns where a literal derived the domain or variable
// value of an effect of the kind.
func derivedSpan(prof *StepProfile, kind, value string) (rtfs.Span, *Derivation) {
	for i, x := range prof.Derived {
		if x.effect.Kind == kind && (slices.Contains(x.effect.Domains, value) || slices.Contains(x.effect.Vars, value)) {
			return x.span, &prof.Derived[i]
		}
	}
	return rtfs.Span{}, nil
}

// derivedValue is the domain, variable or path a derivation names.
func derivedValue(d Derivation) string {
	for _, xs := range [][]string{d.effect.Domains, d.effect.Vars, d.effect.Paths} {
		if len(xs) > 0 {
			return xs[0]
		}
	}
	return d.Value
}
