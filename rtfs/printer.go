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
	writeFlat(&b, v, false)
	return b.String()
}

// PrintRaw is like Print but keeps numbers spelled as they were written
// (0xFF stays 0xFF); the formatter uses it.
func PrintRaw(v Value) string {
	var b strings.Builder
	writeFlat(&b, v, true)
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
	b.WriteByte('"')
	for i := 0; i < len(s); {
		c := s[i]
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
			if c >= utf8.RuneSelf {
				r, size := utf8.DecodeRuneInString(s[i:])
				if r == utf8.RuneError && size == 1 {
					// Not UTF-8: write the replacement character so that
					// the output is valid text that reads back.
					b.WriteString(`\ufffd`)
				} else {
					b.WriteString(s[i : i+size])
				}
				i += size
				continue
			}
			b.WriteByte(c)
		}
		i++
	}
	b.WriteByte('"')
}

func writeMeta(b *strings.Builder, meta Value, raw bool) {
	if meta == nil {
		return
	}
	b.WriteByte('^')
	writeFlat(b, meta, raw)
	b.WriteByte(' ')
}

func writeSeq(b *strings.Builder, open, close byte, items []Value, raw bool) {
	b.WriteByte(open)
	for i, it := range items {
		if i > 0 {
			b.WriteByte(' ')
		}
		writeFlat(b, it, raw)
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

func writeFlat(b *strings.Builder, v Value, raw bool) {
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
		writeMeta(b, x.Meta, raw)
		b.WriteString(x.Name)
		if x.Type != nil {
			b.WriteByte(':')
			writeFlat(b, x.Type, raw)
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
		writeMeta(b, x.Meta, raw)
		switch {
		case x.Sugar == SugarFn && x.Orig != nil:
			b.WriteByte('#')
			writeFlat(b, x.Orig, raw)
		case x.Sugar != SugarNone && x.Sugar != SugarFn && len(x.Items) == 2:
			b.WriteString(sugarText(x))
			writeFlat(b, x.Items[1], raw)
		default:
			writeSeq(b, '(', ')', x.Items, raw)
		}
	case *Vector:
		writeMeta(b, x.Meta, raw)
		writeSeq(b, '[', ']', x.Items, raw)
	case *Map:
		writeMeta(b, x.Meta, raw)
		b.WriteByte('{')
		for i, k := range x.keys {
			if i > 0 {
				b.WriteByte(' ')
			}
			writeFlat(b, k, raw)
			b.WriteByte(' ')
			writeFlat(b, x.vals[i], raw)
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
