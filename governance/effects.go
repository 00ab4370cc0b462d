package governance

import (
	"slices"
	"strings"

	"github.com/ccos-project/ccos/capability"
	"github.com/ccos-project/ccos/domain"
)

var httpMethods = []string{"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"}

// effectsWithin reports whether every effect of need is covered by one of
// have: the same kind, with a scope no wider.
func effectsWithin(need, have []capability.Effect) bool {
	for _, n := range need {
		covered := false
		for _, h := range have {
			if n.Kind == h.Kind && scopeWithin(n, h) {
				covered = true
				break
			}
		}
		if !covered {
			return false
		}
	}
	return true
}

func scopeWithin(n, h capability.Effect) bool {
	for _, d := range n.Domains {
		if !domainAllowed(d, h.Domains) {
			return false
		}
	}
	return subset(upper(n.Methods), upper(h.Methods)) && pathsWithin(n.Paths, h.Paths) &&
		subset(n.Models, h.Models) && subset(n.Vars, h.Vars)
}

// subset reports whether a ⊆ b; an empty b with a non-empty a is not.
func subset(a, b []string) bool {
	for _, x := range a {
		if !slices.Contains(b, x) {
			return false
		}
	}
	return true
}

func pathsWithin(a, b []string) bool {
	for _, p := range a {
		if !pathAllowed(p, b) {
			return false
		}
	}
	return true
}

func pathAllowed(p string, roots []string) bool { return capability.PathCovered(p, roots) }

func domainAllowed(d string, allow []string) bool { return domain.Covered(d, allow) }

func upper(xs []string) []string {
	out := make([]string, len(xs))
	for i, x := range xs {
		out[i] = strings.ToUpper(x)
	}
	return out
}

func appendNew(xs []string, more ...string) []string {
	for _, m := range more {
		if !slices.Contains(xs, m) {
			xs = append(xs, m)
		}
	}
	return xs
}

// mergeEffects merges effects of the same kind into one, with the union of
// their scopes.
func mergeEffects(effs []capability.Effect) []capability.Effect {
	var out []capability.Effect
	for _, e := range effs {
		i := slices.IndexFunc(out, func(o capability.Effect) bool { return o.Kind == e.Kind })
		if i < 0 {
			out = append(out, capability.Effect{Kind: e.Kind, Domains: slices.Clone(e.Domains), Methods: slices.Clone(e.Methods),
				Paths: slices.Clone(e.Paths), Models: slices.Clone(e.Models), Vars: slices.Clone(e.Vars)})
			continue
		}
		o := &out[i]
		o.Domains = appendNew(o.Domains, e.Domains...)
		o.Methods = appendNew(o.Methods, e.Methods...)
		o.Paths = appendNew(o.Paths, e.Paths...)
		o.Models = appendNew(o.Models, e.Models...)
		o.Vars = appendNew(o.Vars, e.Vars...)
	}
	return out
}

func describeEffects(effs []capability.Effect) string {
	if len(effs) == 0 {
		return "[]"
	}
	parts := make([]string, len(effs))
	for i, e := range effs {
		s := ":" + e.Kind
		for _, xs := range [][]string{e.Domains, e.Methods, e.Paths, e.Models, e.Vars} {
			if len(xs) > 0 {
				s += " " + strings.Join(xs, ",")
			}
		}
		parts[i] = s
	}
	return "[" + strings.Join(parts, " ") + "]"
}
