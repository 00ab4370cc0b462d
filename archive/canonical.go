package archive

import (
	"errors"
	"fmt"
	"math"
	"math/big"
	"slices"
	"strconv"
	"strings"
	"unicode/utf16"
	"unicode/utf8"
)

// Errors of the canonical JSON reader. Every error returned by Canonicalize
// wraps ErrNotJSON and one of the more precise sentinels below, so callers
// can test either.
var (
	// ErrNotJSON is wrapped by every error of Canonicalize.
	ErrNotJSON = errors.New("not valid JSON for the archive")
	// ErrDuplicateKey is an object that names the same member twice.
	ErrDuplicateKey = errors.New("duplicate object key")
	// ErrNumberRange is a number that is not finite as a binary64, or an
	// integer literal that a binary64 cannot hold exactly (it would change).
	ErrNumberRange = errors.New("number out of range")
	// ErrInvalidUTF8 is text that is not UTF-8, or an escaped lone surrogate.
	ErrInvalidUTF8 = errors.New("invalid UTF-8 or lone surrogate")
	// ErrTooDeep is nesting deeper than MaxDepth.
	ErrTooDeep = errors.New("nesting too deep")
)

// MaxDepth bounds the nesting of arrays and objects that Canonicalize
// accepts, so that decoding is never a stack overflow.
const MaxDepth = 512

// SyntaxError is a malformed input to Canonicalize at a byte offset.
type SyntaxError struct {
	Offset int // byte offset of the problem
	Msg    string
	Err    error // a sentinel of this package, or nil for plain syntax
}

// Error formats the problem with its byte offset.
func (e *SyntaxError) Error() string {
	return fmt.Sprintf("archive: canonical JSON: offset %d: %s", e.Offset, e.Msg)
}

// Unwrap returns ErrNotJSON and the precise sentinel, if any.
func (e *SyntaxError) Unwrap() []error {
	if e.Err != nil {
		return []error{ErrNotJSON, e.Err}
	}
	return []error{ErrNotJSON}
}

// Canonicalize returns the canonical form of the JSON text data, as
// specified in the package documentation (RFC 8785, with two extra
// refusals: duplicate keys, and integer literals that would change value). It accepts any
// JSON value; the archive itself stores only objects.
func Canonicalize(data []byte) ([]byte, error) {
	d := &decoder{src: data}
	var out strings.Builder
	out.Grow(len(data))
	d.space()
	if err := d.value(&out, 0); err != nil {
		return nil, err
	}
	d.space()
	if d.off != len(d.src) {
		return nil, d.fail("text after the value", nil)
	}
	return []byte(out.String()), nil
}

type decoder struct {
	src []byte
	off int
}

func (d *decoder) fail(msg string, sentinel error) error {
	return &SyntaxError{Offset: d.off, Msg: msg, Err: sentinel}
}

func (d *decoder) space() {
	for d.off < len(d.src) {
		switch d.src[d.off] {
		case ' ', '\t', '\n', '\r':
			d.off++
		default:
			return
		}
	}
}

func (d *decoder) value(out *strings.Builder, depth int) error {
	if d.off >= len(d.src) {
		return d.fail("unexpected end of input", nil)
	}
	switch c := d.src[d.off]; {
	case c == '{':
		return d.object(out, depth+1)
	case c == '[':
		return d.array(out, depth+1)
	case c == '"':
		s, err := d.str()
		if err != nil {
			return err
		}
		writeJSONString(out, s)
		return nil
	case c == '-' || (c >= '0' && c <= '9'):
		return d.number(out)
	default:
		for _, lit := range []string{"true", "false", "null"} {
			if strings.HasPrefix(string(d.src[d.off:min(len(d.src), d.off+5)]), lit) {
				d.off += len(lit)
				out.WriteString(lit)
				return nil
			}
		}
		return d.fail(fmt.Sprintf("unexpected character %q", c), nil)
	}
}

type member struct {
	key   string
	units []uint16 // key as UTF-16 code units, the RFC 8785 sort key
	val   string
}

func (d *decoder) object(out *strings.Builder, depth int) error {
	if depth > MaxDepth {
		return d.fail("nesting deeper than 512", ErrTooDeep)
	}
	d.off++ // {
	var members []member
	seen := map[string]bool{}
	d.space()
	if d.off < len(d.src) && d.src[d.off] == '}' {
		d.off++
		out.WriteString("{}")
		return nil
	}
	for {
		d.space()
		if d.off >= len(d.src) || d.src[d.off] != '"' {
			return d.fail("expected a string key", nil)
		}
		keyAt := d.off
		key, err := d.str()
		if err != nil {
			return err
		}
		if seen[key] {
			d.off = keyAt
			return d.fail(fmt.Sprintf("duplicate key %q", key), ErrDuplicateKey)
		}
		seen[key] = true
		d.space()
		if d.off >= len(d.src) || d.src[d.off] != ':' {
			return d.fail("expected ':' after an object key", nil)
		}
		d.off++
		d.space()
		var val strings.Builder
		if err := d.value(&val, depth); err != nil {
			return err
		}
		members = append(members, member{key: key, units: utf16.Encode([]rune(key)), val: val.String()})
		d.space()
		if d.off >= len(d.src) {
			return d.fail("unterminated object", nil)
		}
		if d.src[d.off] == ',' {
			d.off++
			continue
		}
		if d.src[d.off] == '}' {
			d.off++
			break
		}
		return d.fail("expected ',' or '}' in an object", nil)
	}
	slices.SortFunc(members, func(a, b member) int { return slices.Compare(a.units, b.units) })
	out.WriteByte('{')
	for i, m := range members {
		if i > 0 {
			out.WriteByte(',')
		}
		writeJSONString(out, m.key)
		out.WriteByte(':')
		out.WriteString(m.val)
	}
	out.WriteByte('}')
	return nil
}

func (d *decoder) array(out *strings.Builder, depth int) error {
	if depth > MaxDepth {
		return d.fail("nesting deeper than 512", ErrTooDeep)
	}
	d.off++ // [
	out.WriteByte('[')
	d.space()
	if d.off < len(d.src) && d.src[d.off] == ']' {
		d.off++
		out.WriteByte(']')
		return nil
	}
	for i := 0; ; i++ {
		if i > 0 {
			out.WriteByte(',')
		}
		d.space()
		if err := d.value(out, depth); err != nil {
			return err
		}
		d.space()
		if d.off >= len(d.src) {
			return d.fail("unterminated array", nil)
		}
		if d.src[d.off] == ',' {
			d.off++
			continue
		}
		if d.src[d.off] == ']' {
			d.off++
			out.WriteByte(']')
			return nil
		}
		return d.fail("expected ',' or ']' in an array", nil)
	}
}

// str decodes the string literal at d.off.
func (d *decoder) str() (string, error) {
	d.off++ // opening quote
	var b strings.Builder
	for {
		if d.off >= len(d.src) {
			return "", d.fail("unterminated string", nil)
		}
		c := d.src[d.off]
		switch {
		case c == '"':
			d.off++
			return b.String(), nil
		case c == '\\':
			if err := d.escape(&b); err != nil {
				return "", err
			}
		case c < 0x20:
			return "", d.fail("control character in a string (escape it)", nil)
		default:
			// Copy the run of plain characters up to the next quote,
			// backslash or control character in one piece.
			end := d.off + 1
			for end < len(d.src) && d.src[end] != '"' && d.src[end] != '\\' && d.src[end] >= 0x20 {
				end++
			}
			if run := d.src[d.off:end]; !utf8.Valid(run) {
				for r, n := utf8.DecodeRune(run); r != utf8.RuneError || n > 1; r, n = utf8.DecodeRune(run) {
					d.off += n
					run = run[n:]
				}
				return "", d.fail("invalid UTF-8 in a string", ErrInvalidUTF8)
			}
			b.Write(d.src[d.off:end])
			d.off = end
		}
	}
}

var simpleEscapes = map[byte]byte{'"': '"', '\\': '\\', '/': '/', 'b': '\b', 'f': '\f', 'n': '\n', 'r': '\r', 't': '\t'}

func (d *decoder) escape(b *strings.Builder) error {
	if d.off+1 >= len(d.src) {
		return d.fail("unterminated escape", nil)
	}
	e := d.src[d.off+1]
	if r, ok := simpleEscapes[e]; ok {
		b.WriteByte(r)
		d.off += 2
		return nil
	}
	if e != 'u' {
		return d.fail(fmt.Sprintf("unknown escape \\%c", e), nil)
	}
	r1, err := d.hex4(d.off + 2)
	if err != nil {
		return err
	}
	d.off += 6
	if !utf16.IsSurrogate(r1) {
		b.WriteRune(r1)
		return nil
	}
	if r1 < 0xDC00 && d.off+1 < len(d.src) && d.src[d.off] == '\\' && d.src[d.off+1] == 'u' {
		r2, err := d.hex4(d.off + 2)
		if err != nil {
			return err
		}
		if r := utf16.DecodeRune(r1, r2); r != utf8.RuneError {
			b.WriteRune(r)
			d.off += 6
			return nil
		}
	}
	d.off -= 6
	return d.fail("lone surrogate in a \\u escape", ErrInvalidUTF8)
}

func (d *decoder) hex4(at int) (rune, error) {
	if at+4 > len(d.src) {
		d.off = len(d.src)
		return 0, d.fail("short \\u escape", nil)
	}
	v, err := strconv.ParseUint(string(d.src[at:at+4]), 16, 16)
	if err != nil || strings.ContainsAny(string(d.src[at:at+4]), "+-_") {
		d.off = at
		return 0, d.fail("bad \\u escape", nil)
	}
	return rune(v), nil
}

// number checks the JSON number grammar, then writes the number in the
// RFC 8785 (ECMAScript) spelling.
func (d *decoder) number(out *strings.Builder) error {
	start := d.off
	if d.src[d.off] == '-' {
		d.off++
	}
	if d.off >= len(d.src) || !isDigit(d.src[d.off]) {
		return d.fail("expected a digit", nil)
	}
	if d.src[d.off] == '0' {
		d.off++
	} else {
		d.digits()
	}
	integral := true
	if d.off < len(d.src) && d.src[d.off] == '.' {
		integral = false
		d.off++
		if d.off >= len(d.src) || !isDigit(d.src[d.off]) {
			return d.fail("expected a digit after '.'", nil)
		}
		d.digits()
	}
	if d.off < len(d.src) && (d.src[d.off] == 'e' || d.src[d.off] == 'E') {
		integral = false
		d.off++
		if d.off < len(d.src) && (d.src[d.off] == '+' || d.src[d.off] == '-') {
			d.off++
		}
		if d.off >= len(d.src) || !isDigit(d.src[d.off]) {
			return d.fail("expected a digit in the exponent", nil)
		}
		d.digits()
	}
	lit := string(d.src[start:d.off])
	f, err := strconv.ParseFloat(lit, 64)
	if err != nil || math.IsInf(f, 0) {
		d.off = start
		return d.fail(fmt.Sprintf("number %s is not a finite binary64", lit), ErrNumberRange)
	}
	spelled := FormatNumber(f)
	if integral && !sameInteger(lit, spelled) {
		d.off = start
		return d.fail(fmt.Sprintf("integer %s would change to %s as a binary64 (write it as a string)", lit, spelled), ErrNumberRange)
	}
	out.WriteString(spelled)
	return nil
}

// sameInteger reports whether the integer literal lit and the canonical
// spelling of its binary64 denote the same number. Literals of up to 15
// digits always do.
func sameInteger(lit, spelled string) bool {
	if len(strings.TrimPrefix(lit, "-")) <= 15 {
		return true
	}
	a, ok1 := new(big.Rat).SetString(lit)
	b, ok2 := new(big.Rat).SetString(spelled)
	return ok1 && ok2 && a.Cmp(b) == 0
}

func (d *decoder) digits() {
	for d.off < len(d.src) && isDigit(d.src[d.off]) {
		d.off++
	}
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

// FormatNumber returns the RFC 8785 spelling of a finite float: the
// ECMAScript Number::toString algorithm over the shortest digits that read
// back as f. Integers up to 1e21 print without a fraction or exponent, -0
// prints as 0. It panics on NaN or an infinity, which JSON cannot hold.
func FormatNumber(f float64) string {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		panic("archive.FormatNumber: not finite")
	}
	if f == 0 {
		return "0"
	}
	sign := ""
	if f < 0 {
		sign, f = "-", -f
	}
	// Shortest round-trip digits and exponent: "d.ddde±x".
	e := strconv.FormatFloat(f, 'e', -1, 64)
	mant, expText, _ := strings.Cut(e, "e")
	digits := strings.Replace(mant, ".", "", 1)
	exp, _ := strconv.Atoi(expText)
	k, n := len(digits), exp+1 // value = 0.digits × 10^n
	switch {
	case k <= n && n <= 21:
		return sign + digits + strings.Repeat("0", n-k)
	case 0 < n && n <= 21:
		return sign + digits[:n] + "." + digits[n:]
	case -6 < n && n <= 0:
		return sign + "0." + strings.Repeat("0", -n) + digits
	}
	expSign := "+"
	if n-1 < 0 {
		expSign = "-"
	}
	abs := strconv.Itoa(int(math.Abs(float64(n - 1))))
	if k == 1 {
		return sign + digits + "e" + expSign + abs
	}
	return sign + digits[:1] + "." + digits[1:] + "e" + expSign + abs
}

// writeJSONString writes s as a JSON string in the RFC 8785 form: only '"',
// '\\' and control characters are escaped; \b \f \n \r \t use their short
// escapes, other controls \u00xx in lower-case hexadecimal.
func writeJSONString(out *strings.Builder, s string) {
	const hex = "0123456789abcdef"
	out.WriteByte('"')
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 0x20 && c != '"' && c != '\\' {
			// Write the run of characters that need no escape at once.
			j := i + 1
			for j < len(s) && s[j] >= 0x20 && s[j] != '"' && s[j] != '\\' {
				j++
			}
			out.WriteString(s[i:j])
			i = j - 1
			continue
		}
		switch c {
		case '"':
			out.WriteString(`\"`)
		case '\\':
			out.WriteString(`\\`)
		case '\b':
			out.WriteString(`\b`)
		case '\f':
			out.WriteString(`\f`)
		case '\n':
			out.WriteString(`\n`)
		case '\r':
			out.WriteString(`\r`)
		case '\t':
			out.WriteString(`\t`)
		default:
			if c < 0x20 {
				out.WriteString(`\u00`)
				out.WriteByte(hex[c>>4])
				out.WriteByte(hex[c&0xF])
			} else {
				out.WriteByte(c)
			}
		}
	}
	out.WriteByte('"')
}
