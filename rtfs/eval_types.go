package rtfs

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
		case "map":
			return v.Kind() == KindMap
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
