package rtfs

import (
	"fmt"
	"math"
	"regexp"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// DefaultMaxDepth bounds the nesting of collections accepted by the reader.
const DefaultMaxDepth = 1000

// DefaultMaxErrors bounds how many problems one pass reports.
const DefaultMaxErrors = 50

// ReadOptions tune the reader. The zero value uses the defaults.
type ReadOptions struct {
	// MaxDepth is the deepest collection nesting accepted (DefaultMaxDepth if 0).
	MaxDepth int
	// MaxErrors is how many errors are collected before reading stops
	// (DefaultMaxErrors if 0).
	MaxErrors int
}

// Comment is a comment as written: ";..." to the end of its line, or a
// "#| ... |#" block.
type Comment struct {
	Text  string
	S     Span
	Block bool
}

// Source is the result of reading a whole text: its top-level forms and its
// comments, in order.
type Source struct {
	File     string
	Forms    []Value
	Comments []Comment
}

// Read reads every top-level form of src. On problems it returns the forms
// it could read and an ErrorList naming every problem it found; reading
// continues past a problem wherever the rest of the input can still be
// understood.
func Read(src []byte, file string, opts ReadOptions) (*Source, error) {
	r := &reader{src: src, file: file, line: 1, col: 1, opts: opts}
	if r.opts.MaxDepth <= 0 {
		r.opts.MaxDepth = DefaultMaxDepth
	}
	if r.opts.MaxErrors <= 0 {
		r.opts.MaxErrors = DefaultMaxErrors
	}
	out := &Source{File: file}
	if len(src) >= 3 && src[0] == 0xEF && src[1] == 0xBB && src[2] == 0xBF {
		r.off = 3
	}
	if !utf8.Valid(src) {
		r.invalidUTF8()
	}
	for !r.stopped {
		r.skipSpace()
		if r.off >= len(r.src) {
			break
		}
		c := r.src[r.off]
		if isCloser(c) {
			r.strayCloser(c)
			r.advance()
			continue
		}
		start := r.pos()
		v := r.readForm()
		if v == nil {
			continue
		}
		out.Forms = append(out.Forms, v)
		switch v.(type) {
		case *List, *Vector, *Map:
			r.lastTop = append(r.lastTop, topForm{v: v, open: start, close: r.lastClose})
		}
	}
	out.Comments = r.comments
	if len(r.errs) > 0 {
		return out, r.errs
	}
	return out, nil
}

// ReadString reads every top-level form of src.
func ReadString(src, file string) ([]Value, error) {
	s, err := Read([]byte(src), file, ReadOptions{})
	if err != nil {
		return nil, err
	}
	return s.Forms, nil
}

// ReadOne reads a text that must hold exactly one form.
func ReadOne(src, file string) (Value, error) {
	s, err := Read([]byte(src), file, ReadOptions{})
	if err != nil {
		return nil, err
	}
	switch len(s.Forms) {
	case 1:
		return s.Forms[0], nil
	case 0:
		return nil, ErrorList{{File: file, Pos: Pos{Line: 1, Col: 1}, Msg: "expected one form, found none"}}
	}
	second := s.Forms[1].Span()
	return nil, ErrorList{{File: file, Pos: second.Start,
		Msg:  fmt.Sprintf("expected one form, found %d; this is the second", len(s.Forms)),
		Hint: "wrap the forms in (do ...) or remove the extra ones"}}
}

type openForm struct {
	open  byte
	pos   Pos
	label string
}

type topForm struct {
	v           Value
	open, close Pos
}

type reader struct {
	src       []byte
	file      string
	off       int
	line, col int
	opts      ReadOptions
	errs      ErrorList
	comments  []Comment
	stack     []openForm
	lastTop   []topForm
	lastClose Pos
	stopped   bool
	// scratch holds the items of every collection being read, innermost
	// last; each collection copies its own items out when it closes.
	scratch []Value
	// names interns symbol and keyword names: plans repeat few names many
	// times.
	names map[string]string
}

// intern returns a shared copy of the name held in b.
func (r *reader) intern(b []byte) string {
	if s, ok := r.names[string(b)]; ok {
		return s
	}
	if r.names == nil {
		r.names = make(map[string]string, 64)
	}
	s := string(b)
	r.names[s] = s
	return s
}

func (r *reader) pos() Pos { return Pos{Line: r.line, Col: r.col, Offset: r.off} }

func (r *reader) span(start Pos) Span { return Span{File: r.file, Start: start, End: r.pos()} }

func (r *reader) advance() {
	if r.off >= len(r.src) {
		return
	}
	c := r.src[r.off]
	r.off++
	if c == '\n' {
		r.line++
		r.col = 1
	} else if c&0xC0 != 0x80 {
		r.col++
	}
}

// advanceToken moves past n bytes known to hold no newline.
func (r *reader) advanceToken(n int) {
	end := min(r.off+n, len(r.src))
	for _, c := range r.src[r.off:end] {
		if c&0xC0 != 0x80 {
			r.col++
		}
	}
	r.off = end
}

func (r *reader) errAt(p Pos, hint, format string, args ...any) {
	if r.stopped {
		return
	}
	r.errs = append(r.errs, &SyntaxError{File: r.file, Pos: p, Msg: fmt.Sprintf(format, args...), Hint: hint})
	if len(r.errs) >= r.opts.MaxErrors {
		r.errs = append(r.errs, &SyntaxError{File: r.file, Pos: p, Msg: fmt.Sprintf("too many errors (%d); stopped reading", len(r.errs))})
		r.stop()
	}
}

// invalidUTF8 reports the first byte that is not UTF-8 and stops: RTFS
// text is UTF-8, and guessing another encoding would change its meaning.
func (r *reader) invalidUTF8() {
	for r.off < len(r.src) {
		c, size := utf8.DecodeRune(r.src[r.off:])
		if c == utf8.RuneError && size == 1 {
			r.errAt(r.pos(), "save the file as UTF-8", "invalid UTF-8 byte 0x%02x", r.src[r.off])
			r.stop()
			return
		}
		r.advanceToken(size)
		if c == '\n' {
			r.line++
			r.col = 1
		}
	}
}

// stop ends reading: the rest of the input cannot be understood.
func (r *reader) stop() {
	r.stopped = true
	r.off = len(r.src)
}

func isSpace(c byte) bool {
	return c == ' ' || c == '\n' || c == '\t' || c == '\r' || c == ',' || c == '\f' || c == '\v'
}

func isCloser(c byte) bool { return c == ')' || c == ']' || c == '}' }

func isDelimiter(c byte) bool {
	return isSpace(c) || c == '(' || c == ')' || c == '[' || c == ']' || c == '{' || c == '}' || c == '"' || c == ';'
}

func closerOf(open byte) byte {
	switch open {
	case '(':
		return ')'
	case '[':
		return ']'
	}
	return '}'
}

func collName(open byte) string {
	switch open {
	case '(', ')':
		return "list"
	case '[', ']':
		return "vector"
	}
	return "map"
}

// skipSpace skips white space and comments, recording the comments.
func (r *reader) skipSpace() {
	for r.off < len(r.src) {
		c := r.src[r.off]
		switch {
		case isSpace(c):
			r.advance()
		case c == ';':
			start := r.pos()
			for r.off < len(r.src) && r.src[r.off] != '\n' {
				r.advance()
			}
			// Trailing white space is not part of a comment's text.
			text := strings.TrimRight(string(r.src[start.Offset:r.off]), " \t\r\f\v")
			r.comments = append(r.comments, Comment{Text: text, S: r.span(start)})
		case c == '#' && r.off+1 < len(r.src) && r.src[r.off+1] == '|':
			r.blockComment()
		default:
			return
		}
	}
}

// blockComment skips a #| ... |# comment; such comments nest.
func (r *reader) blockComment() {
	start := r.pos()
	r.advance()
	r.advance()
	depth := 1
	for r.off < len(r.src) {
		if r.src[r.off] == '|' && r.off+1 < len(r.src) && r.src[r.off+1] == '#' {
			r.advance()
			r.advance()
			depth--
			if depth == 0 {
				r.comments = append(r.comments, Comment{Text: string(r.src[start.Offset:r.off]), S: r.span(start), Block: true})
				return
			}
			continue
		}
		if r.src[r.off] == '#' && r.off+1 < len(r.src) && r.src[r.off+1] == '|' {
			r.advance()
			depth++
		}
		r.advance()
	}
	r.errAt(start, "close it with |#", "unterminated block comment: '#|' opened here is not closed before the end of the input")
	r.stop()
}

// readForm reads one form at the current position, which holds neither
// space nor a closing bracket. It returns nil when nothing could be read.
func (r *reader) readForm() Value {
	start := r.pos()
	c := r.src[r.off]
	switch c {
	case '(', '[', '{':
		return r.readColl(c)
	case '"':
		return r.readString()
	case '\'':
		return r.readPrefixed(SugarQuote, "quote", 1)
	case '`':
		return r.readPrefixed(SugarQuasiquote, "quasiquote", 1)
	case '~':
		if r.off+1 < len(r.src) && r.src[r.off+1] == '@' {
			return r.readPrefixed(SugarUnquoteSplicing, "unquote-splicing", 2)
		}
		return r.readPrefixed(SugarUnquote, "unquote", 1)
	case '@':
		return r.readPrefixed(SugarDeref, "deref", 1)
	case '^':
		return r.readMeta()
	case '#':
		return r.readDispatch()
	case ':':
		if r.off+1 < len(r.src) && (r.src[r.off+1] == '[' || r.src[r.off+1] == '(') {
			r.advance()
			inner := r.readForm()
			if inner == nil {
				return nil
			}
			return &List{Items: []Value{Symbol{Name: "type-annotation", S: r.span(start)}, inner}, Sugar: SugarType, S: r.span(start)}
		}
	}
	return r.readAtom()
}

// readNext reads the form that a prefix such as ' or ^ applies to.
func (r *reader) readNext(prefixPos Pos, what string) Value {
	r.skipSpace()
	if r.off >= len(r.src) || isCloser(r.src[r.off]) {
		found := "the end of the input"
		if r.off < len(r.src) {
			found = fmt.Sprintf("'%c'", r.src[r.off])
		}
		r.errAt(prefixPos, "", "expected a form after %s, found %s", what, found)
		return nil
	}
	return r.readForm()
}

func (r *reader) readPrefixed(s Sugar, head string, n int) Value {
	start := r.pos()
	prefix := string(r.src[r.off : r.off+n])
	r.advanceToken(n)
	v := r.readNext(start, "'"+prefix+"'")
	if v == nil {
		return nil
	}
	return &List{Items: []Value{Symbol{Name: head, S: r.spanOf(start, n)}, v}, Sugar: s, S: r.span(start)}
}

func (r *reader) spanOf(start Pos, n int) Span {
	end := start
	end.Offset += n
	end.Col += utf8.RuneCount(r.src[start.Offset : start.Offset+n])
	return Span{File: r.file, Start: start, End: end}
}

func (r *reader) readMeta() Value {
	start := r.pos()
	r.advance()
	meta := r.readNext(start, "'^'")
	if meta == nil {
		return nil
	}
	switch meta.(type) {
	case *Map, Keyword:
	default:
		r.errAt(meta.Span().Start, "write ^{:key value} or ^:flag", "metadata must be a map or a keyword, found %s", Describe(meta))
		return r.readNext(start, "metadata")
	}
	target := r.readNext(start, "metadata")
	if target == nil {
		return nil
	}
	switch t := target.(type) {
	case Symbol:
		t.Meta = mergeMeta(t.Meta, meta)
		t.S.Start = start
		return t
	case *List:
		t.Meta = mergeMeta(t.Meta, meta)
		t.S.Start = start
	case *Vector:
		t.Meta = mergeMeta(t.Meta, meta)
		t.S.Start = start
	case *Map:
		t.Meta = mergeMeta(t.Meta, meta)
		t.S.Start = start
	default:
		r.errAt(start, "remove the metadata", "metadata can be attached only to a symbol or a collection, not to %s", Describe(target))
	}
	return target
}

// mergeMeta combines metadata written as ^a ^b x into one map; a single
// piece of metadata is kept as written.
func mergeMeta(inner, outer Value) Value {
	if inner == nil {
		return outer
	}
	m := NewMap(4)
	for _, part := range []Value{outer, inner} {
		switch p := part.(type) {
		case Keyword:
			m.Set(p, Bool{V: true})
		case *Map:
			for i, k := range p.Keys() {
				m.Set(k, p.Vals()[i])
			}
		}
	}
	return m
}

func (r *reader) readDispatch() Value {
	start := r.pos()
	if r.off+1 >= len(r.src) {
		r.advance()
		r.errAt(start, "", "expected a dispatch character after '#', found the end of the input")
		return nil
	}
	switch r.src[r.off+1] {
	case '#':
		r.advanceToken(2)
		tok := r.token()
		r.advanceToken(len(tok))
		var f float64
		switch tok {
		case "Inf":
			f = math.Inf(1)
		case "-Inf":
			f = math.Inf(-1)
		case "NaN":
			f = math.NaN()
		default:
			r.errAt(start, "use ##Inf, ##-Inf or ##NaN", "unknown special number ##%s", tok)
			return Nil{S: r.span(start)}
		}
		return Float{V: f, Raw: "##" + tok, S: r.span(start)}
	case '(':
		r.advance()
		return r.readAnonFn(start)
	case '{':
		r.advance()
		r.errAt(start, "use a vector [...] and distinct", "set literals #{...} are not part of RTFS")
		v := r.readColl('{')
		_ = v
		return Nil{S: r.span(start)}
	case '_':
		r.advanceToken(2)
		r.readNext(start, "'#_'")
		return nil
	}
	_, size := utf8.DecodeRune(r.src[r.off+1:])
	bad := string(r.src[r.off+1 : r.off+1+size])
	r.advance()
	if bad == `"` {
		r.errAt(start, `regular expressions are strings, with backslashes doubled: (re-find "\\d+" s)`, "RTFS has no regex literal #\"...\"")
		return nil
	}
	r.errAt(start, "'#' starts only ##Inf ##-Inf ##NaN, #(...) and #| comments |#", "unknown dispatch '#%s'", bad)
	return nil
}

// readAnonFn reads #( ... ) into (fn [%1 ...] ( ... )), numbering the
// parameters after the highest %N used; a bare % is the first parameter.
func (r *reader) readAnonFn(start Pos) Value {
	for _, o := range r.stack {
		if o.label == "#(" {
			r.errAt(start, "use (fn [x] ...) for the inner function", "#(...) functions cannot be nested; the outer one opened at line %d col %d", o.pos.Line, o.pos.Col)
		}
	}
	body := r.readCollLabel('(', "#(")
	if body == nil {
		return nil
	}
	bare, maxN, rest := false, 0, false
	walk(body, func(v Value) {
		s, ok := v.(Symbol)
		if !ok || !strings.HasPrefix(s.Name, "%") {
			return
		}
		switch n := s.Name[1:]; {
		case n == "":
			bare = true
		case n == "&":
			rest = true
		default:
			if i, err := strconv.Atoi(n); err == nil && i > 0 && i <= 20 {
				maxN = max(maxN, i)
			} else {
				r.errAt(s.S.Start, "use %, %1 to %20 or %&", "invalid parameter %s in #(...)", s.Name)
			}
		}
	})
	var params []Value
	var fnBody Value = body
	switch {
	case maxN == 0 && bare:
		params = []Value{Symbol{Name: "%"}}
	default:
		for i := 1; i <= maxN; i++ {
			params = append(params, Symbol{Name: "%" + strconv.Itoa(i)})
		}
		if bare {
			fnBody = NewList(Symbol{Name: "let"}, NewVector(Symbol{Name: "%"}, Symbol{Name: "%1"}), body)
		}
	}
	if rest {
		params = append(params, Symbol{Name: "&"}, Symbol{Name: "%&"})
	}
	sp := r.span(start)
	return &List{Items: []Value{Symbol{Name: "fn", S: sp}, &Vector{Items: params, S: sp}, fnBody}, Sugar: SugarFn, Orig: body, S: sp}
}

// walk calls f on v and every value nested in it.
func walk(v Value, f func(Value)) {
	f(v)
	switch x := v.(type) {
	case *List:
		for _, it := range x.Items {
			walk(it, f)
		}
	case *Vector:
		for _, it := range x.Items {
			walk(it, f)
		}
	case *Map:
		for i, k := range x.keys {
			walk(k, f)
			walk(x.vals[i], f)
		}
	}
}

func (r *reader) readColl(open byte) Value { return r.readCollLabel(open, "") }

func (r *reader) readCollLabel(open byte, label string) Value {
	start := r.pos()
	if len(r.stack) >= r.opts.MaxDepth {
		r.errAt(start, "flatten the data", "nesting is deeper than %d levels", r.opts.MaxDepth)
		r.stop()
		return nil
	}
	r.advance()
	r.stack = append(r.stack, openForm{open: open, pos: start, label: label})
	defer func() { r.stack = r.stack[:len(r.stack)-1] }()
	close := closerOf(open)
	base := len(r.scratch)
	defer func() { r.scratch = r.scratch[:base] }()
	for {
		r.skipSpace()
		if r.stopped {
			return nil
		}
		if r.off >= len(r.src) {
			r.errAt(start, fmt.Sprintf("add '%c' where the %s should end", close, collName(open)),
				"unclosed %s: %s opened here is not closed before the end of the input at line %d; expected '%c'",
				collName(open), describeOpen(open, r.scratch[base:]), r.line, close)
			r.stop()
			return nil
		}
		c := r.src[r.off]
		if c == close {
			r.advance()
			break
		}
		if isCloser(c) {
			// A closer of the wrong kind: when some enclosing form takes it,
			// it is most likely a typo for this form's closer and closes
			// it; otherwise it closes nothing and is skipped.
			closesThis := r.mismatched(c, open, start, r.scratch[base:])
			r.advance()
			if closesThis {
				break
			}
			continue
		}
		if v := r.readForm(); v != nil {
			r.scratch = append(r.scratch, v)
		}
	}
	var items []Value
	if n := len(r.scratch) - base; n > 0 {
		items = make([]Value, n)
		copy(items, r.scratch[base:])
	}
	r.lastClose = r.pos()
	sp := r.span(start)
	switch open {
	case '(':
		return &List{Items: items, S: sp}
	case '[':
		return &Vector{Items: items, S: sp}
	}
	return r.buildMap(items, sp)
}

func describeOpen(open byte, items []Value) string {
	switch open {
	case '(':
		if len(items) > 0 {
			if s, ok := items[0].(Symbol); ok {
				return "(" + s.Name + " ...)"
			}
		}
		return "'('"
	case '[':
		return "'['"
	}
	return "'{'"
}

// mismatched reports a closing bracket c that does not close the innermost
// open form. It returns whether an enclosing form could take c.
func (r *reader) mismatched(c byte, open byte, start Pos, items []Value) bool {
	p := r.pos()
	enclosing := -1
	for i := len(r.stack) - 2; i >= 0; i-- {
		if closerOf(r.stack[i].open) == c {
			enclosing = i
			break
		}
	}
	r.errAt(p, fmt.Sprintf("write '%c' here if this closes the %s, or add the missing '%c' before it", closerOf(open), collName(open), closerOf(open)),
		"unexpected '%c': the innermost open form is the %s %s opened at line %d col %d, which needs '%c'",
		c, collName(open), describeOpen(open, items), start.Line, start.Col, closerOf(open))
	return enclosing >= 0
}

// strayCloser reports a closing bracket at the top level, naming the last
// top-level form it could have been meant to close.
func (r *reader) strayCloser(c byte) {
	p := r.pos()
	hint := fmt.Sprintf("delete this '%c', or move the forms before it inside the form it was meant to close", c)
	for i := len(r.lastTop) - 1; i >= 0; i-- {
		t := r.lastTop[i]
		if closerOf(openOf(t.v)) != c {
			continue
		}
		r.errAt(p, hint, "unexpected '%c': nothing is open here; the %s %s opened at line %d col %d was already closed at line %d col %d",
			c, collName(c), describeValue(t.v), t.open.Line, t.open.Col, t.close.Line, t.close.Col-1)
		return
	}
	r.errAt(p, hint, "unexpected '%c': nothing is open here", c)
}

func openOf(v Value) byte {
	switch v.(type) {
	case *List:
		return '('
	case *Vector:
		return '['
	}
	return '{'
}

func describeValue(v Value) string {
	if l, ok := v.(*List); ok {
		return describeOpen('(', l.Items)
	}
	return describeOpen(openOf(v), nil)
}

func (r *reader) buildMap(items []Value, sp Span) *Map {
	m := NewMap(len(items) / 2)
	m.S = sp
	if len(items)%2 != 0 {
		last := items[len(items)-1]
		r.errAt(sp.Start, "add the missing key or value, or remove the extra form",
			"map has an odd number of forms (%d): the %s at line %d col %d has no value",
			len(items), Describe(last), last.Span().Start.Line, last.Span().Start.Col)
		items = items[:len(items)-1]
	}
	for i := 0; i < len(items); i += 2 {
		k := items[i]
		if j := m.find(k); j >= 0 {
			first := m.keys[j].Span().Start
			r.errAt(k.Span().Start, "remove one of the two entries",
				"duplicate map key %s; it was first written at line %d col %d", Print(k), first.Line, first.Col)
			continue
		}
		m.Set(k, items[i+1])
	}
	return m
}

func (r *reader) readString() Value {
	start := r.pos()
	r.advance()
	var b strings.Builder
	for {
		if r.off >= len(r.src) {
			r.errAt(start, "add the closing '\"'", "unterminated string: the string opened here is not closed before the end of the input")
			r.stop()
			return nil
		}
		c := r.src[r.off]
		if c == '"' {
			r.advance()
			return String{V: b.String(), S: r.span(start)}
		}
		if c != '\\' {
			// Copy a run of plain bytes at once.
			j := r.off
			for j < len(r.src) && r.src[j] != '"' && r.src[j] != '\\' && r.src[j] != '\n' {
				j++
			}
			if j == r.off {
				j++
			}
			b.Write(r.src[r.off:j])
			for r.off < j {
				r.advance()
			}
			continue
		}
		r.readEscape(&b)
	}
}

func (r *reader) readEscape(b *strings.Builder) {
	esc := r.pos()
	r.advance()
	if r.off >= len(r.src) {
		return
	}
	c := r.src[r.off]
	switch c {
	case 'n':
		b.WriteByte('\n')
	case 't':
		b.WriteByte('\t')
	case 'r':
		b.WriteByte('\r')
	case '\\':
		b.WriteByte('\\')
	case '"':
		b.WriteByte('"')
	case 'u':
		r.advance()
		b.WriteRune(r.readUnicodeEscape(esc))
		return
	default:
		_, size := utf8.DecodeRune(r.src[r.off:])
		r.errAt(esc, `valid escapes are \n \t \r \\ \" and \uXXXX`, "invalid escape '\\%s' in string", string(r.src[r.off:r.off+size]))
		b.Write(r.src[r.off : r.off+size])
		r.advanceToken(size)
		return
	}
	r.advance()
}

// readUnicodeEscape reads the XXXX of \uXXXX (the reader is past the 'u'),
// joining a UTF-16 surrogate pair written as two escapes.
func (r *reader) readUnicodeEscape(esc Pos) rune {
	hex4 := func() (rune, bool) {
		if r.off+4 > len(r.src) {
			return 0, false
		}
		n, err := strconv.ParseUint(string(r.src[r.off:r.off+4]), 16, 32)
		if err != nil {
			return 0, false
		}
		r.advanceToken(4)
		return rune(n), true
	}
	v, ok := hex4()
	if !ok {
		r.errAt(esc, `write exactly four hexadecimal digits, as in \u00e9`, "invalid unicode escape: '\\u' must be followed by four hexadecimal digits")
		return utf8.RuneError
	}
	if v >= 0xD800 && v < 0xDC00 {
		if r.off+2 <= len(r.src) && r.src[r.off] == '\\' && r.src[r.off+1] == 'u' {
			save := *r
			r.advanceToken(2)
			if lo, ok := hex4(); ok && lo >= 0xDC00 && lo < 0xE000 {
				return (v-0xD800)<<10 + (lo - 0xDC00) + 0x10000
			}
			*r = save
		}
		r.errAt(esc, "a high surrogate must be followed by a low surrogate escape (\\uDC00-\\uDFFF)", "invalid unicode escape: unpaired surrogate \\u%04X", v)
		return utf8.RuneError
	}
	if v >= 0xDC00 && v < 0xE000 {
		r.errAt(esc, "", "invalid unicode escape: unpaired surrogate \\u%04X", v)
		return utf8.RuneError
	}
	return v
}

// token returns the bytes from the current position to the next delimiter.
func (r *reader) token() string {
	j := r.off
	for j < len(r.src) && !isDelimiter(r.src[j]) {
		j++
	}
	if j == r.off {
		return ""
	}
	if c := r.src[r.off]; (c >= '0' && c <= '9') || c == '+' || c == '-' {
		// Numbers vary too much to be worth interning.
		return string(r.src[r.off:j])
	}
	return r.intern(r.src[r.off:j])
}

var (
	reRadix     = regexp.MustCompile(`^([+-]?)0([xXoObB])([0-9a-zA-Z_]+)$`)
	reRatio     = regexp.MustCompile(`^([+-]?[0-9]+)/([0-9]+)$`)
	reUUID      = regexp.MustCompile(`^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$`)
	reTimestamp = regexp.MustCompile(`^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]+)?(Z|[+-][0-9]{2}:[0-9]{2})$`)
)

func (r *reader) readAtom() Value {
	start := r.pos()
	tok := r.token()
	if tok == "" {
		// A lone character that starts no form, e.g. a stray '#'.
		_, size := utf8.DecodeRune(r.src[r.off:])
		r.advanceToken(size)
		r.errAt(start, "", "unexpected character %q", r.src[start.Offset:r.off])
		return nil
	}
	r.advanceToken(len(tok))
	sp := r.span(start)
	v := r.classify(tok, sp)
	// name:[...] annotates a binding name with a structured type.
	if s, ok := v.(Symbol); ok && strings.HasSuffix(s.Name, ":") && len(s.Name) > 1 &&
		r.off < len(r.src) && (r.src[r.off] == '[' || r.src[r.off] == '(') {
		s.Name = s.Name[:len(s.Name)-1]
		s.Type = r.readForm()
		s.S = r.span(start)
		return s
	}
	return v
}

func (r *reader) classify(tok string, sp Span) Value {
	c := tok[0]
	switch {
	case c == ':':
		return r.keyword(tok, sp)
	case c >= '0' && c <= '9', (c == '+' || c == '-') && len(tok) > 1 && tok[1] >= '0' && tok[1] <= '9':
		if isUUID(tok) {
			return UUID{V: strings.ToLower(tok), S: sp}
		}
		return r.number(tok, sp)
	case c == '.' && len(tok) > 1 && tok[1] >= '0' && tok[1] <= '9':
		r.errAt(sp.Start, "write a digit before the point, as in 0"+tok, "invalid number %s", tok)
		return Nil{S: sp}
	}
	switch tok {
	case "nil":
		return Nil{S: sp}
	case "true":
		return Bool{V: true, S: sp}
	case "false":
		return Bool{V: false, S: sp}
	}
	if strings.HasPrefix(tok, "resource://") {
		if len(tok) == len("resource://") {
			r.errAt(sp.Start, "write resource://<provider>/<path>", "empty resource handle")
		}
		return Resource{URI: tok, S: sp}
	}
	if isUUID(tok) {
		return UUID{V: strings.ToLower(tok), S: sp}
	}
	if bad, ok := badSymbolRune(tok); ok {
		r.errAt(sp.Start, "", "invalid character %q in symbol %s", bad, tok)
		return Nil{S: sp}
	}
	return Symbol{Name: tok, S: sp}
}

func isUUID(tok string) bool {
	return len(tok) == 36 && tok[8] == '-' && reUUID.MatchString(tok)
}

func (r *reader) keyword(tok string, sp Span) Value {
	name := tok[1:]
	switch {
	case name == "":
		// A lone colon separates a name from its type annotation, as in
		// (defn add [a : int b : int] : int ...) (spec 03 §8.4).
		return Symbol{Name: ":", S: sp}
	case name[0] == ':':
		r.errAt(sp.Start, "write :"+strings.TrimLeft(name, ":"), "invalid keyword %s: auto-resolved keywords (::) are not part of RTFS", tok)
		return Nil{S: sp}
	case strings.HasSuffix(name, "/") && name != "/":
		r.errAt(sp.Start, "", "invalid keyword %s: the name after '/' is missing", tok)
		return Nil{S: sp}
	}
	if bad, ok := badSymbolRune(name); ok {
		r.errAt(sp.Start, "", "invalid character %q in keyword %s", bad, tok)
		return Nil{S: sp}
	}
	return Keyword{Name: name, S: sp}
}

// badSymbolRune returns the first character that may not appear in a symbol
// or keyword name.
func badSymbolRune(s string) (rune, bool) {
	for _, c := range s {
		if c < utf8.RuneSelf {
			if (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') {
				continue
			}
			if strings.ContainsRune("*+!-_'?<>=/.:$%&|", c) {
				continue
			}
			return c, true
		}
		if unicode.IsLetter(c) || unicode.IsDigit(c) || unicode.IsSymbol(c) || unicode.IsMark(c) {
			continue
		}
		return c, true
	}
	return 0, false
}

// numberShape classifies a token as a decimal integer (1), a decimal float
// (2) or neither (0) without regular expressions: this is the reader's
// hottest path.
func numberShape(tok string) int {
	i := 0
	if i < len(tok) && (tok[i] == '+' || tok[i] == '-') {
		i++
	}
	digits := func() int {
		j := i
		for i < len(tok) && tok[i] >= '0' && tok[i] <= '9' {
			i++
		}
		return i - j
	}
	if digits() == 0 {
		return 0
	}
	if i == len(tok) {
		return 1
	}
	if tok[i] == '.' {
		i++
		if digits() == 0 {
			return 0
		}
		if i == len(tok) {
			return 2
		}
	}
	if tok[i] != 'e' && tok[i] != 'E' {
		return 0
	}
	i++
	if i < len(tok) && (tok[i] == '+' || tok[i] == '-') {
		i++
	}
	if digits() == 0 || i != len(tok) {
		return 0
	}
	return 2
}

func (r *reader) number(tok string, sp Span) Value {
	shape := numberShape(tok)
	switch {
	case shape == 1:
		n, err := strconv.ParseInt(tok, 10, 64)
		if err != nil {
			r.errAt(sp.Start, "integers are 64-bit: from -9223372036854775808 to 9223372036854775807; write a float (with .0) for larger magnitudes",
				"integer %s is out of range", tok)
			return Nil{S: sp}
		}
		return Int{V: n, Raw: tok, S: sp}
	case shape == 2:
		f, err := strconv.ParseFloat(tok, 64)
		if err != nil {
			r.errAt(sp.Start, "", "float %s is out of range", tok)
			return Nil{S: sp}
		}
		return Float{V: f, Raw: tok, S: sp}
	case reTimestamp.MatchString(tok):
		t, err := time.Parse(time.RFC3339Nano, tok)
		if err != nil {
			r.errAt(sp.Start, "write an RFC 3339 timestamp such as 2024-01-15T10:30:45Z", "invalid timestamp %s: %v", tok, cleanTimeErr(err))
			return Nil{S: sp}
		}
		return Timestamp{T: t, Raw: tok, S: sp}
	}
	if m := reRadix.FindStringSubmatch(tok); m != nil {
		base := map[byte]int{'x': 16, 'o': 8, 'b': 2}[byte(unicode.ToLower(rune(m[2][0])))]
		n, err := strconv.ParseInt(m[1]+m[3], base, 64)
		if err != nil {
			r.errAt(sp.Start, "", "invalid base-%d integer %s", base, tok)
			return Nil{S: sp}
		}
		return Int{V: n, Raw: tok, S: sp}
	}
	if m := reRatio.FindStringSubmatch(tok); m != nil {
		num, err1 := strconv.ParseInt(m[1], 10, 64)
		den, err2 := strconv.ParseInt(m[2], 10, 64)
		if err1 != nil || err2 != nil || den == 0 {
			r.errAt(sp.Start, "", "invalid ratio %s", tok)
			return Nil{S: sp}
		}
		return Float{V: float64(num) / float64(den), Raw: tok, S: sp}
	}
	hint := "numbers are written 42, -7, 3.14, 1e5, 1.5e-3, 0xFF, 0o755 or 0b1010"
	if i := strings.IndexFunc(tok, func(c rune) bool { return unicode.IsLetter(c) && c != 'e' && c != 'E' }); i > 0 {
		hint = "a symbol cannot start with a digit; " + hint
	}
	r.errAt(sp.Start, hint, "invalid number %s", tok)
	return Nil{S: sp}
}

func cleanTimeErr(err error) string {
	s := err.Error()
	if i := strings.LastIndex(s, ": "); i >= 0 {
		return s[i+2:]
	}
	return s
}
