// Package terminal makes text safe to show on an operator's terminal. A
// plan, a guest or a config can put any character into what ccos prints
// (the plan's output and value, error messages, diagnostics that quote the
// input); a terminal acts on some of them: an escape sequence can set the
// window title, clear the screen, move the cursor and repaint earlier lines,
// and bidirectional controls can reorder what is shown.
//
// Escape replaces every such character with a visible escape: C0 controls
// (other than newline and tab), DEL and C1 controls as \u00XX, the
// bidirectional formatting characters as \uXXXX, and each byte of an
// invalid UTF-8 sequence as \xHH. Other text, backslashes included, is
// unchanged, so an escape in the output may also be literal text; the exact
// bytes are in the --json documents.
//
// The \u form is also a JSON string escape, and encoding/json never writes
// the other escaped characters raw: escaping a JSON document changes no
// value in it. That is why ccos can put Writer in front of its standard
// output and error once, for every command.
package terminal

import (
	"fmt"
	"io"
	"strings"
	"sync"
	"unicode/utf8"
)

// needsEscape reports whether a terminal may act on r.
func needsEscape(r rune) bool {
	switch {
	case r == '\n' || r == '\t':
		return false
	case r < 0x20, r >= 0x7f && r <= 0x9f:
		return true
	case r == 0x061c, r == 0x200e, r == 0x200f, // bidi marks
		r >= 0x202a && r <= 0x202e, // embeddings and overrides
		r >= 0x2066 && r <= 0x2069: // isolates
		return true
	}
	return false
}

// Escape returns s with every character a terminal would act on replaced
// by a visible escape (see the package comment). It returns s itself when
// there is nothing to escape.
func Escape(s string) string {
	i := firstUnsafe(s)
	if i == len(s) {
		return s
	}
	var b strings.Builder
	b.Grow(len(s) + 16)
	b.WriteString(s[:i])
	appendEscaped(&b, s[i:])
	return b.String()
}

// firstUnsafe returns the index of the first byte that must be escaped, or
// len(s).
func firstUnsafe(s string) int {
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c < 0x20 && c != '\n' && c != '\t' || c == 0x7f {
				return i
			}
			i++
			continue
		}
		r, n := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && n == 1 || needsEscape(r) {
			return i
		}
		i += n
	}
	return len(s)
}

func appendEscaped(b *strings.Builder, s string) {
	for i := 0; i < len(s); {
		r, n := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && n == 1:
			fmt.Fprintf(b, `\x%02x`, s[i])
		case needsEscape(r):
			fmt.Fprintf(b, `\u%04x`, r)
		default:
			b.WriteString(s[i : i+n])
		}
		i += n
	}
}

// Writer escapes what is written through it (Escape) before it reaches the
// underlying writer. A UTF-8 sequence split across two writes is held back
// until it is complete; Flush writes what is held at the end. It is safe
// for concurrent use.
type Writer struct {
	mu      sync.Mutex
	w       io.Writer
	pending []byte // the start of an incomplete UTF-8 sequence
}

// NewWriter returns a Writer that writes to w.
func NewWriter(w io.Writer) *Writer { return &Writer{w: w} }

// Write escapes p and writes it; it reports len(p) when everything was
// written (the escaped text is longer).
func (w *Writer) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	data := p
	if len(w.pending) > 0 {
		data = append(w.pending, p...)
		w.pending = nil
	}
	cut := incompleteTail(data)
	if cut < len(data) {
		w.pending = append([]byte(nil), data[cut:]...)
		data = data[:cut]
	}
	if _, err := io.WriteString(w.w, Escape(string(data))); err != nil {
		return 0, err
	}
	return len(p), nil
}

// Flush writes, escaped, the bytes held back from an incomplete sequence.
func (w *Writer) Flush() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.pending) == 0 {
		return nil
	}
	s := Escape(string(w.pending))
	w.pending = nil
	_, err := io.WriteString(w.w, s)
	return err
}

// incompleteTail returns where a UTF-8 sequence that the end of b cuts
// short begins, or len(b).
func incompleteTail(b []byte) int {
	for back := 1; back <= utf8.UTFMax-1 && back <= len(b); back++ {
		c := b[len(b)-back]
		if c < utf8.RuneSelf {
			return len(b) // ASCII: nothing open
		}
		if utf8.RuneStart(c) {
			if !utf8.FullRune(b[len(b)-back:]) {
				return len(b) - back
			}
			return len(b)
		}
	}
	return len(b)
}
