package rtfs

import (
	"math"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// Print returns the canonical form of v: one line, single spaces, map keys in
// their order, numbers in their normalized spelling. Reading the canonical
// form of a data value gives a value Equal to it.
func Print(v Value) string {
	var b strings.Builder
	writeFlat(&b, v, false, 0)
	return b.String()
}

// PrintLimited returns Print(v) when that text is at most limit bytes
// long; otherwise it returns "" and false, having stopped writing once the
// text passed limit. Its cost is bounded by limit (plus the longest single
// string or atom in v), whatever the value: a DAG of shared collections
// whose text would be exponentially long costs no more than limit.
func PrintLimited(v Value, limit int) (string, bool) {
	var b strings.Builder
	writeFlat(&b, v, false, max(limit, 1))
	if b.Len() > limit {
		return "", false
	}
	return b.String(), true
}

// PrintRaw is like Print but keeps numbers spelled as they were written
// (0xFF stays 0xFF); the formatter uses it.
func PrintRaw(v Value) string {
	var b strings.Builder
	writeFlat(&b, v, true, 0)
	return b.String()
}

// FormatFloat returns the canonical spelling of a float: the shortest form
// that reads back as the same float, always with a point or an exponent.
func FormatFloat(f float64) string {
	switch {
	case math.IsNaN(f):
		return "##NaN"
	case math.IsInf(f, 1):
		return "##Inf"
	case math.IsInf(f, -1):
		return "##-Inf"
	}
	s := strconv.FormatFloat(f, 'g', -1, 64)
	if !strings.ContainsAny(s, ".e") {
		s += ".0"
	}
	return s
}

// QuoteString returns s as an RTFS string literal.
func QuoteString(s string) string {
	var b strings.Builder
	writeString(&b, s)
	return b.String()
}

func writeString(b *strings.Builder, s string) {
	b.Grow(len(s) + 2)
	b.WriteByte('"')
	// Runs of bytes that need no escape are copied whole: a long plain
	// string costs one scan and one copy.
	plain := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c >= 0x20 && c != '"' && c != '\\' && c != 0x7f && c < utf8.RuneSelf {
			i++
			continue
		}
		if c >= utf8.RuneSelf {
			if r, size := utf8.DecodeRuneInString(s[i:]); r != utf8.RuneError || size != 1 {
				i += size
				continue
			}
		}
		b.WriteString(s[plain:i])
		switch c {
		case '"':
			b.WriteString(`\"`)
		case '\\':
			b.WriteString(`\\`)
		case '\n':
			b.WriteString(`\n`)
		case '\t':
			b.WriteString(`\t`)
		case '\r':
			b.WriteString(`\r`)
		default:
			if c < 0x20 || c == 0x7f {
				b.WriteString(`\u00`)
				b.WriteByte("0123456789abcdef"[c>>4])
				b.WriteByte("0123456789abcdef"[c&15])
				break
			}
			// Not UTF-8: write the replacement character so that the output
			// is valid text that reads back.
			b.WriteString(`\ufffd`)
		}
		i++
		plain = i
	}
	b.WriteString(s[plain:])
	b.WriteByte('"')
}

func writeMeta(b *strings.Builder, meta Value, raw bool, limit int) {
	if meta == nil {
		return
	}
	b.WriteByte('^')
	writeFlat(b, meta, raw, limit)
	b.WriteByte(' ')
}

// over reports whether a limited print (limit > 0) has passed its limit:
// the writers then stop.
func over(b *strings.Builder, limit int) bool { return limit > 0 && b.Len() > limit }

func writeSeq(b *strings.Builder, open, close byte, items []Value, raw bool, limit int) {
	b.WriteByte(open)
	for i, it := range items {
		if over(b, limit) {
			return
		}
		if i > 0 {
			b.WriteByte(' ')
		}
		writeFlat(b, it, raw, limit)
	}
	b.WriteByte(close)
}

var sugarPrefix = [...]string{
	SugarQuote: "'", SugarQuasiquote: "`", SugarUnquote: "~",
	SugarUnquoteSplicing: "~@", SugarDeref: "@", SugarType: ":",
}

// sugarText returns the prefix a shorthand list is written with. ~ before
// a form written @x needs a space, or the two would read as ~@.
func sugarText(l *List) string {
	if l.Sugar == SugarUnquote {
		if in, ok := l.Items[1].(*List); ok && in.Sugar == SugarDeref && in.Meta == nil {
			return "~ "
		}
	}
	return sugarPrefix[l.Sugar]
}

// writeFlat writes the canonical form of v; a limit > 0 stops it soon
// after b passes that length (see PrintLimited), 0 never.
func writeFlat(b *strings.Builder, v Value, raw bool, limit int) {
	if over(b, limit) {
		return
	}
	switch x := v.(type) {
	case nil:
		b.WriteString("nil")
	case Nil:
		b.WriteString("nil")
	case Bool:
		b.WriteString(strconv.FormatBool(x.V))
	case Int:
		if raw && x.Raw != "" {
			b.WriteString(x.Raw)
		} else {
			b.WriteString(strconv.FormatInt(x.V, 10))
		}
	case Float:
		if raw && x.Raw != "" {
			b.WriteString(x.Raw)
		} else {
			b.WriteString(FormatFloat(x.V))
		}
	case String:
		writeString(b, x.V)
	case Keyword:
		b.WriteByte(':')
		b.WriteString(x.Name)
	case Symbol:
		writeMeta(b, x.Meta, raw, limit)
		b.WriteString(x.Name)
		if x.Type != nil {
			b.WriteByte(':')
			writeFlat(b, x.Type, raw, limit)
		}
	case Timestamp:
		if x.Raw != "" {
			b.WriteString(x.Raw)
		} else {
			b.WriteString(x.T.Format(time.RFC3339Nano))
		}
	case UUID:
		b.WriteString(x.V)
	case Resource:
		b.WriteString(x.URI)
	case *List:
		writeMeta(b, x.Meta, raw, limit)
		switch {
		case x.Sugar == SugarFn && x.Orig != nil:
			b.WriteByte('#')
			writeFlat(b, x.Orig, raw, limit)
		case x.Sugar != SugarNone && x.Sugar != SugarFn && len(x.Items) == 2:
			b.WriteString(sugarText(x))
			writeFlat(b, x.Items[1], raw, limit)
		default:
			writeSeq(b, '(', ')', x.Items, raw, limit)
		}
	case *Vector:
		writeMeta(b, x.Meta, raw, limit)
		writeSeq(b, '[', ']', x.Items, raw, limit)
	case *Map:
		writeMeta(b, x.Meta, raw, limit)
		b.WriteByte('{')
		for i, k := range x.keys {
			if over(b, limit) {
				return
			}
			if i > 0 {
				b.WriteByte(' ')
			}
			writeFlat(b, k, raw, limit)
			b.WriteByte(' ')
			writeFlat(b, x.vals[i], raw, limit)
		}
		b.WriteByte('}')
	default:
		if s, ok := v.(interface{ String() string }); ok {
			b.WriteString(s.String())
		} else {
			b.WriteString("#<" + v.Kind().String() + ">")
		}
	}
}
