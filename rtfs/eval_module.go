package rtfs

import (
	"sort"
	"strings"
)

// Modules (spec 07). (module name (:exports [a b]) forms...) evaluates its
// forms in a scope of its own: def and defn at the top of the module body
// define names visible inside the module (so its functions call each other
// unqualified), and each exported name becomes the global name/a. Without
// an :exports clause every definition is exported. (import name :as m)
// makes m/a name the exports, (import name :only [a]) makes a name one of
// them. Modules live in the interpreter: they are defined earlier in the
// same program, never loaded from files or the network (the evaluator has
// no I/O), so importing a module that was not defined is an error.

// ErrModule is the error type of a module or import form that cannot be
// satisfied.
const ErrModule = "ModuleError"

type module struct {
	name    string
	exports map[string]bool // nil: every definition is public
	env     *env            // the module's definitions, newest last
}

// public returns the module's exported definitions by name.
func (m *module) public() map[string]Value {
	out := make(map[string]Value, len(m.env.names))
	for i, n := range m.env.names {
		if m.exports == nil || m.exports[n] {
			out[n] = m.env.vals[i] // later definitions win
		}
	}
	return out
}

// define binds a def/defn: in the module being defined when the form is at
// the top of its body, else globally.
func (in *Interp) define(name string, v Value, e *env) {
	if m := in.mod; m != nil && e == m.env {
		m.env.bind(name, v)
		return
	}
	in.setGlobal(name, v)
}

func evalModule(in *Interp, l *List, e *env) (Value, error) {
	if len(l.Items) < 2 {
		return nil, in.formErr(l, "module needs a name: (module my.app/math (:exports [add]) forms...)")
	}
	s, ok := l.Items[1].(Symbol)
	if !ok {
		return nil, in.fail(l.Items[1].Span(), ErrSpecialForm, "module: the name must be a symbol such as my.app/math, found %s", describe(l.Items[1]))
	}
	if in.mod != nil {
		return nil, in.formErr(l, "module %s: modules cannot be nested (it is inside module %s)", s.Name, in.mod.name)
	}
	m := &module{name: s.Name, env: newEnv(e, 8)}
	in.mod = m
	defer func() { in.mod = nil }()
	for _, f := range l.Items[2:] {
		if names, ok, err := in.exportClause(f); err != nil {
			return nil, err
		} else if ok {
			if names == nil {
				m.exports = nil
				continue
			}
			if m.exports == nil {
				m.exports = make(map[string]bool)
			}
			for _, n := range names {
				m.exports[n] = true
			}
			continue
		}
		if _, err := in.evalArg(f, m.env); err != nil {
			return nil, err
		}
	}
	pub := m.public()
	for n := range m.exports {
		if _, ok := pub[n]; !ok {
			return nil, in.formErr(l, "module %s exports %s, which it does not define", s.Name, n)
		}
	}
	if in.modules == nil {
		in.modules = make(map[string]*module)
	}
	in.modules[s.Name] = m
	for n, v := range pub {
		in.setGlobal(s.Name+"/"+n, v)
	}
	return Symbol{Name: s.Name}, nil
}

// exportClause reads (:exports [a b]), (export a b) or (export :all); names
// is nil for :all.
func (in *Interp) exportClause(f Value) (names []string, ok bool, err error) {
	l, isList := f.(*List)
	if !isList || len(l.Items) == 0 {
		return nil, false, nil
	}
	var syms []Value
	switch h := l.Items[0].(type) {
	case Keyword:
		if h.Name != "exports" {
			return nil, false, nil
		}
		if len(l.Items) != 2 {
			return nil, true, in.formErr(l, "(:exports [name ...]) takes one vector of names")
		}
		v, isVec := l.Items[1].(*Vector)
		if !isVec {
			return nil, true, in.fail(l.Items[1].Span(), ErrSpecialForm, "(:exports [name ...]) takes a vector of names, found %s", describe(l.Items[1]))
		}
		syms = v.Items
	case Symbol:
		if h.Name != "export" {
			return nil, false, nil
		}
		syms = l.Items[1:]
		if len(syms) == 1 {
			if k, isKw := syms[0].(Keyword); isKw && k.Name == "all" {
				return nil, true, nil
			}
		}
	default:
		return nil, false, nil
	}
	names = []string{}
	for _, x := range syms {
		s, isSym := x.(Symbol)
		if !isSym {
			return nil, true, in.fail(x.Span(), ErrSpecialForm, "exports are symbols, found %s", describe(x))
		}
		names = append(names, s.Name)
	}
	return names, true, nil
}

// evalImport handles (import name opts...) and (import [name opts...] ...)
// with the options :as alias and :only/:refer [names].
func evalImport(in *Interp, l *List, _ *env) (Value, error) {
	if len(l.Items) < 2 {
		return nil, in.formErr(l, "import needs a module name: (import my.app/math :as m)")
	}
	specs := [][]Value{l.Items[1:]}
	if _, ok := l.Items[1].(*Vector); ok {
		specs = specs[:0]
		for _, x := range l.Items[1:] {
			v, ok := x.(*Vector)
			if !ok || len(v.Items) == 0 {
				return nil, in.fail(x.Span(), ErrSpecialForm, "import: each spec is [module-name options...], found %s", describe(x))
			}
			specs = append(specs, v.Items)
		}
	}
	for _, spec := range specs {
		if err := in.importSpec(l, spec); err != nil {
			return nil, err
		}
	}
	return Nil{}, nil
}

func (in *Interp) importSpec(l *List, spec []Value) error {
	s, ok := spec[0].(Symbol)
	if !ok {
		return in.fail(spec[0].Span(), ErrSpecialForm, "import: the module name must be a symbol, found %s", describe(spec[0]))
	}
	m := in.modules[s.Name]
	if m == nil {
		e := in.fail(s.S, ErrModule, "module %s is not defined: RTFS loads no code from files or the network, so a module is defined earlier in the same program with (module %s ...)", s.Name, s.Name)
		e.Hint = didYouMean(nearestNames(s.Name, in.moduleNames(), maxSuggestions))
		return e
	}
	pub := m.public()
	opts := spec[1:]
	if len(opts)%2 != 0 {
		return in.fail(l.S, ErrSpecialForm, "import %s: options come in pairs (:as alias, :only [names])", s.Name)
	}
	for i := 0; i < len(opts); i += 2 {
		k, _ := opts[i].(Keyword)
		switch k.Name {
		case "as":
			alias, ok := opts[i+1].(Symbol)
			if !ok {
				return in.fail(opts[i+1].Span(), ErrSpecialForm, "import %s: :as takes a symbol", s.Name)
			}
			for n, v := range pub {
				in.setGlobal(alias.Name+"/"+n, v)
			}
		case "only", "refer":
			names, ok := opts[i+1].(*Vector)
			if !ok {
				return in.fail(opts[i+1].Span(), ErrSpecialForm, "import %s: :%s takes a vector of names", s.Name, k.Name)
			}
			for _, x := range names.Items {
				n, ok := x.(Symbol)
				if !ok {
					return in.fail(x.Span(), ErrSpecialForm, "import %s: :%s lists symbols, found %s", s.Name, k.Name, describe(x))
				}
				v, ok := pub[n.Name]
				if !ok {
					return in.fail(n.S, ErrModule, "module %s does not export %s (it exports %s)", s.Name, n.Name, strings.Join(sortedNames(pub), ", "))
				}
				in.setGlobal(n.Name, v)
			}
		default:
			return in.fail(opts[i].Span(), ErrSpecialForm, "import %s: unknown option %s; use :as alias or :only [names]", s.Name, Print(opts[i]))
		}
	}
	return nil
}

func (in *Interp) moduleNames() []string {
	out := make([]string, 0, len(in.modules))
	for n := range in.modules {
		out = append(out, n)
	}
	return out
}

func sortedNames(m map[string]Value) []string {
	out := make([]string, 0, len(m))
	for n := range m {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// privateName reports module/name where the module defines name without
// exporting it.
func (in *Interp) privateName(s Symbol) *Error {
	i := strings.LastIndexByte(s.Name, '/')
	if i <= 0 || in.modules == nil {
		return nil
	}
	m := in.modules[s.Name[:i]]
	if m == nil {
		return nil
	}
	n := s.Name[i+1:]
	if _, ok := m.env.lookup(n); !ok {
		return nil
	}
	e := in.fail(s.S, ErrUnboundSymbol, "%s is private to module %s: it is not in the module's exports", n, m.name)
	e.Hint = "add " + n + " to (:exports [...]) of module " + m.name
	return e
}
