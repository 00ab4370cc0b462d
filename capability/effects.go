package capability

import (
	"fmt"
	"slices"
	"strings"

	"github.com/ccos-project/ccos/rtfs"
)

// DecodeError is an effect, contract or entry that does not read, at the
// source position of the offending form.
type DecodeError struct {
	Span rtfs.Span
	Msg  string
	Hint string
}

func (e *DecodeError) Error() string {
	s := e.Span.String() + ": " + e.Msg
	if e.Hint != "" {
		s += " (hint: " + e.Hint + ")"
	}
	return s
}

// effectScopes are the effect kinds and the scope keys each accepts.
var effectScopes = map[string][]string{
	EffectNetwork: {"domains", "methods"},
	EffectFS:      {"paths"},
	EffectTime:    nil,
	EffectRandom:  nil,
	EffectLLM:     {"models"},
	EffectGPU:     nil,
	EffectEnv:     {"vars"},
}

// ParseEffects reads a vector of effects: each a keyword (:time) or a
// vector of a keyword and a scope map ([:network {:domains [...]}]).
func ParseEffects(v rtfs.Value) ([]Effect, error) {
	vec, ok := v.(*rtfs.Vector)
	if !ok {
		return nil, &DecodeError{Span: v.Span(), Msg: ":effects must be a vector, found " + rtfs.Describe(v),
			Hint: `write [:effects [[:network {:domains ["api.example.com"]}]]]`}
	}
	var out []Effect
	for _, it := range vec.Items {
		var kind rtfs.Keyword
		var scope *rtfs.Map
		switch x := it.(type) {
		case rtfs.Keyword:
			kind = x
		case *rtfs.Vector:
			if len(x.Items) == 0 || len(x.Items) > 2 {
				return nil, &DecodeError{Span: x.S, Msg: "an effect is [:kind {scope}], found " + rtfs.Describe(x)}
			}
			k, ok := x.Items[0].(rtfs.Keyword)
			if !ok {
				return nil, &DecodeError{Span: x.S, Msg: "an effect is [:kind {scope}], found " + rtfs.Describe(x)}
			}
			kind = k
			if len(x.Items) == 2 {
				if scope, ok = x.Items[1].(*rtfs.Map); !ok {
					return nil, &DecodeError{Span: x.Items[1].Span(), Msg: "an effect's scope must be a map, found " + rtfs.Describe(x.Items[1])}
				}
			}
		default:
			return nil, &DecodeError{Span: it.Span(), Msg: "an effect is :kind or [:kind {scope}], found " + rtfs.Describe(it)}
		}
		e, err := ParseEffect(kind, scope)
		if err != nil {
			return nil, err
		}
		out = append(out, e)
	}
	return out, nil
}

// ParseEffect reads one effect from its kind and scope map (nil for none).
func ParseEffect(kind rtfs.Keyword, scope *rtfs.Map) (Effect, error) {
	e := Effect{Kind: kind.Name}
	keys, known := effectScopes[kind.Name]
	if !known {
		return e, &DecodeError{Span: kind.S, Msg: "unknown effect :" + kind.Name,
			Hint: "effects are :network :fs :time :random :llm :gpu :env"}
	}
	if scope == nil {
		return e, nil
	}
	for i := 0; i < scope.Len(); i++ {
		k, v := scope.Entry(i)
		kw, ok := k.(rtfs.Keyword)
		if !ok || !slices.Contains(keys, kw.Name) {
			hint := "a :" + kind.Name + " effect takes no scope"
			if len(keys) > 0 {
				hint = "a :" + kind.Name + " effect's scope takes :" + strings.Join(keys, " :")
			}
			return e, &DecodeError{Span: k.Span(), Msg: fmt.Sprintf("unknown key %s in a :%s effect", rtfs.Print(k), kind.Name), Hint: hint}
		}
		names, err := nameList(v)
		if err != nil {
			return e, err
		}
		switch kw.Name {
		case "domains":
			e.Domains = names
		case "methods":
			e.Methods = names
		case "paths":
			e.Paths = names
		case "models":
			e.Models = names
		case "vars":
			e.Vars = names
		}
	}
	return e, nil
}

// nameList reads a vector of strings or keywords as names.
func nameList(v rtfs.Value) ([]string, error) {
	vec, ok := v.(*rtfs.Vector)
	if !ok {
		return nil, &DecodeError{Span: v.Span(), Msg: "expected a vector of names, found " + rtfs.Describe(v)}
	}
	out := make([]string, 0, len(vec.Items))
	for _, it := range vec.Items {
		switch x := it.(type) {
		case rtfs.String:
			out = append(out, x.V)
		case rtfs.Keyword:
			out = append(out, x.Name)
		default:
			return nil, &DecodeError{Span: it.Span(), Msg: "expected a string or keyword, found " + rtfs.Describe(it)}
		}
	}
	return out, nil
}

// PathCovered reports whether p is one of roots or below one of them; a
// path with a ".." element never is.
func PathCovered(p string, roots []string) bool {
	if slices.Contains(strings.Split(p, "/"), "..") {
		return false
	}
	for _, r := range roots {
		r = strings.TrimSuffix(r, "/")
		if p == r || strings.HasPrefix(p, r+"/") {
			return true
		}
	}
	return false
}
