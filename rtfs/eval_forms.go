package rtfs

import (
	"context"
	"errors"
)

type specialForm func(in *Interp, l *List, e *env) (Value, error)

// specialForms are the forms whose arguments are not evaluated first. A
// local binding of the same name hides a special form.
var specialForms map[string]specialForm

func init() {
	specialForms = map[string]specialForm{
		"def": evalDef, "defn": evalDefn, "fn": evalFn, "lambda": evalLambda, "λ": evalLambda,
		"let": evalLet, "if": evalIf, "do": evalDo, "when": evalWhen, "when-not": evalWhenNot,
		"cond": evalCond, "and": evalAnd, "or": evalOr, "->": evalThreadFirst, "->>": evalThreadLast,
		"quote": evalQuote, "try": evalTry, "match": evalMatch, "for": evalFor, "doseq": evalDoseq,
		"dotimes": evalDotimes, "loop": evalLoop, "recur": evalRecur, "parallel": evalParallel,
		"with-resource": evalWithResource, "deftype": evalDeftype, "step": evalStep,
		"if-let": evalIfLet, "when-let": evalWhenLet, "type-annotation": evalQuote,
		"comment": evalComment, "defmacro": evalDefmacro, "quasiquote": evalQuasiquote,
		"unquote": evalUnquoteOutside, "unquote-splicing": evalUnquoteOutside,
		"module": evalModule, "import": evalImport, "case": evalCase, "step-parallel": evalStepParallel,
	}
}

func (in *Interp) formErr(l *List, format string, args ...any) error {
	return in.fail(l.S, ErrSpecialForm, format, args...)
}

func evalComment(*Interp, *List, *env) (Value, error) { return Nil{}, nil }

func evalQuote(in *Interp, l *List, _ *env) (Value, error) {
	if len(l.Items) != 2 {
		return nil, in.formErr(l, "%s takes exactly one form", HeadName(l))
	}
	return l.Items[1], nil
}

// defName reads the name of a def/defn, skipping metadata and docstrings.
func (in *Interp) defName(l *List) (Symbol, error) {
	if len(l.Items) < 2 {
		return Symbol{}, in.formErr(l, "%s needs a name", HeadName(l))
	}
	s, ok := l.Items[1].(Symbol)
	if !ok {
		return Symbol{}, in.fail(l.Items[1].Span(), ErrSpecialForm, "%s: the name must be a symbol, found %s", HeadName(l), describe(l.Items[1]))
	}
	return s, nil
}

func evalDef(in *Interp, l *List, e *env) (Value, error) {
	s, err := in.defName(l)
	if err != nil {
		return nil, err
	}
	rest := l.Items[2:]
	if len(rest) == 2 {
		if _, ok := rest[0].(String); ok {
			rest = rest[1:] // docstring
		}
	}
	if len(rest) != 1 {
		return nil, in.formErr(l, "def takes a name and one value: (def name value)")
	}
	v, err := in.evalArg(rest[0], e)
	if err != nil {
		return nil, err
	}
	name, typ := splitBinding(s)
	if typ != nil {
		if ok, want := in.typeMatches(typ, v); !ok {
			return nil, in.fail(s.S, ErrType, "%s is declared %s but got %s", name, want, describe(v))
		}
	}
	if f, ok := v.(*Func); ok && f.Name == "" && f.cl != nil {
		v = &Func{Name: name, cl: f.cl}
	}
	in.define(name, v, e)
	return v, nil
}

func evalDefn(in *Interp, l *List, e *env) (Value, error) {
	s, err := in.defName(l)
	if err != nil {
		return nil, err
	}
	rest := l.Items[2:]
	if len(rest) > 0 {
		if _, ok := rest[0].(String); ok {
			rest = rest[1:]
		}
	}
	if len(rest) > 0 {
		if m, ok := rest[0].(*Map); ok {
			if len(rest) > 1 && !startsArity(rest[1]) {
				// (defn greet {:keys [name]} body): spec 05 §5 writes a map
				// pattern without the parameter vector.
				rest = append([]Value{&Vector{Items: []Value{m}, S: m.S}}, rest[1:]...)
			} else {
				rest = rest[1:] // attribute map
			}
		}
	}
	if len(rest) == 0 {
		return nil, in.formErr(l, "defn %s needs a parameter vector: (defn %s [params] body...)", s.Name, s.Name)
	}
	params, ok := rest[0].(*Vector)
	if !ok {
		if _, multi := rest[0].(*List); multi {
			return nil, in.fail(rest[0].Span(), ErrNotSupported, "defn %s: multi-arity functions are not supported; use & rest or several functions", s.Name)
		}
		return nil, in.fail(rest[0].Span(), ErrSpecialForm, "defn %s: expected a parameter vector, found %s", s.Name, describe(rest[0]))
	}
	name, _ := splitBinding(s)
	c, err := in.parseFn("defn "+name, params, rest[1:], e, false, l.S)
	if err != nil {
		return nil, err
	}
	f := &Func{Name: name, cl: c}
	in.define(name, f, e)
	return f, nil
}

// startsArity reports whether v can begin a function's parameters: a
// parameter vector or a ([params] body) arity.
func startsArity(v Value) bool {
	switch x := v.(type) {
	case *Vector:
		return true
	case *List:
		if len(x.Items) > 0 {
			_, ok := x.Items[0].(*Vector)
			return ok
		}
	}
	return false
}

func evalFn(in *Interp, l *List, e *env) (Value, error)     { return in.makeFn(l, e, false) }
func evalLambda(in *Interp, l *List, e *env) (Value, error) { return in.makeFn(l, e, true) }

func (in *Interp) makeFn(l *List, e *env, symbolsOnly bool) (Value, error) {
	head := HeadName(l)
	rest := l.Items[1:]
	self := ""
	if len(rest) > 0 {
		if s, ok := rest[0].(Symbol); ok {
			self, rest = s.Name, rest[1:]
		}
	}
	if len(rest) == 0 {
		return nil, in.formErr(l, "%s needs a parameter vector: (%s [params] body...)", head, head)
	}
	params, ok := rest[0].(*Vector)
	if !ok {
		return nil, in.fail(rest[0].Span(), ErrSpecialForm, "%s: expected a parameter vector, found %s", head, describe(rest[0]))
	}
	c, err := in.parseFn(head, params, rest[1:], e, symbolsOnly, l.S)
	if err != nil {
		return nil, err
	}
	c.self = self
	return &Func{Name: self, cl: c}, nil
}

// bindingVector checks that a binding form's first argument is a vector of
// pattern/value pairs.
func (in *Interp) bindingVector(l *List) (*Vector, error) {
	head := HeadName(l)
	if len(l.Items) < 2 {
		return nil, in.formErr(l, "%s needs a binding vector: (%s [name value ...] body...)", head, head)
	}
	b, ok := l.Items[1].(*Vector)
	if !ok {
		return nil, in.fail(l.Items[1].Span(), ErrSpecialForm, "%s: expected a binding vector, found %s", head, describe(l.Items[1]))
	}
	b = annotateBindings(b)
	if len(b.Items)%2 != 0 {
		return nil, in.fail(b.S, ErrSpecialForm, "%s: the binding vector needs an even number of forms (name value pairs), found %d", head, len(b.Items))
	}
	return b, nil
}

func evalLet(in *Interp, l *List, e *env) (Value, error) {
	b, err := in.bindingVector(l)
	if err != nil {
		return nil, err
	}
	fr := newEnv(e, len(b.Items)/2)
	for i := 0; i < len(b.Items); i += 2 {
		v, err := in.evalArg(b.Items[i+1], fr)
		if err != nil {
			return nil, err
		}
		if err := in.bindPattern(b.Items[i], v, fr, "binding"); err != nil {
			return nil, err
		}
	}
	return in.evalBody(l.Items[2:], fr)
}

func evalIf(in *Interp, l *List, e *env) (Value, error) {
	if len(l.Items) < 3 || len(l.Items) > 4 {
		return nil, in.formErr(l, "if takes a condition, a then form and an optional else form, found %d forms", len(l.Items)-1)
	}
	c, err := in.evalArg(l.Items[1], e)
	if err != nil {
		return nil, err
	}
	if Truthy(c) {
		return in.eval(l.Items[2], e)
	}
	if len(l.Items) == 4 {
		return in.eval(l.Items[3], e)
	}
	return Nil{}, nil
}

func evalDo(in *Interp, l *List, e *env) (Value, error) { return in.evalBody(l.Items[1:], e) }

func evalWhen(in *Interp, l *List, e *env) (Value, error) { return in.evalWhenIf(l, e, true) }

func evalWhenNot(in *Interp, l *List, e *env) (Value, error) { return in.evalWhenIf(l, e, false) }

func (in *Interp) evalWhenIf(l *List, e *env, want bool) (Value, error) {
	if len(l.Items) < 2 {
		return nil, in.formErr(l, "%s needs a condition", HeadName(l))
	}
	c, err := in.evalArg(l.Items[1], e)
	if err != nil {
		return nil, err
	}
	if Truthy(c) == want {
		return in.evalBody(l.Items[2:], e)
	}
	return Nil{}, nil
}

func evalCond(in *Interp, l *List, e *env) (Value, error) {
	clauses := l.Items[1:]
	if len(clauses)%2 != 0 {
		return nil, in.formErr(l, "cond takes condition/result pairs, found an odd number of forms (%d)", len(clauses))
	}
	for i := 0; i < len(clauses); i += 2 {
		c, err := in.evalArg(clauses[i], e)
		if err != nil {
			return nil, err
		}
		if Truthy(c) {
			return in.eval(clauses[i+1], e)
		}
	}
	return Nil{}, nil
}

func evalAnd(in *Interp, l *List, e *env) (Value, error) {
	var v Value = Bool{V: true}
	for _, x := range l.Items[1:] {
		var err error
		if v, err = in.evalArg(x, e); err != nil {
			return nil, err
		}
		if !Truthy(v) {
			return v, nil
		}
	}
	return v, nil
}

func evalOr(in *Interp, l *List, e *env) (Value, error) {
	var v Value = Nil{}
	for _, x := range l.Items[1:] {
		var err error
		if v, err = in.evalArg(x, e); err != nil {
			return nil, err
		}
		if Truthy(v) {
			return v, nil
		}
	}
	return v, nil
}

func evalThreadFirst(in *Interp, l *List, e *env) (Value, error) { return in.thread(l, e, false) }
func evalThreadLast(in *Interp, l *List, e *env) (Value, error)  { return in.thread(l, e, true) }

// thread rewrites (-> x (f a) g) into (g (f x a)) and evaluates it.
func (in *Interp) thread(l *List, e *env, last bool) (Value, error) {
	if len(l.Items) < 2 {
		return nil, in.formErr(l, "%s needs an initial value", HeadName(l))
	}
	acc := l.Items[1]
	for _, st := range l.Items[2:] {
		if s, ok := st.(*List); ok && s.Sugar == SugarNone && len(s.Items) > 0 {
			items := make([]Value, 0, len(s.Items)+1)
			if last {
				items = append(append(items, s.Items...), acc)
			} else {
				items = append(append(append(items, s.Items[0]), acc), s.Items[1:]...)
			}
			acc = &List{Items: items, S: s.S}
			continue
		}
		acc = &List{Items: []Value{st, acc}, S: st.Span()}
	}
	return in.eval(acc, e)
}

func evalTry(in *Interp, l *List, e *env) (Value, error) {
	var body, catches []Value
	var finally *List
	for _, x := range l.Items[1:] {
		switch HeadName(x) {
		case "catch":
			catches = append(catches, x)
		case "finally":
			if finally != nil {
				return nil, in.formErr(l, "try has more than one finally clause")
			}
			finally = x.(*List)
		default:
			if len(catches) > 0 || finally != nil {
				return nil, in.fail(x.Span(), ErrSpecialForm, "try: body forms must come before catch and finally")
			}
			body = append(body, x)
		}
	}
	v, err := in.evalBody(body, e)
	if err == nil {
		if _, ok := v.(*recurValue); ok {
			err = in.fail(l.S, ErrSpecialForm, "recur cannot cross try")
		}
	}
	if err != nil {
		v, err = in.runCatch(catches, err, e)
	}
	if finally != nil {
		if _, ferr := in.evalBody(finally.Items[1:], e); ferr != nil {
			return nil, ferr
		}
	}
	return v, err
}

// runCatch hands err to the first catch clause that handles it.
func (in *Interp) runCatch(catches []Value, err error, e *env) (Value, error) {
	var rerr *Error
	if !errors.As(err, &rerr) {
		return nil, err
	}
	for _, c := range catches {
		cl := c.(*List)
		typ, name, body, ferr := in.catchClause(cl)
		if ferr != nil {
			return nil, ferr
		}
		if typ != "" && !rerr.caughtBy(typ) || typ == "" && !rerr.Catchable() {
			continue
		}
		fr := newEnv(e, 1)
		fr.bind(name, rerr)
		return in.evalBody(body, fr)
	}
	return nil, err
}

// catchClause reads (catch Type e body...) or (catch e body...).
func (in *Interp) catchClause(cl *List) (typ, name string, body []Value, err error) {
	it := cl.Items[1:]
	if len(it) >= 2 {
		if s2, ok := it[1].(Symbol); ok {
			switch t := it[0].(type) {
			case Symbol:
				return t.Name, s2.Name, it[2:], nil
			case Keyword:
				return t.Name, s2.Name, it[2:], nil
			}
		}
	}
	if len(it) >= 1 {
		if s, ok := it[0].(Symbol); ok {
			return "", s.Name, it[1:], nil
		}
	}
	return "", "", nil, in.formErr(cl, "catch clause must be (catch ErrorType name body...) or (catch name body...)")
}

// matchClause is one pattern of a match form.
type matchClause struct {
	pat, guard, body Value
}

func (in *Interp) matchClauses(l *List) ([]matchClause, error) {
	var out []matchClause
	it := l.Items[2:]
	for i := 0; i < len(it); {
		c := matchClause{pat: it[i]}
		if i+2 < len(it) {
			if k, ok := it[i+1].(Keyword); ok && k.Name == "when" {
				c.guard = it[i+2]
				i += 2
			}
		}
		if i+1 >= len(it) {
			return nil, in.fail(it[i].Span(), ErrSpecialForm, "match: pattern %s has no result form", Print(it[i]))
		}
		c.body = it[i+1]
		i += 2
		out = append(out, c)
	}
	return out, nil
}

func evalMatch(in *Interp, l *List, e *env) (Value, error) {
	if len(l.Items) < 2 {
		return nil, in.formErr(l, "match needs a value and pattern/result pairs")
	}
	clauses, err := in.matchClauses(l)
	if err != nil {
		return nil, err
	}
	if len(clauses) == 0 {
		return nil, in.formErr(l, "match needs at least one pattern/result pair")
	}
	v, err := in.evalArg(l.Items[1], e)
	if err != nil {
		return nil, err
	}
	for _, c := range clauses {
		fr := newEnv(e, 2)
		ok, err := in.matchPattern(c.pat, v, fr)
		if err != nil {
			return nil, err
		}
		if ok && c.guard != nil {
			g, err := in.evalArg(c.guard, fr)
			if err != nil {
				return nil, err
			}
			ok = Truthy(g)
		}
		if ok {
			return in.eval(c.body, fr)
		}
	}
	return nil, in.fail(l.S, ErrMatch, "no pattern matched %s; add a _ clause for the other cases", describe(v))
}

// matchPattern tests v against pat, binding names into fr as it goes.
func (in *Interp) matchPattern(pat, v Value, fr *env) (bool, error) {
	switch p := pat.(type) {
	case Symbol:
		if p.Name == "_" {
			return true, nil
		}
		name, typ := splitBinding(p)
		if typ != nil {
			if ok, _ := in.typeMatches(typ, v); !ok {
				return false, nil
			}
		}
		fr.bind(name, v)
		return true, nil
	case *Vector:
		return in.matchVector(p, v, fr)
	case *Map:
		m, ok := v.(*Map)
		if !ok {
			return false, nil
		}
		for i, k := range p.keys {
			if kw, ok := k.(Keyword); ok && kw.Name == "as" {
				if s, ok := p.vals[i].(Symbol); ok {
					fr.bind(s.Name, v)
					continue
				}
			}
			x, ok := m.Get(k)
			if !ok {
				return false, nil
			}
			if ok, err := in.matchPattern(p.vals[i], x, fr); !ok || err != nil {
				return false, err
			}
		}
		return true, nil
	case *List:
		return in.matchListPattern(p, v, fr)
	}
	return Equal(pat, v), nil
}

func (in *Interp) matchVector(p *Vector, v Value, fr *env) (bool, error) {
	items := seqOf(v)
	if v.Kind() != KindVector && v.Kind() != KindList {
		return false, nil
	}
	fixed, rest, as, err := in.splitVectorPattern(p)
	if err != nil {
		return false, err
	}
	if len(items) < len(fixed) || (rest == nil && len(items) > len(fixed)) {
		return false, nil
	}
	for i, q := range fixed {
		if ok, err := in.matchPattern(q, items[i], fr); !ok || err != nil {
			return false, err
		}
	}
	if rest != nil {
		r := &Vector{Items: items[len(fixed):len(items):len(items)]}
		if ok, err := in.matchPattern(rest, r, fr); !ok || err != nil {
			return false, err
		}
	}
	if as != nil {
		fr.bind(as.Name, v)
	}
	return true, nil
}

// matchListPattern handles (quote x), (pat :when guard) and (pat :as name).
func (in *Interp) matchListPattern(p *List, v Value, fr *env) (bool, error) {
	if HeadName(p) == "quote" && len(p.Items) == 2 {
		return Equal(p.Items[1], v), nil
	}
	if len(p.Items) == 2 {
		// (:int n): a value of the type, bound to n (spec 02).
		if k, ok := p.Items[0].(Keyword); ok && in.isTypeName(k.Name) {
			if ok, _ := in.typeMatches(k, v); !ok {
				return false, nil
			}
			return in.matchPattern(p.Items[1], v, fr)
		}
	}
	if len(p.Items) == 3 {
		if k, ok := p.Items[1].(Keyword); ok {
			switch k.Name {
			case "when":
				ok, err := in.matchPattern(p.Items[0], v, fr)
				if !ok || err != nil {
					return false, err
				}
				g, err := in.evalArg(p.Items[2], fr)
				if err != nil {
					return false, err
				}
				return Truthy(g), nil
			case "as":
				s, ok := p.Items[2].(Symbol)
				if !ok {
					return false, in.fail(p.S, ErrSpecialForm, "match: :as must be followed by a symbol")
				}
				ok, err := in.matchPattern(p.Items[0], v, fr)
				if ok {
					fr.bind(s.Name, v)
				}
				return ok, err
			}
		}
	}
	return false, in.fail(p.S, ErrSpecialForm, "match: unsupported pattern %s; patterns are literals, symbols, _, [vectors], {maps}, (pat :when guard) and (pat :as name)", Print(p))
}

// seqBinding is one clause of a for/doseq binding vector.
type seqBinding struct {
	pat, expr Value
	mod       string // "", "when", "while" or "let"
}

func (in *Interp) seqBindings(l *List) ([]seqBinding, error) {
	b, err := in.bindingVector(l)
	if err != nil {
		return nil, err
	}
	var out []seqBinding
	for i := 0; i < len(b.Items); i += 2 {
		sb := seqBinding{pat: b.Items[i], expr: b.Items[i+1]}
		if k, ok := sb.pat.(Keyword); ok {
			switch k.Name {
			case "when", "while", "let":
				sb.mod = k.Name
			default:
				return nil, in.fail(k.S, ErrSpecialForm, "%s: unknown modifier :%s (use :when, :while or :let)", HeadName(l), k.Name)
			}
		}
		out = append(out, sb)
	}
	return out, nil
}

func evalFor(in *Interp, l *List, e *env) (Value, error) {
	bs, err := in.seqBindings(l)
	if err != nil {
		return nil, err
	}
	var out []Value
	_, err = in.iterate(bs, l.Items[2:], e, &out, true)
	if err != nil {
		return nil, err
	}
	return &Vector{Items: out}, nil
}

func evalDoseq(in *Interp, l *List, e *env) (Value, error) {
	bs, err := in.seqBindings(l)
	if err != nil {
		return nil, err
	}
	_, err = in.iterate(bs, l.Items[2:], e, nil, false)
	if err != nil {
		return nil, err
	}
	return Nil{}, nil
}

// iterate runs the nested loops of for/doseq; it reports false when a
// :while clause stopped the iteration.
func (in *Interp) iterate(bs []seqBinding, body []Value, e *env, out *[]Value, collect bool) (bool, error) {
	if len(bs) == 0 {
		v, err := in.evalBody(body, e)
		if err != nil {
			return false, err
		}
		if r, ok := v.(*recurValue); ok {
			return false, in.fail(r.S, ErrSpecialForm, "recur cannot cross for, doseq or dotimes")
		}
		if collect {
			if err := in.checkSize(len(*out)+1, "for result"); err != nil {
				return false, err
			}
			*out = append(*out, v)
		}
		return true, nil
	}
	b := bs[0]
	switch b.mod {
	case "when", "while":
		c, err := in.evalArg(b.expr, e)
		if err != nil {
			return false, err
		}
		if !Truthy(c) {
			return b.mod == "when", nil
		}
		return in.iterate(bs[1:], body, e, out, collect)
	case "let":
		lv, ok := b.expr.(*Vector)
		if !ok || len(lv.Items)%2 != 0 {
			return false, in.fail(b.expr.Span(), ErrSpecialForm, ":let takes a binding vector")
		}
		fr := newEnv(e, len(lv.Items)/2)
		for i := 0; i < len(lv.Items); i += 2 {
			v, err := in.evalArg(lv.Items[i+1], fr)
			if err != nil {
				return false, err
			}
			if err := in.bindPattern(lv.Items[i], v, fr, "binding"); err != nil {
				return false, err
			}
		}
		return in.iterate(bs[1:], body, fr, out, collect)
	}
	coll, err := in.evalArg(b.expr, e)
	if err != nil {
		return false, err
	}
	items, err := seqItems(coll)
	if err != nil {
		return false, in.locate(err, b.expr.Span())
	}
	for _, it := range items {
		if err := in.tick(b.expr.Span()); err != nil {
			return false, err
		}
		fr := newEnv(e, 1)
		if err := in.bindPattern(b.pat, it, fr, "binding"); err != nil {
			return false, err
		}
		cont, err := in.iterate(bs[1:], body, fr, out, collect)
		if err != nil {
			return false, err
		}
		if !cont {
			break
		}
	}
	return true, nil
}

func evalDotimes(in *Interp, l *List, e *env) (Value, error) {
	b, err := in.bindingVector(l)
	if err != nil {
		return nil, err
	}
	if len(b.Items) != 2 {
		return nil, in.formErr(l, "dotimes takes one binding: (dotimes [i n] body...)")
	}
	nv, err := in.evalArg(b.Items[1], e)
	if err != nil {
		return nil, err
	}
	n, ok := nv.(Int)
	if !ok {
		return nil, in.fail(b.Items[1].Span(), ErrType, "dotimes count must be an integer, got %s", describe(nv))
	}
	for i := int64(0); i < n.V; i++ {
		if err := in.tick(l.S); err != nil {
			return nil, err
		}
		fr := newEnv(e, 1)
		if err := in.bindPattern(b.Items[0], Int{V: i}, fr, "binding"); err != nil {
			return nil, err
		}
		v, err := in.evalBody(l.Items[2:], fr)
		if err != nil {
			return nil, err
		}
		if r, ok := v.(*recurValue); ok {
			return nil, in.fail(r.S, ErrSpecialForm, "recur cannot cross for, doseq or dotimes")
		}
	}
	return Nil{}, nil
}

func evalLoop(in *Interp, l *List, e *env) (Value, error) {
	b, err := in.bindingVector(l)
	if err != nil {
		return nil, err
	}
	n := len(b.Items) / 2
	fr := newEnv(e, n)
	for i := 0; i < len(b.Items); i += 2 {
		v, err := in.evalArg(b.Items[i+1], fr)
		if err != nil {
			return nil, err
		}
		if err := in.bindPattern(b.Items[i], v, fr, "binding"); err != nil {
			return nil, err
		}
	}
	for {
		v, err := in.evalBody(l.Items[2:], fr)
		if err != nil {
			return nil, err
		}
		r, ok := v.(*recurValue)
		if !ok {
			return v, nil
		}
		if len(r.args) != n {
			return nil, in.fail(r.S, ErrArity, "recur passes %d values but the loop binds %d", len(r.args), n)
		}
		if err := in.tick(r.S); err != nil {
			return nil, err
		}
		fr = newEnv(e, n)
		for i := 0; i < n; i++ {
			if err := in.bindPattern(b.Items[2*i], r.args[i], fr, "binding"); err != nil {
				return nil, err
			}
		}
	}
}

func evalRecur(in *Interp, l *List, e *env) (Value, error) {
	args, err := in.evalArgs(l.Items[1:], e)
	if err != nil {
		return nil, err
	}
	return &recurValue{args: args, S: l.S}, nil
}

// evalParallel evaluates each [name expr] branch and returns the results as
// a vector in the order written. Branches run one after the other: they
// must not depend on each other, and their effects go through the Host,
// which may run them concurrently.
func evalParallel(in *Interp, l *List, e *env) (Value, error) {
	if len(l.Items) < 2 {
		return nil, in.formErr(l, "parallel needs at least one [name expr] branch")
	}
	out := make([]Value, 0, len(l.Items)-1)
	for _, br := range l.Items[1:] {
		b, ok := br.(*Vector)
		if !ok || len(b.Items) != 2 {
			return nil, in.fail(br.Span(), ErrSpecialForm, "parallel branches are [name expr] vectors, found %s", describe(br))
		}
		v, err := in.evalArg(b.Items[1], e)
		if err != nil {
			return nil, err
		}
		if err := in.bindPattern(b.Items[0], v, newEnv(e, 1), "parallel result"); err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return &Vector{Items: out}, nil
}

// evalStepParallel evaluates its forms and returns their values as a
// vector in the order written (spec 14). Like parallel, the forms run one
// after the other here; their effects go through the Host.
func evalStepParallel(in *Interp, l *List, e *env) (Value, error) {
	out := make([]Value, 0, len(l.Items)-1)
	for _, x := range l.Items[1:] {
		v, err := in.evalArg(x, e)
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return &Vector{Items: out}, nil
}

// evalCase is (case expr test result ... default?): the tests are literal
// constants, not evaluated; a list of constants matches any of them.
func evalCase(in *Interp, l *List, e *env) (Value, error) {
	if len(l.Items) < 3 {
		return nil, in.formErr(l, "case needs a value and test/result pairs: (case x :a 1 :b 2 default)")
	}
	v, err := in.evalArg(l.Items[1], e)
	if err != nil {
		return nil, err
	}
	clauses := l.Items[2:]
	for i := 0; i+1 < len(clauses); i += 2 {
		if caseMatches(clauses[i], v) {
			return in.eval(clauses[i+1], e)
		}
	}
	if len(clauses)%2 == 1 {
		return in.eval(clauses[len(clauses)-1], e)
	}
	return nil, in.fail(l.S, ErrMatch, "case: no clause matched %s; add a default result at the end", describe(v))
}

func caseMatches(test, v Value) bool {
	if l, ok := test.(*List); ok && l.Sugar == SugarNone {
		for _, t := range l.Items {
			if Equal(t, v) {
				return true
			}
		}
		return false
	}
	return Equal(test, v)
}

// Closer is implemented by values that hold a resource released at the end
// of a with-resource form (for example handles returned by a Host).
type Closer interface {
	Value
	Close() error
}

func evalWithResource(in *Interp, l *List, e *env) (Value, error) {
	if len(l.Items) < 2 {
		return nil, in.formErr(l, "with-resource needs a binding: (with-resource [name Type init] body...)")
	}
	b, ok := l.Items[1].(*Vector)
	if !ok || (len(b.Items) != 2 && len(b.Items) != 3) {
		return nil, in.fail(l.Items[1].Span(), ErrSpecialForm, "with-resource binding must be [name Type init] or [name init]")
	}
	v, err := in.evalArg(b.Items[len(b.Items)-1], e)
	if err != nil {
		return nil, err
	}
	fr := newEnv(e, 1)
	if err := in.bindPattern(b.Items[0], v, fr, "resource"); err != nil {
		return nil, err
	}
	res, err := in.evalBody(l.Items[2:], fr)
	if c, ok := v.(Closer); ok {
		if cerr := c.Close(); cerr != nil && err == nil {
			err = in.fail(l.S, ErrHost, "releasing resource %s: %v", Print(b.Items[0]), cerr)
		}
	}
	return res, err
}

func evalDeftype(in *Interp, l *List, _ *env) (Value, error) {
	if len(l.Items) != 3 {
		return nil, in.formErr(l, "deftype takes a name and a type: (deftype Name [:tuple :int :int])")
	}
	s, ok := l.Items[1].(Symbol)
	if !ok {
		return nil, in.fail(l.Items[1].Span(), ErrSpecialForm, "deftype: the name must be a symbol")
	}
	t := l.Items[2]
	if v, ok := t.(*Vector); ok && len(v.Items) > 0 {
		if _, ok := v.Items[0].(Keyword); !ok {
			return nil, in.fail(t.Span(), ErrNotSupported, "deftype %s: record types with fields are not supported; deftype defines a type alias such as (deftype %s [:tuple :int :int])", s.Name, s.Name)
		}
	}
	in.types[s.Name] = t
	return Keyword{Name: s.Name}, nil
}

func evalStep(in *Interp, l *List, e *env) (Value, error) {
	if len(l.Items) < 2 {
		return nil, in.formErr(l, "step needs a name: (step \"name\" body...)")
	}
	nv, err := in.evalArg(l.Items[1], e)
	if err != nil {
		return nil, err
	}
	var name string
	switch n := nv.(type) {
	case String:
		name = n.V
	case Keyword:
		name = n.Name
	default:
		return nil, in.fail(l.Items[1].Span(), ErrType, "step name must be a string, got %s", describe(nv))
	}
	body := l.Items[2:]
	opts := NewMap(0)
	if len(body) >= 2 && isStepOptions(body[0]) {
		// Options are declarations read by the host before the plan runs
		// (effects, resources, a compensation): they are passed as
		// written, never evaluated here.
		opts, body = stepOptionsMap(body[0]), body[1:]
	}
	compensate, _ := opts.GetKeyword("compensate")
	retries, err := stepRetries(in, opts)
	if err != nil {
		return nil, err
	}
	retrier, _ := in.host.(StepRetrier)
	run := func(ctx context.Context) (Value, error) {
		saved := in.ctx
		in.ctx = ctx
		defer func() { in.ctx = saved }()
		var v Value
		var err error
		for attempt := int64(0); ; attempt++ {
			v, err = in.evalBody(body, e)
			if err == nil {
				if _, ok := v.(*recurValue); ok {
					err = in.fail(l.S, ErrSpecialForm, "recur cannot cross step")
				}
			}
			// A failed attempt is retried only with a host that knows it
			// (so that it can keep side effects from repeating), and never
			// after a limit or a cancellation.
			if err == nil || attempt >= retries || retrier == nil || !asError(err, ErrHost).Catchable() || ctx.Err() != nil {
				break
			}
			if rerr := retrier.RetryStep(ctx, name, int(attempt)+1, err); rerr != nil {
				err = rerr
				break
			}
		}
		// The compensation runs once, after the last attempt failed.
		if err != nil && compensate != nil {
			// The compensation runs inside the step, under its profile, and
			// the step still fails with the original error.
			if _, cerr := in.eval(compensate, e); cerr != nil {
				err = in.fail(l.S, ErrHost, "step %q failed (%v) and its compensation failed too: %v", name, err, cerr)
			}
		}
		return v, err
	}
	v, err := in.host.Step(in.ctx, name, opts, run)
	if err != nil {
		return nil, in.locate(asError(err, ErrHost), l.S)
	}
	return orNil(v), nil
}

func evalIfLet(in *Interp, l *List, e *env) (Value, error) {
	if len(l.Items) < 3 || len(l.Items) > 4 {
		return nil, in.formErr(l, "if-let takes a binding, a then form and an optional else form")
	}
	return in.condLet(l, e, l.Items[2:3], l.Items[3:])
}

func evalWhenLet(in *Interp, l *List, e *env) (Value, error) {
	return in.condLet(l, e, l.Items[2:], nil)
}

func (in *Interp) condLet(l *List, e *env, then, els []Value) (Value, error) {
	b, err := in.bindingVector(l)
	if err != nil {
		return nil, err
	}
	if len(b.Items) != 2 {
		return nil, in.formErr(l, "%s takes exactly one binding", HeadName(l))
	}
	v, err := in.evalArg(b.Items[1], e)
	if err != nil {
		return nil, err
	}
	if !Truthy(v) {
		return in.evalBody(els, e)
	}
	fr := newEnv(e, 1)
	if err := in.bindPattern(b.Items[0], v, fr, "binding"); err != nil {
		return nil, err
	}
	return in.evalBody(then, fr)
}

// stepOptionKeys are the keywords that mark the form after a step's name
// as its options, written {:effects ...} or [:effects ... :resources ...].
var stepOptionKeys = map[string]bool{"effects": true, "resources": true, "compensate": true, "retry": true}

// MaxStepRetries bounds a step's :retry.
const MaxStepRetries = 10

// stepRetries reads a step's :retry N: how many times a failed attempt of
// its body is run again.
func stepRetries(in *Interp, opts *Map) (int64, error) {
	r, ok := opts.GetKeyword("retry")
	if !ok {
		return 0, nil
	}
	n, ok := r.(Int)
	if !ok || n.V < 0 || n.V > MaxStepRetries {
		return 0, in.fail(r.Span(), ErrType, ":retry must be an integer from 0 to %d, got %s", MaxStepRetries, Print(r))
	}
	return n.V, nil
}

func isStepOptions(v Value) bool {
	var first Value
	switch x := v.(type) {
	case *Map:
		if x.Len() > 0 {
			first = x.Keys()[0]
		}
	case *Vector:
		if len(x.Items) > 0 {
			first = x.Items[0]
		}
	}
	k, ok := first.(Keyword)
	return ok && stepOptionKeys[k.Name]
}

func stepOptionsMap(v Value) *Map {
	if m, ok := v.(*Map); ok {
		return m
	}
	items := v.(*Vector).Items
	m := NewMap(len(items) / 2)
	for i := 0; i+1 < len(items); i += 2 {
		m.Set(items[i], items[i+1])
	}
	return m
}
