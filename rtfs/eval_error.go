package rtfs

import (
	"errors"
	"fmt"
	"strings"
)

// The error types raised by the evaluator and the standard library. A
// program can raise its own with (throw ...) or (error ...), which give
// ErrUser unless the thrown map names a :type.
const (
	ErrUnboundSymbol  = "UnboundSymbol"
	ErrType           = "TypeError"
	ErrArity          = "ArityError"
	ErrDivisionByZero = "DivisionByZero"
	ErrArithmetic     = "ArithmeticError"
	ErrIndex          = "IndexOutOfBounds"
	ErrSpecialForm    = "InvalidSpecialForm"
	ErrMatch          = "MatchError"
	ErrPrecondition   = "PreconditionError"
	ErrValue          = "ValueError"
	ErrUser           = "UserError"
	ErrHost           = "HostError"
	ErrJSON           = "JSONError"
	ErrNotSupported   = "NotSupported"
	// ErrLimit and ErrCancelled cannot be caught by try/catch: untrusted
	// code must not be able to outlive its budget.
	ErrLimit     = "LimitExceeded"
	ErrCancelled = "Cancelled"
	ErrInternal  = "InternalError"
)

// catchAll names the catch clause types that catch every catchable error.
var catchAll = map[string]bool{
	"Exception": true, "Throwable": true, "Error": true, "RuntimeException": true, "error": true,
}

// catchFamilies maps the Java-style class names that upstream RTFS programs
// use onto our error types.
var catchFamilies = map[string][]string{
	"ArithmeticException":             {ErrDivisionByZero, ErrArithmetic},
	"IllegalArgumentException":        {ErrArity, ErrValue, ErrPrecondition},
	"ClassCastException":              {ErrType},
	"IndexOutOfBoundsException":       {ErrIndex},
	"ExceptionInfo":                   {ErrUser},
	"IllegalStateException":           {ErrHost},
	"UnsupportedOperationException":   {ErrNotSupported},
	"ArrayIndexOutOfBoundsException":  {ErrIndex},
	"StringIndexOutOfBoundsException": {ErrIndex},
}

// Frame is one entry of an RTFS call stack: the function called and where
// the call was written.
type Frame struct {
	Name string
	S    Span
}

// Error is an RTFS run-time error. It is both a Go error and an RTFS value
// (KindError), so that try/catch hands it to the program: (error-message e),
// (error-type e), (error-data e) and keyword lookups (:message e), (:type e),
// (:data e) read it.
type Error struct {
	// Type names the kind of error, such as "TypeError" (the Err* constants).
	Type string
	// Message says what went wrong, for a person or a model to act on.
	Message string
	// Hint, when set, says how to repair the program (for an unbound
	// symbol: the defined names it probably meant).
	Hint string
	// Data is the value attached by (throw {...}) or (ex-info msg data); nil otherwise.
	Data Value
	// S is where the failing form was written (zero if unknown).
	S Span
	// Stack lists the RTFS functions active when the error was raised,
	// innermost first.
	Stack []Frame
	// Cause is the Go error behind this one (a context error, a host error), if any.
	Cause error
}

// Kind reports KindError.
func (*Error) Kind() Kind { return KindError }

// Span reports where the error was raised.
func (e *Error) Span() Span { return e.S }

// Error formats the error as file:line:col: Type: message (hint: ...),
// the format of every ccos diagnostic.
func (e *Error) Error() string {
	var b strings.Builder
	if !e.S.IsZero() {
		b.WriteString(e.S.String())
		b.WriteString(": ")
	}
	b.WriteString(e.Type)
	b.WriteString(": ")
	b.WriteString(e.Message)
	if e.Hint != "" {
		b.WriteString(" (hint: ")
		b.WriteString(e.Hint)
		b.WriteByte(')')
	}
	return b.String()
}

// Unwrap returns the Go error behind this one.
func (e *Error) Unwrap() error { return e.Cause }

// String is the printed form of an error value.
func (e *Error) String() string { return "#<error " + e.Type + ": " + e.Message + ">" }

// Equal reports whether v is an error with the same type, message and data.
func (e *Error) Equal(v Value) bool {
	o, ok := v.(*Error)
	return ok && o.Type == e.Type && o.Message == e.Message && Equal(orNil(o.Data), orNil(e.Data))
}

// Detail returns the error line followed by the RTFS call stack, one
// "  at name (file:line:col)" line per frame.
func (e *Error) Detail() string {
	var b strings.Builder
	b.WriteString(e.Error())
	shown := 0
	for i := 0; i < len(e.Stack); {
		j := i + 1
		for j < len(e.Stack) && e.Stack[j] == e.Stack[i] {
			j++
		}
		if shown == maxStackLines {
			fmt.Fprintf(&b, "\n  ... %d more frames", len(e.Stack)-i)
			break
		}
		f := e.Stack[i]
		fmt.Fprintf(&b, "\n  at %s (%s)", f.Name, f.S)
		if j-i > 1 {
			fmt.Fprintf(&b, " [repeated %d times]", j-i)
		}
		shown++
		i = j
	}
	return b.String()
}

// maxStackLines bounds the stack lines printed by Detail; runs of the same
// frame (deep recursion) print once with a repeat count.
const maxStackLines = 20

// Catchable reports whether try/catch may intercept the error. Limit
// exhaustion, cancellation and internal errors always end the evaluation.
func (e *Error) Catchable() bool {
	return e.Type != ErrLimit && e.Type != ErrCancelled && e.Type != ErrInternal
}

// caughtBy reports whether a catch clause naming typ handles e. The type
// may be written as a keyword in kebab case (:division-by-zero).
func (e *Error) caughtBy(typ string) bool {
	if !e.Catchable() {
		return false
	}
	if catchAll[typ] || typ == e.Type {
		return true
	}
	typ = errorTypeName(typ)
	if catchAll[typ] || typ == e.Type {
		return true
	}
	switch typ {
	case "RuntimeError":
		// Spec 15: every evaluation error, as opposed to a HostError.
		return e.Type != ErrHost
	case "ValidationError":
		return e.Type == ErrType || e.Type == ErrPrecondition
	}
	for _, t := range catchFamilies[typ] {
		if t == e.Type {
			return true
		}
	}
	return false
}

// errorTypeName spells a kebab-case error kind (division-by-zero, from a
// keyword such as :division-by-zero) as the type name DivisionByZero;
// other names are returned as they are.
func errorTypeName(typ string) string {
	if typ == "" || typ[0] < 'a' || typ[0] > 'z' {
		return typ
	}
	var b strings.Builder
	up := true
	for _, r := range typ {
		switch {
		case r == '-' || r == '_':
			up = true
		case up:
			b.WriteString(strings.ToUpper(string(r)))
			up = false
		default:
			b.WriteRune(r)
		}
	}
	return b.String()
}

// errorConstructor implements the Java-style constructor call that spec
// 15 uses, (RuntimeError. "message" data?): an unbound symbol that is a
// capitalised name followed by a dot builds an error value of that type.
// It returns nil for any other name.
func errorConstructor(name string) *Func {
	n := len(name)
	if n < 3 || name[n-1] != '.' || name[0] < 'A' || name[0] > 'Z' {
		return nil
	}
	typ := name[:n-1]
	for _, r := range typ {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_') {
			return nil
		}
	}
	if typ == ErrLimit || typ == ErrCancelled || typ == ErrInternal {
		typ = ErrUser // a program cannot forge the errors that end an evaluation
	}
	return NewNative(name, func(_ *Interp, args []Value) (Value, error) {
		if err := arity(name, args, 0, 2); err != nil {
			return nil, err
		}
		e := &Error{Type: typ, Message: typ}
		if len(args) > 0 {
			e.Message = display(args[0])
		}
		if len(args) == 2 {
			e.Data = args[1]
		}
		return e, nil
	})
}

// newError returns an error without position; apply and eval fill in the
// span and the stack of the form that raised it.
func newError(typ, format string, args ...any) *Error {
	return &Error{Type: typ, Message: fmt.Sprintf(format, args...)}
}

// asError converts any Go error into an *Error, keeping an existing one.
func asError(err error, typ string) *Error {
	var e *Error
	if errors.As(err, &e) {
		return e
	}
	return &Error{Type: typ, Message: err.Error(), Cause: err}
}

func orNil(v Value) Value {
	if v == nil {
		return Nil{}
	}
	return v
}
