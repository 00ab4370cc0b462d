package rtfs

// Macros (spec 08). (defmacro name [params] body...) defines a function
// that receives the forms of a call unevaluated and returns the form that
// is evaluated in its place. Templates are written with quasiquote (`),
// unquote (~) and unquote-splicing (~@); a quasiquote outside a macro
// builds data the same way. A macro is expanded each time its call is
// evaluated (there is no separate expansion pass: a program is evaluated
// form by form, so a macro is usable from the form after its defmacro).
// Macros are not hygienic: a template's symbols are taken as written.

// macroRedefinable are the special forms a program may replace with its
// own macro (the specification's examples define when and unless). The
// others carry bindings, effects or control that the evaluator and the
// plan analysis rely on, so defmacro refuses them.
var macroRedefinable = map[string]bool{
	"when": true, "when-not": true, "cond": true, "->": true, "->>": true, "if-let": true,
	"when-let": true, "doseq": true, "dotimes": true, "for": true, "comment": true, "case": true,
}

func evalDefmacro(in *Interp, l *List, e *env) (Value, error) {
	s, err := in.defName(l)
	if err != nil {
		return nil, err
	}
	if _, ok := specialForms[s.Name]; ok && !macroRedefinable[s.Name] {
		return nil, in.fail(s.S, ErrSpecialForm, "defmacro: %s is a special form of RTFS and cannot be redefined; choose another name", s.Name)
	}
	rest := l.Items[2:]
	if len(rest) > 0 {
		if _, ok := rest[0].(String); ok {
			rest = rest[1:] // docstring
		}
	}
	if len(rest) == 0 {
		return nil, in.formErr(l, "defmacro %s needs a parameter vector: (defmacro %s [params] body...)", s.Name, s.Name)
	}
	params, ok := rest[0].(*Vector)
	if !ok {
		return nil, in.fail(rest[0].Span(), ErrSpecialForm, "defmacro %s: expected a parameter vector, found %s", s.Name, describe(rest[0]))
	}
	c, err := in.parseFn("defmacro "+s.Name, params, rest[1:], e, false, l.S)
	if err != nil {
		return nil, err
	}
	if in.macros == nil {
		in.macros = make(map[string]*Func)
	}
	in.macros[s.Name] = &Func{Name: s.Name, cl: c}
	return Symbol{Name: s.Name}, nil
}

// macroFor returns the macro a list calls, if its head names one that no
// local binding hides.
func (in *Interp) macroFor(x Value, e *env) *Func {
	if in.macros == nil {
		return nil
	}
	l, ok := x.(*List)
	if !ok || len(l.Items) == 0 {
		return nil
	}
	s, ok := l.Items[0].(Symbol)
	if !ok {
		return nil
	}
	m := in.macros[s.Name]
	if m == nil {
		return nil
	}
	if _, shadowed := e.lookup(s.Name); shadowed {
		return nil
	}
	return m
}

// expand applies macro m to the forms of call l, and again while the
// result is itself a macro call (without growing the Go stack), and
// returns the form to evaluate.
func (in *Interp) expand(m *Func, l *List, e *env) (Value, error) {
	for {
		form, err := in.callClosure(m, append([]Value(nil), l.Items[1:]...), l.S)
		if err != nil {
			return nil, err
		}
		if m = in.macroFor(form, e); m == nil {
			return form, nil
		}
		l = form.(*List)
		if err := in.tick(l.S); err != nil {
			return nil, err
		}
	}
}

// evalMacroCall expands a macro call and evaluates the result. The code
// a macro produces is held to the reader's limits (nesting DefaultMaxDepth,
// MaxCollection nodes; walking it is billed), and expansions evaluated
// inside expansions nest at most MaxDepth deep, like calls: a macro can
// build code at run time, which a program otherwise cannot, and deep code
// means a deep Go stack.
func (in *Interp) evalMacroCall(m *Func, l *List, e *env) (Value, error) {
	form, err := in.expand(m, l, e)
	if err != nil {
		return nil, err
	}
	nodes, tooDeep := codeSize(form, in.lim.MaxCollection, DefaultMaxDepth)
	switch {
	case tooDeep:
		return nil, in.fail(l.S, ErrLimit, "macro %s expanded into code nested deeper than %d levels (the reader's limit)", m.Name, DefaultMaxDepth)
	case nodes > in.lim.MaxCollection:
		return nil, in.fail(l.S, ErrLimit, "macro %s expanded into code of more than %d forms (Limits.MaxCollection)", m.Name, in.lim.MaxCollection)
	}
	if err := in.charge(nodes); err != nil {
		return nil, in.locate(err, l.S)
	}
	if in.macroDepth >= in.lim.MaxDepth {
		return nil, in.fail(l.S, ErrLimit, "macro expansions nested deeper than %d (Limits.MaxDepth): macro %s expands into code that calls it again without end", in.lim.MaxDepth, m.Name)
	}
	in.macroDepth++
	v, err := in.eval(form, e)
	in.macroDepth--
	return v, err
}

func evalQuasiquote(in *Interp, l *List, e *env) (Value, error) {
	if len(l.Items) != 2 {
		return nil, in.formErr(l, "quasiquote takes exactly one form")
	}
	return in.quasi(l.Items[1], e, 1)
}

func evalUnquoteOutside(in *Interp, l *List, _ *env) (Value, error) {
	return nil, in.formErr(l, "%s is only meaningful inside a quasiquote (`...)", HeadName(l))
}

// quasi builds the value of a quasiquoted template: forms are taken as
// data, except (unquote x), which is evaluated, and (unquote-splicing x)
// inside a list or vector, whose elements are spliced in. depth counts the
// nested quasiquotes: only unquotes of the outermost one are evaluated.
func (in *Interp) quasi(x Value, e *env, depth int) (Value, error) {
	switch v := x.(type) {
	case *List:
		switch HeadName(v) {
		case "unquote", "unquote-splicing", "quasiquote":
			if len(v.Items) != 2 {
				return nil, in.fail(v.S, ErrSpecialForm, "%s takes exactly one form", HeadName(v))
			}
			switch HeadName(v) {
			case "unquote":
				if depth == 1 {
					return in.evalArg(v.Items[1], e)
				}
				return in.quasiWrap(v, e, depth-1)
			case "unquote-splicing":
				if depth == 1 {
					return nil, in.fail(v.S, ErrSpecialForm, "~@ splices into a list or vector: write it inside one, as `(f ~@xs)")
				}
				return in.quasiWrap(v, e, depth-1)
			}
			return in.quasiWrap(v, e, depth+1)
		}
		items, err := in.quasiItems(v.Items, e, depth)
		if err != nil {
			return nil, err
		}
		return &List{Items: items, Sugar: v.Sugar, S: v.S}, nil
	case *Vector:
		items, err := in.quasiItems(v.Items, e, depth)
		if err != nil {
			return nil, err
		}
		return &Vector{Items: items, S: v.S}, nil
	case *Map:
		out := NewMap(v.Len())
		for i, k := range v.keys {
			kq, err := in.quasi(k, e, depth)
			if err != nil {
				return nil, err
			}
			if err := in.checkTree(kq, "map key"); err != nil {
				return nil, in.locate(err, k.Span())
			}
			vq, err := in.quasi(v.vals[i], e, depth)
			if err != nil {
				return nil, err
			}
			out.Set(kq, vq)
		}
		out.S = v.S
		return out, nil
	}
	return x, nil
}

// quasiWrap rebuilds (head form) with form processed at depth.
func (in *Interp) quasiWrap(v *List, e *env, depth int) (Value, error) {
	inner, err := in.quasi(v.Items[1], e, depth)
	if err != nil {
		return nil, err
	}
	return &List{Items: []Value{v.Items[0], inner}, Sugar: v.Sugar, S: v.S}, nil
}

func (in *Interp) quasiItems(items []Value, e *env, depth int) ([]Value, error) {
	out := make([]Value, 0, len(items))
	for _, it := range items {
		if err := in.tick(it.Span()); err != nil {
			return nil, err
		}
		if l, ok := it.(*List); ok && depth == 1 && HeadName(l) == "unquote-splicing" && len(l.Items) == 2 {
			v, err := in.evalArg(l.Items[1], e)
			if err != nil {
				return nil, err
			}
			var parts []Value
			switch x := v.(type) {
			case *List:
				parts = x.Items
			case *Vector:
				parts = x.Items
			case Nil:
			default:
				return nil, in.fail(l.S, ErrType, "~@ splices a list or vector, got %s", describe(v))
			}
			if err := in.checkSize(len(out)+len(parts), "quasiquoted form"); err != nil {
				return nil, in.locate(err, l.S)
			}
			if err := in.charge(len(parts)); err != nil {
				return nil, in.locate(err, l.S)
			}
			out = append(out, parts...)
			continue
		}
		q, err := in.quasi(it, e, depth)
		if err != nil {
			return nil, err
		}
		out = append(out, q)
	}
	return out, nil
}
