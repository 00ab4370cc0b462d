package rtfs

import (
	"strings"
	"unicode/utf8"
)

// DefaultWidth is the line width the formatter aims for.
const DefaultWidth = 80

// Format returns the pretty form of a whole source: every top-level form
// laid out to fit width columns where it can, comments kept where they were
// (before the form they precede, or at the end of the line they ended),
// single blank lines between forms kept, and numbers spelled as written.
// Formatting is idempotent: formatting the output again gives the same text.
func Format(src *Source, width int) string {
	if width <= 0 {
		width = DefaultWidth
	}
	f := &formatter{width: width, comments: src.Comments}
	prevEnd := Pos{}
	for i, v := range src.Forms {
		sp := v.Span()
		if i > 0 || f.ci > 0 {
			f.newline(0)
		}
		if i > 0 && f.blankBefore(prevEnd, sp.Start) {
			f.b.WriteByte('\n')
		}
		f.leadingComments(sp.Start, 0)
		f.form(v, 0)
		next := int(^uint(0) >> 1)
		if i+1 < len(src.Forms) {
			next = src.Forms[i+1].Span().Start.Offset
		}
		f.trailingComment(sp.End, next)
		prevEnd = sp.End
	}
	// Comments after the last form.
	if f.ci < len(f.comments) {
		if len(src.Forms) > 0 {
			f.newline(0)
			if f.blankBefore(prevEnd, f.comments[f.ci].S.Start) {
				f.b.WriteByte('\n')
			}
		}
		f.leadingComments(Pos{Offset: int(^uint(0) >> 1)}, 0)
		f.trimLastNewline()
	}
	out := f.b.String()
	if out != "" {
		out += "\n"
	}
	return out
}

// FormatValue returns the pretty form of one value (no comments).
func FormatValue(v Value, width int) string {
	if width <= 0 {
		width = DefaultWidth
	}
	f := &formatter{width: width}
	f.form(v, 0)
	return f.b.String()
}

type formatter struct {
	b        strings.Builder
	col      int
	width    int
	comments []Comment
	ci       int // next comment to emit
	lastLine int // source line of the last form or comment written
	// inComment is set while the output line ends in a ';' comment, after
	// which nothing but a newline may be written.
	inComment bool
}

func (f *formatter) write(s string) {
	f.b.WriteString(s)
	if i := strings.LastIndexByte(s, '\n'); i >= 0 {
		f.col = utf8.RuneCountInString(s[i+1:])
	} else {
		f.col += utf8.RuneCountInString(s)
	}
}

func (f *formatter) newline(indent int) {
	f.inComment = false
	f.b.WriteByte('\n')
	f.b.WriteString(strings.Repeat(" ", indent))
	f.col = indent
}

func (f *formatter) trimLastNewline() {
	s := strings.TrimRight(f.b.String(), " \n")
	f.b.Reset()
	f.b.WriteString(s)
}

// blankBefore reports whether the source had a blank line between the end
// of the previous form and what comes next: the first comment still to be
// written, or else the next form. Blank lines after comments are kept by
// leadingComments.
func (f *formatter) blankBefore(prevEnd, next Pos) bool {
	line := next.Line
	if f.ci < len(f.comments) && f.comments[f.ci].S.Start.Offset < next.Offset {
		line = f.comments[f.ci].S.Start.Line
	}
	return line-prevEnd.Line > 1
}

// pendingBefore reports whether a comment starts before byte offset off.
func (f *formatter) pendingBefore(off int) bool {
	return f.ci < len(f.comments) && f.comments[f.ci].S.Start.Offset < off
}

// leadingComments writes every comment that starts before next, each on
// its own line at indent, keeping single blank lines that separated them
// from each other and from next. It leaves the output at the start of a
// fresh line.
func (f *formatter) leadingComments(next Pos, indent int) {
	wrote := false
	for f.pendingBefore(next.Offset) {
		c := f.comments[f.ci]
		f.ci++
		if f.lastLine != 0 && c.S.Start.Line-f.lastLine > 1 && f.b.Len() > 0 {
			f.blankLine(indent)
		}
		f.write(c.Text)
		f.lastLine = c.S.End.Line
		f.newline(indent)
		wrote = true
	}
	if wrote && next.Line-f.lastLine > 1 {
		f.blankLine(indent)
	}
}

// blankLine makes the output end in an empty line followed by indent, if
// it does not already.
func (f *formatter) blankLine(indent int) {
	s := strings.TrimRight(f.b.String(), " ")
	if strings.HasSuffix(s, "\n\n") || !strings.HasSuffix(s, "\n") {
		return
	}
	f.b.Reset()
	f.b.WriteString(s)
	f.newline(indent)
}

// trailingComment writes a comment that sits on the line where a form
// ended, after it on the same output line.
func (f *formatter) trailingComment(end Pos, limit int) {
	if f.ci < len(f.comments) {
		c := f.comments[f.ci]
		if c.S.Start.Line == end.Line && c.S.Start.Offset >= end.Offset && c.S.Start.Offset < limit && !c.Block {
			f.ci++
			f.write(" " + c.Text)
			f.inComment = true
		}
	}
	if end.Line > f.lastLine {
		f.lastLine = end.Line
	}
}

// hasComment reports whether a comment lies inside the span of v.
func (f *formatter) hasComment(v Value) bool {
	sp := v.Span()
	if sp.IsZero() {
		return false
	}
	for i := f.ci; i < len(f.comments); i++ {
		o := f.comments[i].S.Start.Offset
		if o >= sp.End.Offset {
			return false
		}
		if o > sp.Start.Offset {
			return true
		}
	}
	return false
}

// fits reports whether s, written at the current column, stays within the
// width and on one line.
func (f *formatter) fits(s string) bool {
	return !strings.Contains(s, "\n") && f.col+utf8.RuneCountInString(s) <= f.width
}

// form writes v starting at the current column; indent is the column of
// its first character.
func (f *formatter) form(v Value, indent int) {
	if sp := v.Span(); sp.Start.Line > f.lastLine {
		// Blank lines before a comment inside v count from where v starts.
		f.lastLine = sp.Start.Line
	}
	if !f.hasComment(v) {
		if flat := PrintRaw(v); f.fits(flat) || !isColl(v) {
			f.write(flat)
			return
		}
	}
	switch x := v.(type) {
	case *List:
		f.list(x)
	case *Vector:
		f.writeMetaPrefix(x.Meta)
		f.seq("[", "]", x.Items, x.S, false)
	case *Map:
		f.writeMetaPrefix(x.Meta)
		f.seq("{", "}", mapItems(x), x.S, true)
	default:
		f.write(PrintRaw(v))
	}
}

func isColl(v Value) bool {
	switch v.(type) {
	case *List, *Vector, *Map:
		return true
	}
	return false
}

func mapItems(m *Map) []Value {
	items := make([]Value, 0, 2*m.Len())
	for i, k := range m.keys {
		items = append(items, k, m.vals[i])
	}
	return items
}

func (f *formatter) writeMetaPrefix(meta Value) {
	if meta != nil {
		f.write("^" + PrintRaw(meta) + " ")
	}
}

func (f *formatter) list(l *List) {
	f.writeMetaPrefix(l.Meta)
	switch {
	case l.Sugar == SugarFn && l.Orig != nil:
		f.write("#")
		f.form(l.Orig, f.col)
		return
	case l.Sugar != SugarNone && l.Sugar != SugarFn && len(l.Items) == 2:
		f.write(sugarText(l))
		f.form(l.Items[1], f.col)
		return
	}
	f.seq("(", ")", l.Items, l.S, false)
}

// seq lays out a broken collection. Lists keep their head (and a first
// argument that is a name) on the opening line and indent the rest by two;
// vectors and maps align items after the bracket. A keyword followed by a
// value stays on one line with it, so (agent.config :k v ...) and maps read
// as one entry per line.
func (f *formatter) seq(open, close string, items []Value, sp Span, isMap bool) {
	start := f.col
	f.write(open)
	indent := start + 1
	// limit(i) is where item i's trailing comment must start before: the
	// next item, or the end of the collection.
	limit := func(i int) int {
		if i+1 < len(items) && !items[i+1].Span().IsZero() {
			return items[i+1].Span().Start.Offset
		}
		if !sp.IsZero() {
			return sp.End.Offset
		}
		return int(^uint(0) >> 1)
	}
	emit := func(i int) {
		f.form(items[i], f.col)
		f.trailingComment(items[i].Span().End, limit(i))
	}
	i := 0
	if open == "(" && len(items) > 0 {
		indent = start + 2
		if _, ok := items[0].(Symbol); ok && !f.pendingBefore(items[0].Span().Start.Offset) {
			emit(0)
			i = 1
			if i < len(items) && keepOnHeadLine(items) && !f.inComment &&
				!f.pendingBefore(items[1].Span().Start.Offset) {
				f.write(" ")
				emit(1)
				i = 2
			}
		}
	}
	first := i == 0
	for i < len(items) {
		itStart := items[i].Span().Start.Offset
		if !first || f.pendingBefore(itStart) {
			f.newline(indent)
			f.leadingComments(items[i].Span().Start, indent)
		}
		first = false
		emit(i)
		pair := isMap && i%2 == 0
		if !isMap {
			pair = isKeyword(items[i]) && i+1 < len(items) && !isKeyword(items[i+1])
		}
		if pair && i+1 < len(items) && !f.inComment && !f.pendingBefore(items[i+1].Span().Start.Offset) {
			f.write(" ")
			emit(i + 1)
			i++
		}
		i++
	}
	if !sp.IsZero() && f.pendingBefore(sp.End.Offset) {
		f.newline(indent)
		f.leadingComments(sp.End, indent)
		// The closer goes on the line after the last comment, at indent.
	} else if f.inComment {
		f.newline(indent)
	}
	f.write(close)
}

func isKeyword(v Value) bool {
	_, ok := v.(Keyword)
	return ok
}

// keepOnHeadLine reports whether the first argument of a list stays on the
// line of its head: names of definitions and binding vectors do, and so
// does any simple argument that does not start keyword/value pairs.
func keepOnHeadLine(items []Value) bool {
	switch items[0].(Symbol).Name {
	case "def", "defn", "defmacro", "fn", "λ", "lambda", "let", "loop", "for", "dotimes", "doseq",
		"step", "plan", "when", "if", "when-not", "if-not", "with-resource", "catch", "deftype", "match", "cond->":
		return true
	}
	switch items[1].(type) {
	case *List, *Vector, *Map:
		return false
	case Keyword:
		return len(items) < 3 || isKeyword(items[2])
	}
	return true
}
