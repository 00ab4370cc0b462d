package rtfs

import "strings"

// primitiveTypes maps the primitive type names usable in annotations to a
// predicate on values.
var primitiveTypes = map[string]func(Value) bool{
	"int":       isKind(KindInt),
	"integer":   isKind(KindInt),
	"float":     isKind(KindFloat),
	"number":    func(v Value) bool { k := v.Kind(); return k == KindInt || k == KindFloat },
	"string":    isKind(KindString),
	"bool":      isKind(KindBool),
	"boolean":   isKind(KindBool),
	"keyword":   isKind(KindKeyword),
	"symbol":    isKind(KindSymbol),
	"map":       isKind(KindMap),
	"vector":    isKind(KindVector),
	"list":      isKind(KindList),
	"nil":       isKind(KindNil),
	"fn":        isKind(KindFunc),
	"function":  isKind(KindFunc),
	"timestamp": isKind(KindTimestamp),
	"uuid":      isKind(KindUUID),
	"resource":  isKind(KindResource),
	"atom":      isKind(KindAtom),
	"error":     isKind(KindError),
	"any":       func(Value) bool { return true },
}

func isKind(k Kind) func(Value) bool { return func(v Value) bool { return v.Kind() == k } }

// typeMatches checks v against a type annotation. It checks primitive type
// names, aliases made with deftype, and the structured forms [:vector T],
// [:list T], [:tuple T...], [:union T...], [:optional T], [:map ...] (the
// value must be a map) and [:and T...]. Other structured types (refinements
// such as [:> 0], capability and resource types) are accepted unchecked.
// It returns the annotation as written for error messages.
func (in *Interp) typeMatches(t, v Value) (bool, string) {
	return in.typeMatchesDepth(t, v, 0), typeString(t)
}

func typeString(t Value) string {
	if k, ok := t.(Keyword); ok {
		return k.Name
	}
	return Print(t)
}

func (in *Interp) typeMatchesDepth(t, v Value, depth int) bool {
	if depth > 32 {
		return true
	}
	switch x := t.(type) {
	case Keyword:
		return in.namedTypeMatches(x.Name, v, depth)
	case Symbol:
		return in.namedTypeMatches(x.Name, v, depth)
	case *Vector:
		if len(x.Items) == 0 {
			return true
		}
		head, ok := x.Items[0].(Keyword)
		if !ok {
			return true
		}
		args := x.Items[1:]
		switch head.Name {
		case "vector", "list":
			if !primitiveTypes[head.Name](v) {
				return false
			}
			if len(args) == 1 {
				for _, it := range seqOf(v) {
					if !in.typeMatchesDepth(args[0], it, depth+1) {
						return false
					}
				}
			}
			return true
		case "tuple":
			items := seqOf(v)
			if v.Kind() != KindVector || len(items) != len(args) {
				return false
			}
			for i, a := range args {
				if !in.typeMatchesDepth(a, items[i], depth+1) {
					return false
				}
			}
			return true
		case "union", "or":
			for _, a := range args {
				if in.typeMatchesDepth(a, v, depth+1) {
					return true
				}
			}
			return false
		case "optional":
			return v.Kind() == KindNil || len(args) == 0 || in.typeMatchesDepth(args[0], v, depth+1)
		case "and":
			for _, a := range args {
				if !in.typeMatchesDepth(a, v, depth+1) {
					return false
				}
			}
			return true
		case "map", "record":
			return in.recordMatches(args, v, depth)
		case "map-of", "dict":
			m, ok := v.(*Map)
			if !ok {
				return false
			}
			if len(args) == 2 {
				for i, k := range m.keys {
					if !in.typeMatchesDepth(args[0], k, depth+1) || !in.typeMatchesDepth(args[1], m.vals[i], depth+1) {
						return false
					}
				}
			}
			return true
		case "fn":
			return v.Kind() == KindFunc
		}
	}
	return true
}

func (in *Interp) namedTypeMatches(name string, v Value, depth int) bool {
	if p, ok := primitiveTypes[name]; ok {
		return p(v)
	}
	if alias, ok := in.types[name]; ok {
		return in.typeMatchesDepth(alias, v, depth+1)
	}
	if n := len(name); n > 1 && name[n-1] == '?' {
		// :string? is [:optional :string] (spec 02).
		return v.Kind() == KindNil || in.namedTypeMatches(name[:n-1], v, depth+1)
	}
	if c := name[0]; c >= 'A' && c <= 'Z' {
		// Integer, String, ...: the capitalised spelling of a primitive.
		if p, ok := primitiveTypes[strings.ToLower(name)]; ok {
			return p(v)
		}
	}
	return true // a name the evaluator does not know is documentation
}

// isTypeName reports whether name is a type the evaluator checks: a
// primitive (also capitalised or with ? for optional) or a deftype alias.
func (in *Interp) isTypeName(name string) bool {
	if n := len(name); n > 1 && name[n-1] == '?' {
		name = name[:n-1]
	}
	if _, ok := primitiveTypes[name]; ok {
		return true
	}
	if _, ok := primitiveTypes[strings.ToLower(name)]; ok && name[0] >= 'A' && name[0] <= 'Z' {
		return true
	}
	_, ok := in.types[name]
	return ok
}

// recordMatches checks a map against [:map ...] / [:record ...] fields,
// written [:key T], [:key {:optional true} T] or as one map {:key T}.
// Required keys must be present with a matching value; other keys are
// allowed (spec 03 §8.2).
func (in *Interp) recordMatches(fields []Value, v Value, depth int) bool {
	m, ok := v.(*Map)
	if !ok {
		return false
	}
	check := func(key, typ Value, optional bool) bool {
		x, ok := m.Get(key)
		if !ok {
			return optional
		}
		return in.typeMatchesDepth(typ, x, depth+1)
	}
	for _, f := range fields {
		switch x := f.(type) {
		case *Vector:
			if len(x.Items) < 2 {
				continue
			}
			optional := false
			if len(x.Items) == 3 {
				if props, ok := x.Items[1].(*Map); ok {
					if o, ok := props.GetKeyword("optional"); ok {
						optional = Truthy(o)
					}
				}
			}
			if !check(x.Items[0], x.Items[len(x.Items)-1], optional) {
				return false
			}
		case *Map:
			for i, k := range x.keys {
				if !check(k, x.vals[i], false) {
					return false
				}
			}
		}
	}
	return true
}

// seqOf returns the elements of a vector or list (nil for anything else).
func seqOf(v Value) []Value {
	switch x := v.(type) {
	case *Vector:
		return x.Items
	case *List:
		return x.Items
	}
	return nil
}
