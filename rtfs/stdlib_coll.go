package rtfs

import (
	"math"
	"sort"
	"unicode/utf8"
)

// Sequence functions accept vectors, lists, maps (as [key value] entry
// vectors), strings (as one-character strings) and nil (empty), and return
// vectors.

func arity(fn string, args []Value, lo, hi int) error {
	if len(args) >= lo && (hi < 0 || len(args) <= hi) {
		return nil
	}
	switch {
	case lo == hi:
		return newError(ErrArity, "%s expects %s, got %d", fn, plural(lo, "argument"), len(args))
	case hi < 0:
		return newError(ErrArity, "%s expects at least %s, got %d", fn, plural(lo, "argument"), len(args))
	}
	return newError(ErrArity, "%s expects %d to %d arguments, got %d", fn, lo, hi, len(args))
}

// seqItems returns the elements of a sequential value. The slice must not
// be modified.
func seqItems(v Value) ([]Value, error) {
	switch x := v.(type) {
	case *Vector:
		return x.Items, nil
	case *List:
		return x.Items, nil
	case Nil:
		return nil, nil
	case *Map:
		out := make([]Value, x.Len())
		for i, k := range x.keys {
			out[i] = &Vector{Items: []Value{k, x.vals[i]}}
		}
		return out, nil
	case String:
		out := make([]Value, 0, utf8.RuneCountInString(x.V))
		for _, r := range x.V {
			out = append(out, String{V: string(r)})
		}
		return out, nil
	}
	return nil, newError(ErrType, "expected a collection (vector, list, map, string or nil), got %s", describe(v))
}

func seqArg(fn string, v Value) ([]Value, error) {
	items, err := seqItems(v)
	if err != nil {
		return nil, newError(ErrType, "%s expects a collection, got %s", fn, describe(v))
	}
	return items, nil
}

func vec(items []Value) *Vector { return &Vector{Items: items} }

func fnVector(in *Interp, args []Value) (Value, error) {
	return vec(append([]Value(nil), args...)), nil
}

func fnList(in *Interp, args []Value) (Value, error) {
	return NewList(append([]Value(nil), args...)...), nil
}

func fnVec(_ *Interp, args []Value) (Value, error) {
	if err := arity("vec", args, 1, 1); err != nil {
		return nil, err
	}
	items, err := seqArg("vec", args[0])
	if err != nil {
		return nil, err
	}
	return vec(append([]Value(nil), items...)), nil
}

func fnHashMap(in *Interp, args []Value) (Value, error) {
	if len(args)%2 != 0 {
		return nil, newError(ErrArity, "hash-map expects key/value pairs, got %d arguments", len(args))
	}
	for i := 0; i < len(args); i += 2 {
		if err := in.checkTree(args[i], "hash-map key"); err != nil {
			return nil, err
		}
	}
	return MapOf(args...), nil
}

func fnGet(_ *Interp, args []Value) (Value, error) {
	if err := arity("get", args, 2, 3); err != nil {
		return nil, err
	}
	if s, ok := args[0].(String); ok {
		if i, ok := args[1].(Int); ok && i.V >= 0 {
			r := []rune(s.V)
			if i.V < int64(len(r)) {
				return String{V: string(r[i.V])}, nil
			}
		}
	}
	return lookupIn(args[0], args[1], args[2:]), nil
}

func fnGetIn(_ *Interp, args []Value) (Value, error) {
	if err := arity("get-in", args, 2, 3); err != nil {
		return nil, err
	}
	path, err := seqArg("get-in", args[1])
	if err != nil {
		return nil, err
	}
	cur := args[0]
	for _, k := range path {
		var missing = &Error{}
		cur = lookupIn(cur, k, []Value{missing})
		if cur == Value(missing) {
			if len(args) == 3 {
				return args[2], nil
			}
			return Nil{}, nil
		}
	}
	return cur, nil
}

// assoc1 sets one key of a map or one index of a vector.
func assoc1(fn string, coll, k, v Value) (Value, error) {
	switch c := coll.(type) {
	case *Map:
		return c.Assoc(k, v), nil
	case Nil:
		return MapOf(k, v), nil
	case *Vector:
		i, ok := k.(Int)
		if !ok || i.V < 0 || i.V > int64(len(c.Items)) {
			return nil, newError(ErrIndex, "%s: index %s is outside vector of %d elements", fn, short(k), len(c.Items))
		}
		items := make([]Value, len(c.Items), len(c.Items)+1)
		copy(items, c.Items)
		if i.V == int64(len(items)) {
			items = append(items, v)
		} else {
			items[i.V] = v
		}
		return vec(items), nil
	}
	return nil, newError(ErrType, "%s expects a map or a vector, got %s", fn, describe(coll))
}

func fnAssoc(in *Interp, args []Value) (Value, error) {
	if len(args) < 3 || len(args)%2 != 1 {
		return nil, newError(ErrArity, "assoc expects a collection and key/value pairs, got %d arguments", len(args))
	}
	for i := 1; i < len(args); i += 2 {
		if err := in.checkTree(args[i], "assoc key"); err != nil {
			return nil, err
		}
	}
	if m, ok := args[0].(*Map); ok {
		if err := in.charge(8 * m.Len()); err != nil {
			return nil, err
		}
		c := m.Clone()
		for i := 1; i < len(args); i += 2 {
			c.Set(args[i], args[i+1])
		}
		return c, nil
	}
	cur := args[0]
	for i := 1; i < len(args); i += 2 {
		var err error
		if cur, err = assoc1("assoc", cur, args[i], args[i+1]); err != nil {
			return nil, err
		}
	}
	return cur, nil
}

func fnDissoc(_ *Interp, args []Value) (Value, error) {
	if err := arity("dissoc", args, 1, -1); err != nil {
		return nil, err
	}
	switch m := args[0].(type) {
	case Nil:
		return m, nil
	case *Map:
		for _, k := range args[1:] {
			m = m.Dissoc(k)
		}
		return m, nil
	}
	return nil, newError(ErrType, "dissoc expects a map, got %s", describe(args[0]))
}

func assocIn(coll Value, path []Value, v Value) (Value, error) {
	if len(path) == 0 {
		return v, nil
	}
	inner := lookupIn(coll, path[0], nil)
	nv, err := assocIn(inner, path[1:], v)
	if err != nil {
		return nil, err
	}
	return assoc1("assoc-in", coll, path[0], nv)
}

func fnAssocIn(_ *Interp, args []Value) (Value, error) {
	if err := arity("assoc-in", args, 3, 3); err != nil {
		return nil, err
	}
	path, err := seqArg("assoc-in", args[1])
	if err != nil {
		return nil, err
	}
	return assocIn(args[0], path, args[2])
}

func fnUpdate(in *Interp, args []Value) (Value, error) {
	if err := arity("update", args, 3, -1); err != nil {
		return nil, err
	}
	old := lookupIn(args[0], args[1], nil)
	nv, err := in.Apply(args[2], append([]Value{old}, args[3:]...))
	if err != nil {
		return nil, err
	}
	return assoc1("update", args[0], args[1], nv)
}

func fnUpdateIn(in *Interp, args []Value) (Value, error) {
	if err := arity("update-in", args, 3, -1); err != nil {
		return nil, err
	}
	path, err := seqArg("update-in", args[1])
	if err != nil {
		return nil, err
	}
	old := args[0]
	for _, k := range path {
		old = lookupIn(old, k, nil)
	}
	nv, err := in.Apply(args[2], append([]Value{old}, args[3:]...))
	if err != nil {
		return nil, err
	}
	return assocIn(args[0], path, nv)
}

func fnMerge(_ *Interp, args []Value) (Value, error) {
	var out *Map
	for _, a := range args {
		switch m := a.(type) {
		case Nil:
		case *Map:
			if out == nil {
				out = m.Clone()
				continue
			}
			for i, k := range m.keys {
				out.Set(k, m.vals[i])
			}
		default:
			return nil, newError(ErrType, "merge expects maps, got %s", describe(a))
		}
	}
	if out == nil {
		return Nil{}, nil
	}
	return out, nil
}

// conjInto adds items to a collection the way conj does: at the end of a
// vector, at the front of a list, as [k v] entries into a map.
func (in *Interp) conjInto(fn string, coll Value, items []Value) (Value, error) {
	switch c := coll.(type) {
	case Nil, *Vector:
		var base []Value
		if v, ok := c.(*Vector); ok {
			base = v.Items
		}
		if err := in.checkSize(len(base)+len(items), fn+" result"); err != nil {
			return nil, err
		}
		if out, ok := in.extendTail(base, items); ok {
			return vec(out), nil
		}
		if err := in.charge(len(base) + len(items)); err != nil {
			return nil, err
		}
		out := make([]Value, 0, 2*(len(base)+len(items)))
		out = append(append(out, base...), items...)
		if len(out) > 0 {
			in.tail = vecTail{start: &out[0], n: len(out)}
		}
		return vec(out), nil
	case *List:
		if err := in.checkSize(len(c.Items)+len(items), fn+" result"); err != nil {
			return nil, err
		}
		if err := in.charge(len(c.Items) + len(items)); err != nil {
			return nil, err
		}
		// Spec 03 §2 and 10 §7: conj appends, to lists too ((conj (1 2) 3)
		// is (1 2 3)), where Clojure would prepend.
		out := make([]Value, 0, len(c.Items)+len(items))
		return NewList(append(append(out, c.Items...), items...)...), nil
	case *Map:
		if err := in.checkSize(c.Len()+len(items), fn+" result"); err != nil {
			return nil, err
		}
		if err := in.charge(8 * (c.Len() + len(items))); err != nil {
			return nil, err
		}
		m := c.Clone()
		for _, it := range items {
			switch e := it.(type) {
			case *Vector:
				if len(e.Items) != 2 {
					return nil, newError(ErrType, "%s into a map expects [key value] entries, got %s", fn, describe(it))
				}
				if err := in.checkTree(e.Items[0], fn+" key"); err != nil {
					return nil, err
				}
				m.Set(e.Items[0], e.Items[1])
			case *Map:
				for i, k := range e.keys {
					m.Set(k, e.vals[i])
				}
			default:
				return nil, newError(ErrType, "%s into a map expects [key value] entries, got %s", fn, describe(it))
			}
		}
		return m, nil
	}
	return nil, newError(ErrType, "%s expects a vector, list or map, got %s", fn, describe(coll))
}

// vecTail remembers the vector most recently built by conj or into: its
// backing array and how much of it is in use. Appending to exactly that
// vector can write into the spare capacity, which no other vector can see,
// so (reduce conj [] xs) and conj in a loop are linear instead of
// quadratic. One slot only, so nothing else is kept alive.
type vecTail struct {
	start *Value
	n     int
}

func (in *Interp) extendTail(base, items []Value) ([]Value, bool) {
	if len(base) == 0 || len(items) == 0 || in.tail.start != &base[:1][0] || in.tail.n != len(base) || cap(base)-len(base) < len(items) {
		return nil, false
	}
	out := append(base, items...)
	in.tail.n = len(out)
	return out, true
}

func fnConj(in *Interp, args []Value) (Value, error) {
	if err := arity("conj", args, 1, -1); err != nil {
		return nil, err
	}
	return in.conjInto("conj", args[0], args[1:])
}

func fnInto(in *Interp, args []Value) (Value, error) {
	if err := arity("into", args, 2, 2); err != nil {
		return nil, err
	}
	items, err := seqArg("into", args[1])
	if err != nil {
		return nil, err
	}
	return in.conjInto("into", args[0], items)
}

func fnCons(in *Interp, args []Value) (Value, error) {
	if err := arity("cons", args, 2, 2); err != nil {
		return nil, err
	}
	items, err := seqArg("cons", args[1])
	if err != nil {
		return nil, err
	}
	if err := in.checkSize(len(items)+1, "cons result"); err != nil {
		return nil, err
	}
	return vec(append([]Value{args[0]}, items...)), nil
}

func seqFn1(fn string, f func(items []Value) (Value, error)) NativeFunc {
	return func(_ *Interp, args []Value) (Value, error) {
		if err := arity(fn, args, 1, 1); err != nil {
			return nil, err
		}
		items, err := seqArg(fn, args[0])
		if err != nil {
			return nil, err
		}
		return f(items)
	}
}

func fnNth(_ *Interp, args []Value) (Value, error) {
	if err := arity("nth", args, 2, 3); err != nil {
		return nil, err
	}
	items, err := seqArg("nth", args[0])
	if err != nil {
		return nil, err
	}
	var def Value
	if len(args) == 3 {
		def = args[2]
	}
	return nth(items, args[1], def)
}

func nth(items []Value, idx Value, def Value) (Value, error) {
	i, ok := idx.(Int)
	if !ok {
		return nil, newError(ErrType, "index must be an integer, got %s", describe(idx))
	}
	if i.V < 0 || i.V >= int64(len(items)) {
		if def != nil {
			return def, nil
		}
		return nil, newError(ErrIndex, "index %d is outside a collection of %d elements", i.V, len(items))
	}
	return items[i.V], nil
}

// countFn is count and its spec name length: the number of elements of a
// collection (entries of a map, characters of a string, 0 for nil).
func countFn(fn string) NativeFunc {
	return func(_ *Interp, args []Value) (Value, error) {
		if err := arity(fn, args, 1, 1); err != nil {
			return nil, err
		}
		switch x := args[0].(type) {
		case String:
			return Int{V: int64(utf8.RuneCountInString(x.V))}, nil
		case *Map:
			return Int{V: int64(x.Len())}, nil
		}
		items, err := seqArg(fn, args[0])
		if err != nil {
			return nil, err
		}
		return Int{V: int64(len(items))}, nil
	}
}

func fnConcat(in *Interp, args []Value) (Value, error) {
	n := 0
	parts := make([][]Value, len(args))
	for i, a := range args {
		items, err := seqArg("concat", a)
		if err != nil {
			return nil, err
		}
		parts[i] = items
		n += len(items)
	}
	if err := in.checkSize(n, "concat result"); err != nil {
		return nil, err
	}
	if err := in.charge(n); err != nil {
		return nil, err
	}
	out := make([]Value, 0, n)
	for _, p := range parts {
		out = append(out, p...)
	}
	return vec(out), nil
}

// callback wraps Apply for functions passed to map, filter, reduce...
func (in *Interp) callback(f Value, args ...Value) (Value, error) {
	if err := in.tick(Span{}); err != nil {
		return nil, err
	}
	return in.apply(f, args, Span{})
}

func fnMap(in *Interp, args []Value) (Value, error) {
	if err := arity("map", args, 2, -1); err != nil {
		return nil, err
	}
	colls := make([][]Value, len(args)-1)
	n := math.MaxInt
	for i, a := range args[1:] {
		items, err := seqArg("map", a)
		if err != nil {
			return nil, err
		}
		colls[i] = items
		n = min(n, len(items))
	}
	out := make([]Value, n)
	for i := 0; i < n; i++ {
		cargs := make([]Value, len(colls))
		for j, c := range colls {
			cargs[j] = c[i]
		}
		v, err := in.callback(args[0], cargs...)
		if err != nil {
			return nil, err
		}
		out[i] = v
	}
	return vec(out), nil
}

func fnMapIndexed(in *Interp, args []Value) (Value, error) {
	if err := arity("map-indexed", args, 2, 2); err != nil {
		return nil, err
	}
	items, err := seqArg("map-indexed", args[1])
	if err != nil {
		return nil, err
	}
	out := make([]Value, len(items))
	for i, it := range items {
		v, err := in.callback(args[0], Int{V: int64(i)}, it)
		if err != nil {
			return nil, err
		}
		out[i] = v
	}
	return vec(out), nil
}

func filterFn(fn string, keep bool) NativeFunc {
	return func(in *Interp, args []Value) (Value, error) {
		if err := arity(fn, args, 2, 2); err != nil {
			return nil, err
		}
		items, err := seqArg(fn, args[1])
		if err != nil {
			return nil, err
		}
		out := make([]Value, 0, len(items))
		for _, it := range items {
			v, err := in.callback(args[0], it)
			if err != nil {
				return nil, err
			}
			if Truthy(v) == keep {
				out = append(out, it)
			}
		}
		return vec(out), nil
	}
}

func fnReduce(in *Interp, args []Value) (Value, error) {
	if err := arity("reduce", args, 2, 3); err != nil {
		return nil, err
	}
	items, err := seqArg("reduce", args[len(args)-1])
	if err != nil {
		return nil, err
	}
	var acc Value
	if len(args) == 3 {
		acc = args[1]
	} else {
		if len(items) == 0 {
			return in.callback(args[0])
		}
		acc, items = items[0], items[1:]
	}
	for _, it := range items {
		if acc, err = in.callback(args[0], acc, it); err != nil {
			return nil, err
		}
	}
	return acc, nil
}

func toInt(fn string, v Value) (int64, error) {
	switch x := v.(type) {
	case Int:
		return x.V, nil
	case Float:
		if x.V == math.Trunc(x.V) && math.Abs(x.V) < 9e18 {
			return int64(x.V), nil
		}
	}
	return 0, newError(ErrType, "%s expects an integer, got %s", fn, describe(v))
}

func fnRange(in *Interp, args []Value) (Value, error) {
	if len(args) == 0 {
		return nil, newError(ErrNotSupported, "(range) without an end would be infinite; RTFS sequences are not lazy, write (range end)")
	}
	if err := arity("range", args, 1, 3); err != nil {
		return nil, err
	}
	nums := make([]int64, len(args))
	for i, a := range args {
		n, err := toInt("range", a)
		if err != nil {
			return nil, err
		}
		nums[i] = n
	}
	start, end, step := int64(0), nums[0], int64(1)
	if len(nums) >= 2 {
		start, end = nums[0], nums[1]
	}
	if len(nums) == 3 {
		step = nums[2]
	}
	if step == 0 {
		return nil, newError(ErrValue, "range step must not be 0")
	}
	count := 0.0
	if (step > 0 && end > start) || (step < 0 && end < start) {
		count = math.Ceil((float64(end) - float64(start)) / float64(step))
	}
	if count > float64(in.lim.MaxCollection) {
		return nil, newError(ErrLimit, "range of %.0f elements exceeds the collection size limit of %d (Limits.MaxCollection)", count, in.lim.MaxCollection)
	}
	out := make([]Value, 0, int(count))
	for i := start; (step > 0 && i < end) || (step < 0 && i > end); i += step {
		out = append(out, mkInt(i))
	}
	return vec(out), nil
}

// fnNumbers is (numbers start end): the integers from start to end,
// inclusive (spec 10 §7).
func fnNumbers(in *Interp, args []Value) (Value, error) {
	if err := arity("numbers", args, 2, 2); err != nil {
		return nil, err
	}
	start, err := toInt("numbers", args[0])
	if err != nil {
		return nil, err
	}
	end, err := toInt("numbers", args[1])
	if err != nil {
		return nil, err
	}
	if end < start {
		return vec(nil), nil
	}
	if n := float64(end) - float64(start) + 1; n > float64(in.lim.MaxCollection) {
		return nil, newError(ErrLimit, "numbers of %.0f elements exceeds the collection size limit of %d (Limits.MaxCollection)", n, in.lim.MaxCollection)
	}
	out := make([]Value, 0, end-start+1)
	for i := start; ; i++ {
		out = append(out, mkInt(i))
		if i == end {
			break
		}
	}
	return vec(out), nil
}

// fnFind is (find coll key): the [key value] entry of a map (or [index
// element] of a vector), or nil.
func fnFind(in *Interp, args []Value) (Value, error) {
	if err := arity("find", args, 2, 2); err != nil {
		return nil, err
	}
	switch c := args[0].(type) {
	case *Map:
		if err := in.checkTree(args[1], "find"); err != nil {
			return nil, err
		}
		if v, ok := c.Get(args[1]); ok {
			return vec([]Value{args[1], v}), nil
		}
		return Nil{}, nil
	case *Vector:
		if i, ok := args[1].(Int); ok && i.V >= 0 && i.V < int64(len(c.Items)) {
			return vec([]Value{i, c.Items[i.V]}), nil
		}
		return Nil{}, nil
	case Nil:
		return Nil{}, nil
	}
	return nil, newError(ErrType, "find expects a map or a vector, got %s", describe(args[0]))
}

func fnKeys(_ *Interp, args []Value) (Value, error) { return mapPart("keys", args, true) }
func fnVals(_ *Interp, args []Value) (Value, error) { return mapPart("vals", args, false) }

func mapPart(fn string, args []Value, keys bool) (Value, error) {
	if err := arity(fn, args, 1, 1); err != nil {
		return nil, err
	}
	switch m := args[0].(type) {
	case Nil:
		return vec(nil), nil
	case *Map:
		src := m.vals
		if keys {
			src = m.keys
		}
		return vec(append([]Value(nil), src...)), nil
	}
	return nil, newError(ErrType, "%s expects a map, got %s", fn, describe(args[0]))
}

func fnContains(in *Interp, args []Value) (Value, error) {
	if err := arity("contains?", args, 2, 2); err != nil {
		return nil, err
	}
	if err := in.checkTree(args[1], "contains?"); err != nil {
		return nil, err
	}
	switch c := args[0].(type) {
	case *Map:
		_, ok := c.Get(args[1])
		return mkBool(ok), nil
	case Nil:
		return mkBool(false), nil
	case String:
		s, ok := args[1].(String)
		if !ok {
			return nil, newError(ErrType, "contains? on a string expects a string, got %s", describe(args[1]))
		}
		return mkBool(containsStr(c.V, s.V)), nil
	}
	// Vectors and lists: membership (RTFS has no sets; this is what
	// programs written against upstream RTFS expect).
	items, err := seqArg("contains?", args[0])
	if err != nil {
		return nil, err
	}
	for _, it := range items {
		if Equal(it, args[1]) {
			return mkBool(true), nil
		}
	}
	return mkBool(false), nil
}

// compareValues orders values for sort: numbers, strings, keywords,
// symbols, booleans, nil and vectors compare among themselves.
func compareValues(a, b Value) (int, error) {
	ka, kb := a.Kind(), b.Kind()
	num := func(k Kind) bool { return k == KindInt || k == KindFloat }
	if num(ka) && num(kb) {
		return compareNum("compare", a, b)
	}
	if ka != kb {
		if ka == KindNil {
			return -1, nil
		}
		if kb == KindNil {
			return 1, nil
		}
		return 0, newError(ErrType, "cannot compare %s with %s", describe(a), describe(b))
	}
	var x, y string
	switch v := a.(type) {
	case Nil:
		return 0, nil
	case String:
		x, y = v.V, b.(String).V
	case Keyword:
		x, y = v.Name, b.(Keyword).Name
	case Symbol:
		x, y = v.Name, b.(Symbol).Name
	case Bool:
		bv := b.(Bool).V
		switch {
		case v.V == bv:
			return 0, nil
		case !v.V:
			return -1, nil
		}
		return 1, nil
	case Timestamp:
		return v.T.Compare(b.(Timestamp).T), nil
	case *Vector:
		w := b.(*Vector)
		for i := 0; i < len(v.Items) && i < len(w.Items); i++ {
			if c, err := compareValues(v.Items[i], w.Items[i]); c != 0 || err != nil {
				return c, err
			}
		}
		return cmpInt(len(v.Items), len(w.Items)), nil
	default:
		return 0, newError(ErrType, "cannot compare %s values", ka)
	}
	switch {
	case x < y:
		return -1, nil
	case x > y:
		return 1, nil
	}
	return 0, nil
}

func cmpInt(a, b int) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

func fnCompare(_ *Interp, args []Value) (Value, error) {
	if err := arity("compare", args, 2, 2); err != nil {
		return nil, err
	}
	c, err := compareValues(args[0], args[1])
	if err != nil {
		return nil, err
	}
	return Int{V: int64(c)}, nil
}

// sortBy sorts items stably by keys, with an optional comparator function.
func (in *Interp) sortBy(items, keys []Value, cmp Value) ([]Value, error) {
	for _, k := range keys {
		if err := in.checkTree(k, "sort key"); err != nil {
			return nil, err
		}
	}
	idx := make([]int, len(items))
	for i := range idx {
		idx[i] = i
	}
	var ferr error
	sort.SliceStable(idx, func(a, b int) bool {
		if ferr != nil {
			return false
		}
		ka, kb := keys[idx[a]], keys[idx[b]]
		if cmp == nil {
			c, err := compareValues(ka, kb)
			ferr = err
			return c < 0
		}
		r, err := in.callback(cmp, ka, kb)
		if err != nil {
			ferr = err
			return false
		}
		if n, ok := r.(Int); ok {
			return n.V < 0
		}
		return Truthy(r)
	})
	if ferr != nil {
		return nil, ferr
	}
	out := make([]Value, len(items))
	for i, j := range idx {
		out[i] = items[j]
	}
	return out, nil
}

func fnSort(in *Interp, args []Value) (Value, error) {
	if err := arity("sort", args, 1, 2); err != nil {
		return nil, err
	}
	items, err := seqArg("sort", args[len(args)-1])
	if err != nil {
		return nil, err
	}
	var cmp Value
	if len(args) == 2 {
		cmp = args[0]
	}
	out, err := in.sortBy(items, items, cmp)
	if err != nil {
		return nil, err
	}
	return vec(out), nil
}

func fnSortBy(in *Interp, args []Value) (Value, error) {
	if err := arity("sort-by", args, 2, 3); err != nil {
		return nil, err
	}
	items, err := seqArg("sort-by", args[len(args)-1])
	if err != nil {
		return nil, err
	}
	keys := make([]Value, len(items))
	for i, it := range items {
		if keys[i], err = in.callback(args[0], it); err != nil {
			return nil, err
		}
	}
	var cmp Value
	if len(args) == 3 {
		cmp = args[1]
	}
	out, err := in.sortBy(items, keys, cmp)
	if err != nil {
		return nil, err
	}
	return vec(out), nil
}

func fnDistinct(in *Interp, args []Value) (Value, error) {
	return seqFn1("distinct", func(items []Value) (Value, error) {
		seen := make(map[string]bool, len(items))
		out := make([]Value, 0, len(items))
		for _, it := range items {
			if err := in.checkTree(it, "distinct"); err != nil {
				return nil, err
			}
			k := HashKey(it)
			if !seen[k] {
				seen[k] = true
				out = append(out, it)
			}
		}
		return vec(out), nil
	})(nil, args)
}

func fnZipmap(in *Interp, args []Value) (Value, error) {
	if err := arity("zipmap", args, 2, 2); err != nil {
		return nil, err
	}
	ks, err := seqArg("zipmap", args[0])
	if err != nil {
		return nil, err
	}
	vs, err := seqArg("zipmap", args[1])
	if err != nil {
		return nil, err
	}
	m := NewMap(min(len(ks), len(vs)))
	for i := 0; i < len(ks) && i < len(vs); i++ {
		if err := in.checkTree(ks[i], "zipmap key"); err != nil {
			return nil, err
		}
		m.Set(ks[i], vs[i])
	}
	return m, nil
}

func fnPartition(_ *Interp, args []Value) (Value, error) {
	if err := arity("partition", args, 2, 3); err != nil {
		return nil, err
	}
	n, err := toInt("partition", args[0])
	if err != nil {
		return nil, err
	}
	step := n
	if len(args) == 3 {
		if step, err = toInt("partition", args[1]); err != nil {
			return nil, err
		}
	}
	if n <= 0 || step <= 0 {
		return nil, newError(ErrValue, "partition size and step must be positive")
	}
	items, err := seqArg("partition", args[len(args)-1])
	if err != nil {
		return nil, err
	}
	var out []Value
	for i := int64(0); i+n <= int64(len(items)); i += step {
		out = append(out, vec(append([]Value(nil), items[i:i+n]...)))
	}
	return vec(out), nil
}

func fnPartitionBy(in *Interp, args []Value) (Value, error) {
	if err := arity("partition-by", args, 2, 2); err != nil {
		return nil, err
	}
	items, err := seqArg("partition-by", args[1])
	if err != nil {
		return nil, err
	}
	var out []Value
	var cur []Value
	var last Value
	for i, it := range items {
		k, err := in.callback(args[0], it)
		if err != nil {
			return nil, err
		}
		if i > 0 && !Equal(k, last) {
			out = append(out, vec(cur))
			cur = nil
		}
		cur, last = append(cur, it), k
	}
	if len(cur) > 0 {
		out = append(out, vec(cur))
	}
	return vec(out), nil
}

func fnFrequencies(in *Interp, args []Value) (Value, error) {
	return seqFn1("frequencies", func(items []Value) (Value, error) {
		m := NewMap(len(items))
		for _, it := range items {
			if err := in.checkTree(it, "frequencies"); err != nil {
				return nil, err
			}
			n := int64(0)
			if v, ok := m.Get(it); ok {
				n = v.(Int).V
			}
			m.Set(it, Int{V: n + 1})
		}
		return m, nil
	})(nil, args)
}

func fnGroupBy(in *Interp, args []Value) (Value, error) {
	if err := arity("group-by", args, 2, 2); err != nil {
		return nil, err
	}
	items, err := seqArg("group-by", args[1])
	if err != nil {
		return nil, err
	}
	groups := NewMap(4)
	var order [][]Value
	for _, it := range items {
		k, err := in.callback(args[0], it)
		if err != nil {
			return nil, err
		}
		if err := in.checkTree(k, "group-by key"); err != nil {
			return nil, err
		}
		if i, ok := groups.Get(k); ok {
			order[i.(Int).V] = append(order[i.(Int).V], it)
			continue
		}
		groups.Set(k, Int{V: int64(len(order))})
		order = append(order, []Value{it})
	}
	out := NewMap(groups.Len())
	for i, k := range groups.keys {
		out.Set(k, vec(order[i]))
	}
	return out, nil
}

func predFn(fn string, every bool) NativeFunc {
	return func(in *Interp, args []Value) (Value, error) {
		if err := arity(fn, args, 2, 2); err != nil {
			return nil, err
		}
		items, err := seqArg(fn, args[1])
		if err != nil {
			return nil, err
		}
		for _, it := range items {
			v, err := in.callback(args[0], it)
			if err != nil {
				return nil, err
			}
			if every && !Truthy(v) {
				return mkBool(false), nil
			}
			if !every && Truthy(v) {
				return v, nil
			}
		}
		if every {
			return mkBool(true), nil
		}
		return Nil{}, nil
	}
}

func takeDrop(fn string) NativeFunc {
	return func(_ *Interp, args []Value) (Value, error) {
		if err := arity(fn, args, 2, 2); err != nil {
			return nil, err
		}
		n, err := toInt(fn, args[0])
		if err != nil {
			return nil, err
		}
		items, err := seqArg(fn, args[1])
		if err != nil {
			return nil, err
		}
		n = max(0, min(n, int64(len(items))))
		if fn == "take" {
			return vec(append([]Value(nil), items[:n]...)), nil
		}
		return vec(append([]Value(nil), items[n:]...)), nil
	}
}

func fnSubvec(_ *Interp, args []Value) (Value, error) {
	if err := arity("subvec", args, 2, 3); err != nil {
		return nil, err
	}
	items, err := seqArg("subvec", args[0])
	if err != nil {
		return nil, err
	}
	start, err := toInt("subvec", args[1])
	if err != nil {
		return nil, err
	}
	end := int64(len(items))
	if len(args) == 3 {
		if end, err = toInt("subvec", args[2]); err != nil {
			return nil, err
		}
	}
	if start < 0 || end > int64(len(items)) || start > end {
		return nil, newError(ErrIndex, "subvec [%d, %d) is outside a vector of %d elements", start, end, len(items))
	}
	return vec(append([]Value(nil), items[start:end]...)), nil
}

func fnApply(in *Interp, args []Value) (Value, error) {
	if err := arity("apply", args, 2, -1); err != nil {
		return nil, err
	}
	last, err := seqArg("apply", args[len(args)-1])
	if err != nil {
		return nil, err
	}
	all := append(append([]Value(nil), args[1:len(args)-1]...), last...)
	return in.callback(args[0], all...)
}

func fnSelectKeys(_ *Interp, args []Value) (Value, error) {
	if err := arity("select-keys", args, 2, 2); err != nil {
		return nil, err
	}
	ks, err := seqArg("select-keys", args[1])
	if err != nil {
		return nil, err
	}
	out := NewMap(len(ks))
	if m, ok := args[0].(*Map); ok {
		for _, k := range ks {
			if v, ok := m.Get(k); ok {
				out.Set(k, v)
			}
		}
	}
	return out, nil
}

func fnRenameKeys(_ *Interp, args []Value) (Value, error) {
	if err := arity("rename-keys", args, 2, 2); err != nil {
		return nil, err
	}
	m, ok1 := args[0].(*Map)
	r, ok2 := args[1].(*Map)
	if !ok1 || !ok2 {
		return nil, newError(ErrType, "rename-keys expects two maps")
	}
	out := NewMap(m.Len())
	for i, k := range m.keys {
		if nk, ok := r.Get(k); ok {
			k = nk
		}
		out.Set(k, m.vals[i])
	}
	return out, nil
}

func entryPart(fn string, i int) NativeFunc {
	return func(_ *Interp, args []Value) (Value, error) {
		if err := arity(fn, args, 1, 1); err != nil {
			return nil, err
		}
		e, ok := args[0].(*Vector)
		if !ok || len(e.Items) != 2 {
			return nil, newError(ErrType, "%s expects a map entry [key value], got %s", fn, describe(args[0]))
		}
		return e.Items[i], nil
	}
}

func fnWithMeta(_ *Interp, args []Value) (Value, error) {
	if err := arity("with-meta", args, 2, 2); err != nil {
		return nil, err
	}
	switch c := args[0].(type) {
	case *Map:
		m := c.Clone()
		m.Meta = args[1]
		return m, nil
	case *Vector:
		return &Vector{Items: c.Items, Meta: args[1]}, nil
	case *List:
		return &List{Items: c.Items, Meta: args[1]}, nil
	}
	return nil, newError(ErrType, "with-meta expects a collection, got %s", describe(args[0]))
}

func fnMeta(_ *Interp, args []Value) (Value, error) {
	if err := arity("meta", args, 1, 1); err != nil {
		return nil, err
	}
	var m Value
	switch c := args[0].(type) {
	case *Map:
		m = c.Meta
	case *Vector:
		m = c.Meta
	case *List:
		m = c.Meta
	case Symbol:
		m = c.Meta
	}
	return orNil(m), nil
}

func fnEmpty(_ *Interp, args []Value) (Value, error) {
	if err := arity("empty?", args, 1, 1); err != nil {
		return nil, err
	}
	switch x := args[0].(type) {
	case String:
		return mkBool(x.V == ""), nil
	case *Map:
		return mkBool(x.Len() == 0), nil
	}
	items, err := seqArg("empty?", args[0])
	if err != nil {
		return nil, err
	}
	return mkBool(len(items) == 0), nil
}

func fnSeq(_ *Interp, args []Value) (Value, error) {
	if err := arity("seq", args, 1, 1); err != nil {
		return nil, err
	}
	items, err := seqArg("seq", args[0])
	if err != nil {
		return nil, err
	}
	if len(items) == 0 {
		return Nil{}, nil
	}
	return vec(append([]Value(nil), items...)), nil
}

func fnRepeat(in *Interp, args []Value) (Value, error) {
	if err := arity("repeat", args, 2, 2); err != nil {
		return nil, err
	}
	n, err := toInt("repeat", args[0])
	if err != nil {
		return nil, err
	}
	if err := in.checkSize(int(min(max(n, 0), math.MaxInt32)), "repeat result"); err != nil {
		return nil, err
	}
	out := make([]Value, max(n, 0))
	for i := range out {
		out[i] = args[1]
	}
	return vec(out), nil
}

func fnFlatten(in *Interp, args []Value) (Value, error) {
	if err := arity("flatten", args, 1, 1); err != nil {
		return nil, err
	}
	var out []Value
	var walk func(v Value, depth int) error
	walk = func(v Value, depth int) error {
		switch x := v.(type) {
		case *Vector, *List:
			if depth > 1000 {
				return newError(ErrLimit, "flatten: nesting deeper than 1000")
			}
			for _, it := range seqOf(x) {
				if err := walk(it, depth+1); err != nil {
					return err
				}
			}
			return nil
		}
		out = append(out, v)
		return in.checkSize(len(out), "flatten result")
	}
	if err := walk(args[0], 0); err != nil {
		return nil, err
	}
	return vec(out), nil
}

func fnInterleave(_ *Interp, args []Value) (Value, error) {
	colls := make([][]Value, len(args))
	n := math.MaxInt
	for i, a := range args {
		items, err := seqArg("interleave", a)
		if err != nil {
			return nil, err
		}
		colls[i] = items
		n = min(n, len(items))
	}
	if len(args) == 0 {
		n = 0
	}
	out := make([]Value, 0, n*len(args))
	for i := 0; i < n; i++ {
		for _, c := range colls {
			out = append(out, c[i])
		}
	}
	return vec(out), nil
}
