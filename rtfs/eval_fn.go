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
	post     []Value // :post conditions, with % bound to the result
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
	items := annotateParams(params.Items)
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
		case Symbol:
			if isColon(t) { // [params] : type
				c.ret, body = body[1], body[2:]
			}
		case *List:
			if t.Sugar == SugarType && len(t.Items) == 2 {
				c.ret, body = t.Items[1], body[1:]
			}
		}
	}
	if len(body) >= 2 {
		// As in Clojure, a map followed by more forms is the condition
		// map: :pre and :post are checked, other keys (spec 15 writes
		// {:type {...}} there) are declarations and are not evaluated.
		if m, ok := body[0].(*Map); ok {
			for _, k := range []string{"pre", "post"} {
				cond, ok := m.GetKeyword(k)
				if !ok {
					continue
				}
				v, ok := cond.(*Vector)
				if !ok {
					return nil, in.fail(m.S, ErrSpecialForm, "%s: :%s must be a vector of conditions", form, k)
				}
				if k == "pre" {
					c.pre = v.Items
				} else {
					c.post = v.Items
				}
			}
			body = body[1:]
		}
	}
	c.body = body
	return c, nil
}

func isColon(v Value) bool {
	s, ok := v.(Symbol)
	return ok && s.Name == ":"
}

// annotateParams folds the spaced annotations of a parameter vector into
// its symbols (spec 03 §8.4): [a : int b : Integer] and [a :int b :int]
// become [a:int b:Integer] and [a:int b:int].
func annotateParams(items []Value) []Value {
	need := false
	for i := 1; i < len(items) && !need; i++ {
		if isColon(items[i]) {
			need = true
		} else if _, ok := items[i].(Keyword); ok {
			_, need = items[i-1].(Symbol)
		}
	}
	if !need {
		return items
	}
	out := make([]Value, 0, len(items))
	for i := 0; i < len(items); i++ {
		s, ok := items[i].(Symbol)
		if ok && s.Name != "&" && !isColon(s) && s.Type == nil {
			if i+2 < len(items) && isColon(items[i+1]) {
				s.Type = items[i+2]
				out = append(out, s)
				i += 2
				continue
			}
			if i+1 < len(items) {
				if k, ok := items[i+1].(Keyword); ok {
					s.Type = k
					out = append(out, s)
					i++
					continue
				}
			}
		}
		out = append(out, items[i])
	}
	return out
}

// annotateBindings folds name : type in a binding vector (spec 03 §8.3:
// (let [result : [:record ...] (call ...)] ...)) into an annotated name.
func annotateBindings(b *Vector) *Vector {
	found := false
	for _, it := range b.Items {
		if isColon(it) {
			found = true
			break
		}
	}
	if !found {
		return b
	}
	out := make([]Value, 0, len(b.Items))
	for i := 0; i < len(b.Items); i++ {
		if s, ok := b.Items[i].(Symbol); ok && !isColon(s) && s.Type == nil && i+2 < len(b.Items) && isColon(b.Items[i+1]) {
			s.Type = b.Items[i+2]
			out = append(out, s)
			i += 2
			continue
		}
		out = append(out, b.Items[i])
	}
	return &Vector{Items: out, S: b.S}
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
		if len(c.post) > 0 {
			pf := newEnv(fr, 1)
			pf.bind("%", v)
			for _, cond := range c.post {
				ok, err := in.evalArg(cond, pf)
				if err != nil {
					return nil, err
				}
				if !Truthy(ok) {
					return nil, in.fail(cond.Span(), ErrPrecondition, "postcondition %s of %s failed for result %s", Print(cond), f.displayName(), describe(v))
				}
			}
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
	// Parameters are strict (a shape mistake in a call is an ArityError,
	// as the feature corpus requires); let and the other binding forms
	// are lenient as spec 05 §2 says: extra elements are ignored and
	// missing ones bind nil.
	if what != "binding" && (len(items) < len(fixed) || (rest == nil && len(items) > len(fixed))) {
		return in.fail(p.S, ErrArity, "vector pattern %s expects %s, got %d", Print(p), plural(len(fixed), "element"), len(items))
	}
	for i, q := range fixed {
		var x Value = Nil{}
		if i < len(items) {
			x = items[i]
		}
		if err := in.bindPattern(q, x, fr, what); err != nil {
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
		target, key := k, pv
		if isPattern(pv) && !isPattern(k) {
			// {:name n "id" id 42 answer}: key first, as spec 05 §3 and
			// match patterns write it ({n :name} is the Clojure order).
			target, key = pv, k
		}
		name := ""
		if s, ok := target.(Symbol); ok {
			name, _ = splitBinding(s)
		}
		x, err := get(key, name)
		if err != nil {
			return err
		}
		if err := in.bindPattern(target, x, fr, what); err != nil {
			return err
		}
	}
	return nil
}

// isPattern reports whether v can be a binding pattern.
func isPattern(v Value) bool {
	switch v.(type) {
	case Symbol, *Vector, *Map:
		return true
	}
	return false
}

func plural(n int, what string) string {
	if n == 1 {
		return "1 " + what
	}
	return strconv.Itoa(n) + " " + what + "s"
}
