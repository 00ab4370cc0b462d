package rtfs

import (
	"strconv"
	"strings"
)

// closure is a function written in RTFS: its parameter patterns, optional
// type annotations, body and the environment it was created in.
type closure struct {
	params   []Value // Symbol, *Vector or *Map patterns
	rest     Value   // the symbol after &, or nil
	ret      Value   // return type annotation, or nil
	pre      []Value // :pre conditions
	body     []Value
	env      *env
	self     string // name bound to the function itself inside its body
	declared Span
}

// splitBinding splits a binding symbol into its name and type annotation:
// x:int gives ("x", :int) and name:[...] gives ("name", [...]). The colon
// is read as an annotation only when what follows it names a type: a
// primitive type, or a capitalised name (a deftype alias such as Point).
// Otherwise the colon is part of the name, so (defn profile:minimal ...)
// defines profile:minimal. Symbols used as references are never split.
func splitBinding(s Symbol) (string, Value) {
	if s.Type != nil {
		return s.Name, s.Type
	}
	if i := strings.IndexByte(s.Name, ':'); i > 0 && i < len(s.Name)-1 {
		if t := s.Name[i+1:]; primitiveTypes[t] != nil || (t[0] >= 'A' && t[0] <= 'Z') {
			return s.Name[:i], Keyword{Name: t}
		}
	}
	return s.Name, nil
}

// parseFn builds a closure from a parameter vector and what follows it.
// symbolsOnly is set for lambda, whose parameters may not be patterns.
func (in *Interp) parseFn(form string, params *Vector, body []Value, e *env, symbolsOnly bool, sp Span) (*closure, error) {
	c := &closure{env: e, declared: sp}
	items := params.Items
	for i := 0; i < len(items); i++ {
		p := items[i]
		if s, ok := p.(Symbol); ok && s.Name == "&" {
			if i+1 >= len(items) {
				return nil, in.fail(sp, ErrSpecialForm, "%s: & must be followed by the variadic parameter name", form)
			}
			rs, ok := items[i+1].(Symbol)
			if !ok {
				return nil, in.fail(items[i+1].Span(), ErrSpecialForm, "%s: variadic parameter must be a symbol, found %s; destructure it in the body with let", form, describe(items[i+1]))
			}
			if i+2 != len(items) {
				return nil, in.fail(items[i+2].Span(), ErrSpecialForm, "%s: nothing may follow the variadic parameter %s", form, rs.Name)
			}
			c.rest = rs
			break
		}
		switch p.(type) {
		case Symbol:
		case *Vector, *Map:
			if symbolsOnly {
				return nil, in.fail(p.Span(), ErrSpecialForm, "%s parameters must be symbols, found %s; use fn to destructure parameters", form, describe(p))
			}
		default:
			return nil, in.fail(p.Span(), ErrSpecialForm, "%s: invalid parameter %s; parameters are symbols, [vector] or {map} patterns", form, describe(p))
		}
		c.params = append(c.params, p)
	}
	if len(body) >= 2 {
		switch t := body[0].(type) {
		case Keyword:
			c.ret, body = t, body[1:]
		case *List:
			if t.Sugar == SugarType && len(t.Items) == 2 {
				c.ret, body = t.Items[1], body[1:]
			}
		}
	}
	if len(body) >= 2 {
		if m, ok := body[0].(*Map); ok {
			if pre, ok := m.GetKeyword("pre"); ok {
				v, ok := pre.(*Vector)
				if !ok {
					return nil, in.fail(m.S, ErrSpecialForm, "%s: :pre must be a vector of conditions", form)
				}
				c.pre, body = v.Items, body[1:]
			}
		}
	}
	c.body = body
	return c, nil
}

// callClosure runs a closure, looping on (recur ...) in tail position.
func (in *Interp) callClosure(f *Func, args []Value, sp Span) (Value, error) {
	if in.depth >= in.lim.MaxDepth {
		return nil, in.fail(sp, ErrLimit, "recursion depth limit of %d nested calls exceeded in %s (Limits.MaxDepth)", in.lim.MaxDepth, f.displayName())
	}
	in.depth++
	in.stack = append(in.stack, Frame{Name: f.displayName(), S: sp})
	v, err := in.runClosure(f, args, sp)
	in.stack = in.stack[:len(in.stack)-1]
	in.depth--
	return v, err
}

func (f *Func) displayName() string {
	if f.Name == "" {
		return "fn"
	}
	return f.Name
}

func (in *Interp) runClosure(f *Func, args []Value, sp Span) (Value, error) {
	c := f.cl
	for {
		fr, err := in.bindParams(f, args, sp)
		if err != nil {
			return nil, err
		}
		for _, cond := range c.pre {
			ok, err := in.evalArg(cond, fr)
			if err != nil {
				return nil, err
			}
			if !Truthy(ok) {
				return nil, in.fail(cond.Span(), ErrPrecondition, "precondition %s of %s failed", Print(cond), f.displayName())
			}
		}
		v, err := in.evalBody(c.body, fr)
		if err != nil {
			return nil, err
		}
		if r, ok := v.(*recurValue); ok {
			args = r.args
			if err := in.tick(r.S); err != nil {
				return nil, err
			}
			continue
		}
		if c.ret != nil {
			if ok, want := in.typeMatches(c.ret, v); !ok {
				return nil, in.fail(sp, ErrType, "%s must return %s, returned %s", f.displayName(), want, describe(v))
			}
		}
		return v, nil
	}
}

func (in *Interp) bindParams(f *Func, args []Value, sp Span) (*env, error) {
	c := f.cl
	n := len(c.params)
	if len(args) < n || (c.rest == nil && len(args) > n) {
		want := plural(n, "argument")
		if c.rest != nil {
			want = "at least " + want
		}
		return nil, in.fail(sp, ErrArity, "%s expects %s, got %d", f.displayName(), want, len(args))
	}
	fr := newEnv(c.env, n+2)
	if c.self != "" {
		fr.bind(c.self, f)
	}
	for i, p := range c.params {
		if err := in.bindPattern(p, args[i], fr, "parameter"); err != nil {
			return nil, err
		}
	}
	if c.rest != nil {
		var rest Value = Nil{}
		if len(args) > n {
			rest = &Vector{Items: append([]Value(nil), args[n:]...)}
		}
		if err := in.bindPattern(c.rest, rest, fr, "variadic parameter"); err != nil {
			return nil, err
		}
	}
	return fr, nil
}

// bindPattern binds the names of a destructuring pattern to the parts of v.
// Vector patterns are strict: without & the value must have exactly as many
// elements as the pattern.
func (in *Interp) bindPattern(pat, v Value, fr *env, what string) error {
	switch p := pat.(type) {
	case Symbol:
		if p.Name == "_" {
			return nil
		}
		name, typ := splitBinding(p)
		if typ != nil {
			if _, isNil := v.(Nil); !(isNil && what == "variadic parameter") {
				if ok, want := in.typeMatches(typ, v); !ok {
					return in.fail(p.S, ErrType, "%s %s is declared %s but got %s", what, name, want, describe(v))
				}
			}
		}
		fr.bind(name, v)
		return nil
	case *Vector:
		return in.bindVector(p, v, fr, what)
	case *Map:
		return in.bindMap(p, v, fr, what)
	}
	return in.fail(pat.Span(), ErrSpecialForm, "invalid binding pattern %s: use a symbol, a [vector] or a {map}", describe(pat))
}

func (in *Interp) bindVector(p *Vector, v Value, fr *env, what string) error {
	var items []Value
	switch x := v.(type) {
	case *Vector:
		items = x.Items
	case *List:
		items = x.Items
	case Nil:
	default:
		return in.fail(p.S, ErrType, "cannot destructure %s with vector pattern %s", describe(v), Print(p))
	}
	fixed, rest, as, err := in.splitVectorPattern(p)
	if err != nil {
		return err
	}
	if len(items) < len(fixed) || (rest == nil && len(items) > len(fixed)) {
		return in.fail(p.S, ErrArity, "vector pattern %s expects %s, got %d", Print(p), plural(len(fixed), "element"), len(items))
	}
	for i, q := range fixed {
		if err := in.bindPattern(q, items[i], fr, what); err != nil {
			return err
		}
	}
	if rest != nil {
		var r Value = Nil{}
		if len(items) > len(fixed) {
			r = &Vector{Items: items[len(fixed):len(items):len(items)]}
		}
		if err := in.bindPattern(rest, r, fr, what); err != nil {
			return err
		}
	}
	if as != nil {
		fr.bind(as.Name, v)
	}
	return nil
}

// splitVectorPattern splits [a b & r :as all] into its parts.
func (in *Interp) splitVectorPattern(p *Vector) (fixed []Value, rest Value, as *Symbol, err error) {
	items := p.Items
	for i := 0; i < len(items); i++ {
		switch x := items[i].(type) {
		case Symbol:
			if x.Name == "&" {
				if i+1 >= len(items) {
					return nil, nil, nil, in.fail(p.S, ErrSpecialForm, "pattern %s: & must be followed by a name", Print(p))
				}
				rest = items[i+1]
				i++
				continue
			}
		case Keyword:
			if x.Name == "as" && i+1 < len(items) {
				s, ok := items[i+1].(Symbol)
				if !ok {
					return nil, nil, nil, in.fail(p.S, ErrSpecialForm, "pattern %s: :as must be followed by a symbol", Print(p))
				}
				as = &s
				i++
				continue
			}
		}
		if rest != nil {
			return nil, nil, nil, in.fail(items[i].Span(), ErrSpecialForm, "pattern %s: only :as may follow the rest pattern", Print(p))
		}
		fixed = append(fixed, items[i])
	}
	return fixed, rest, as, nil
}

func (in *Interp) bindMap(p *Map, v Value, fr *env, what string) error {
	var m *Map
	switch x := v.(type) {
	case *Map:
		m = x
	case Nil:
		m = NewMap(0)
	default:
		return in.fail(p.S, ErrType, "cannot destructure %s with map pattern %s", describe(v), Print(p))
	}
	var defaults *Map
	if d, ok := p.GetKeyword("or"); ok {
		defaults, _ = d.(*Map)
	}
	get := func(key Value, name string) (Value, error) {
		if x, ok := m.Get(key); ok {
			return x, nil
		}
		if defaults != nil {
			if d, ok := defaults.Get(Symbol{Name: name}); ok {
				return in.evalArg(d, fr)
			}
		}
		return Nil{}, nil
	}
	for i, k := range p.keys {
		pv := p.vals[i]
		if kw, ok := k.(Keyword); ok {
			switch kw.Name {
			case "or":
				continue
			case "as":
				s, ok := pv.(Symbol)
				if !ok {
					return in.fail(p.S, ErrSpecialForm, "map pattern: :as must be followed by a symbol")
				}
				fr.bind(s.Name, v)
				continue
			case "keys", "strs":
				names, ok := pv.(*Vector)
				if !ok {
					return in.fail(p.S, ErrSpecialForm, "map pattern: :%s must be followed by a vector of symbols", kw.Name)
				}
				for _, n := range names.Items {
					s, ok := n.(Symbol)
					if !ok {
						return in.fail(n.Span(), ErrSpecialForm, "map pattern: :%s lists symbols, found %s", kw.Name, describe(n))
					}
					name, _ := splitBinding(s)
					var key Value = Keyword{Name: name}
					if kw.Name == "strs" {
						key = String{V: name}
					}
					x, err := get(key, name)
					if err != nil {
						return err
					}
					if err := in.bindPattern(s, x, fr, what); err != nil {
						return err
					}
				}
				continue
			}
		}
		name := ""
		if s, ok := k.(Symbol); ok {
			name, _ = splitBinding(s)
		}
		x, err := get(pv, name)
		if err != nil {
			return err
		}
		if err := in.bindPattern(k, x, fr, what); err != nil {
			return err
		}
	}
	return nil
}

func plural(n int, what string) string {
	if n == 1 {
		return "1 " + what
	}
	return strconv.Itoa(n) + " " + what + "s"
}
