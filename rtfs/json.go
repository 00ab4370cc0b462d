package rtfs

// TreeJSON returns the syntax tree of forms as plain Go values ready for
// encoding/json: each node is an object with "kind", "span" and, by kind,
// "value", "items" (lists and vectors), "entries" (maps, as [key, value]
// pairs), "meta", "type" (annotated symbols) and "sugar" (the shorthand a
// list was written with).
func TreeJSON(forms []Value) []any {
	out := make([]any, len(forms))
	for i, v := range forms {
		out[i] = nodeJSON(v)
	}
	return out
}

var sugarNames = [...]string{
	SugarQuote: "quote", SugarQuasiquote: "quasiquote", SugarUnquote: "unquote",
	SugarUnquoteSplicing: "unquote-splicing", SugarDeref: "deref", SugarFn: "fn", SugarType: "type",
}

func spanJSON(s Span) map[string]any {
	return map[string]any{
		"file": s.File, "line": s.Start.Line, "col": s.Start.Col, "offset": s.Start.Offset,
		"end_line": s.End.Line, "end_col": s.End.Col, "end_offset": s.End.Offset,
	}
}

func nodeJSON(v Value) map[string]any {
	n := map[string]any{"kind": v.Kind().String(), "span": spanJSON(v.Span())}
	switch x := v.(type) {
	case Nil:
		n["value"] = nil
	case Bool:
		n["value"] = x.V
	case Int:
		n["value"] = x.V
		n["raw"] = x.Raw
	case Float:
		// JSON has no NaN or infinities: floats are given as their RTFS text.
		n["value"] = FormatFloat(x.V)
		n["raw"] = x.Raw
	case String:
		n["value"] = x.V
	case Keyword:
		n["value"] = ":" + x.Name
	case Symbol:
		n["value"] = x.Name
		if x.Type != nil {
			n["type"] = nodeJSON(x.Type)
		}
		if x.Meta != nil {
			n["meta"] = nodeJSON(x.Meta)
		}
	case Timestamp, UUID, Resource:
		n["value"] = Print(v)
	case *List:
		n["items"] = TreeJSON(x.Items)
		if x.Sugar != SugarNone {
			n["sugar"] = sugarNames[x.Sugar]
		}
		if x.Meta != nil {
			n["meta"] = nodeJSON(x.Meta)
		}
	case *Vector:
		n["items"] = TreeJSON(x.Items)
		if x.Meta != nil {
			n["meta"] = nodeJSON(x.Meta)
		}
	case *Map:
		entries := make([]any, 0, x.Len())
		for i, k := range x.keys {
			entries = append(entries, []any{nodeJSON(k), nodeJSON(x.vals[i])})
		}
		n["entries"] = entries
		if x.Meta != nil {
			n["meta"] = nodeJSON(x.Meta)
		}
	default:
		n["value"] = Print(v)
	}
	return n
}
