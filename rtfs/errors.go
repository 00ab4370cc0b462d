package rtfs

import (
	"strconv"
	"strings"
)

// SyntaxError is one problem found by the reader, at a source position.
type SyntaxError struct {
	File string
	Pos  Pos
	// Msg names what was expected and what was found.
	Msg string
	// Hint, when set, says how to repair the input.
	Hint string
}

// Error formats the problem as file:line:col: message (hint: ...).
func (e *SyntaxError) Error() string {
	var b strings.Builder
	f := e.File
	if f == "" {
		f = "<input>"
	}
	b.WriteString(f)
	b.WriteByte(':')
	b.WriteString(strconv.Itoa(e.Pos.Line))
	b.WriteByte(':')
	b.WriteString(strconv.Itoa(e.Pos.Col))
	b.WriteString(": ")
	b.WriteString(e.Msg)
	if e.Hint != "" {
		b.WriteString(" (hint: ")
		b.WriteString(e.Hint)
		b.WriteByte(')')
	}
	return b.String()
}

// ErrorList is every problem found in one pass over an input, in order.
type ErrorList []*SyntaxError

// Error returns the problems one per line.
func (l ErrorList) Error() string {
	parts := make([]string, len(l))
	for i, e := range l {
		parts[i] = e.Error()
	}
	return strings.Join(parts, "\n")
}

// Unwrap lets errors.As find each SyntaxError.
func (l ErrorList) Unwrap() []error {
	out := make([]error, len(l))
	for i, e := range l {
		out[i] = e
	}
	return out
}
