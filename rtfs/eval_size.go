package rtfs

import "strings"

// Collections are immutable and may share structure, so a value built in a
// few steps can be a DAG whose printed form is exponentially large (a loop
// that does (recur [v v]) sixty times). Everything in the evaluator that
// walks a whole value built by a program (printing, hashing, deep equality)
// first bounds its tree size, or prints with a budget.

// treeSize counts the nodes of v as a tree, stopping once the count
// exceeds limit.
func treeSize(v Value, limit int) int {
	n := 0
	var walk func(Value)
	walk = func(v Value) {
		n++
		if n > limit {
			return
		}
		switch x := v.(type) {
		case *Vector:
			for _, it := range x.Items {
				if walk(it); n > limit {
					return
				}
			}
		case *List:
			for _, it := range x.Items {
				if walk(it); n > limit {
					return
				}
			}
		case *Map:
			for i, k := range x.keys {
				if walk(k); n > limit {
					return
				}
				if walk(x.vals[i]); n > limit {
					return
				}
			}
		case *Atom:
			walk(x.V)
		}
	}
	walk(v)
	return n
}

// codeSize counts the nodes of code v and measures its nesting, stopping
// once either exceeds its limit (so that a shared-structure DAG costs no
// more than maxNodes to walk).
func codeSize(v Value, maxNodes, maxDepth int) (nodes int, tooDeep bool) {
	var walk func(Value, int)
	walk = func(v Value, depth int) {
		nodes++
		if nodes > maxNodes || tooDeep {
			return
		}
		if depth > maxDepth {
			tooDeep = true
			return
		}
		switch x := v.(type) {
		case *Vector:
			for _, it := range x.Items {
				walk(it, depth+1)
			}
		case *List:
			for _, it := range x.Items {
				walk(it, depth+1)
			}
		case *Map:
			for i, k := range x.keys {
				walk(k, depth+1)
				walk(x.vals[i], depth+1)
			}
		}
	}
	walk(v, 0)
	return nodes, tooDeep
}

func isCollValue(v Value) bool {
	switch v.(type) {
	case *Vector, *List, *Map, *Atom:
		return true
	}
	return false
}

// checkTree fails when v has more nodes than Limits.MaxCollection.
func (in *Interp) checkTree(v Value, what string) error {
	if !isCollValue(v) {
		return nil
	}
	if n := treeSize(v, in.lim.MaxCollection); n > in.lim.MaxCollection {
		return newError(ErrLimit, "%s: value has more than %d nested elements (Limits.MaxCollection)", what, in.lim.MaxCollection)
	}
	return nil
}

// printBounded writes the canonical form of v to b, stopping (and
// reporting false) once b holds more than limit bytes.
func printBounded(b *strings.Builder, v Value, limit int) bool {
	seq := func(open, close string, items []Value) bool {
		b.WriteString(open)
		for i, it := range items {
			if i > 0 {
				b.WriteByte(' ')
			}
			if !printBounded(b, it, limit) {
				return false
			}
		}
		b.WriteString(close)
		return b.Len() <= limit
	}
	switch x := v.(type) {
	case *Vector:
		return seq("[", "]", x.Items)
	case *List:
		return seq("(", ")", x.Items)
	case *Map:
		b.WriteByte('{')
		for i, k := range x.keys {
			if i > 0 {
				b.WriteByte(' ')
			}
			if !printBounded(b, k, limit) {
				return false
			}
			b.WriteByte(' ')
			if !printBounded(b, x.vals[i], limit) {
				return false
			}
		}
		b.WriteByte('}')
	case *Atom:
		b.WriteString("#<atom ")
		if !printBounded(b, x.V, limit) {
			return false
		}
		b.WriteByte('>')
	default:
		b.WriteString(Print(v))
	}
	return b.Len() <= limit
}

// describe is Describe with a bounded printer: kind and a short excerpt.
func describe(v Value) string {
	var b strings.Builder
	if !printBounded(&b, v, 40) || b.Len() > 40 {
		s := b.String()
		if len(s) > 37 {
			s = s[:37]
		}
		return v.Kind().String() + " " + strings.ToValidUTF8(s, "") + "..."
	}
	return v.Kind().String() + " " + b.String()
}

// short prints v for a message, truncated.
func short(v Value) string {
	var b strings.Builder
	if !printBounded(&b, v, 60) {
		s := b.String()
		if len(s) > 60 {
			s = s[:60]
		}
		return strings.ToValidUTF8(s, "") + "..."
	}
	return b.String()
}
