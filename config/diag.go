package config

import (
	"encoding/json"
	"errors"
	"sort"
	"strconv"
	"strings"

	"github.com/ccos-project/ccos/rtfs"
)

// Severity says whether a diagnostic rejects the config.
type Severity uint8

// The severities. Warnings are reported but never make a config invalid.
const (
	SeverityError Severity = iota
	SeverityWarning
)

// String returns "error" or "warning".
func (s Severity) String() string {
	if s == SeverityWarning {
		return "warning"
	}
	return "error"
}

// MarshalJSON writes the severity as its name.
func (s Severity) MarshalJSON() ([]byte, error) { return json.Marshal(s.String()) }

// Diagnostic is one problem found in a config.
type Diagnostic struct {
	// Code is a stable identifier such as INVALID_VCPUS.
	Code     string
	Severity Severity
	// Path is the dotted field path, such as microvm.devices.vsock.cid;
	// empty for problems with the file as a whole.
	Path string
	// Message says what is wrong; Hint how to repair it.
	Message, Hint string
	// Span is where the offending form was written.
	Span rtfs.Span
	// Note adds where a value came from when that is not Span (a profile
	// of the prelude: Span is then the user's call of it).
	Note string
	// cause is the underlying error, when there is one (a reader error, the
	// evaluator's error, ErrNeedsEvaluator).
	cause error
}

// String formats the diagnostic as one line:
// file:line:col: [warning: ]CODE: message (hint: ...).
func (d Diagnostic) String() string {
	var b strings.Builder
	b.WriteString(d.Span.String())
	b.WriteString(": ")
	if d.Severity == SeverityWarning {
		b.WriteString("warning: ")
	}
	b.WriteString(d.Code)
	b.WriteString(": ")
	b.WriteString(d.Message)
	if d.Hint != "" {
		b.WriteString(" (hint: ")
		b.WriteString(d.Hint)
		b.WriteByte(')')
	}
	if d.Note != "" {
		b.WriteString(" (note: ")
		b.WriteString(d.Note)
		b.WriteByte(')')
	}
	return b.String()
}

// Unwrap returns the underlying error, if any.
func (d Diagnostic) Unwrap() error { return d.cause }

// jsonDiagnostic is the JSON shape of a Diagnostic.
type jsonDiagnostic struct {
	Code     string   `json:"code"`
	Severity Severity `json:"severity"`
	Path     string   `json:"path"`
	Message  string   `json:"message"`
	Hint     string   `json:"hint,omitempty"`
	File     string   `json:"file"`
	Line     int      `json:"line"`
	Col      int      `json:"col"`
	EndLine  int      `json:"end_line"`
	EndCol   int      `json:"end_col"`
	Note     string   `json:"note,omitempty"`
}

// MarshalJSON writes the diagnostic with its span flattened into
// file/line/col/end_line/end_col.
func (d Diagnostic) MarshalJSON() ([]byte, error) {
	return json.Marshal(jsonDiagnostic{
		Code: d.Code, Severity: d.Severity, Path: d.Path, Message: d.Message, Hint: d.Hint,
		File: d.Span.File, Line: d.Span.Start.Line, Col: d.Span.Start.Col,
		EndLine: d.Span.End.Line, EndCol: d.Span.End.Col, Note: d.Note,
	})
}

// Diagnostics is every problem found in one config.
type Diagnostics []Diagnostic

// HasErrors reports whether any diagnostic is an error.
func (ds Diagnostics) HasErrors() bool { return ds.Count(SeverityError) > 0 }

// Count returns how many diagnostics have severity s.
func (ds Diagnostics) Count(s Severity) int {
	n := 0
	for _, d := range ds {
		if d.Severity == s {
			n++
		}
	}
	return n
}

// Codes returns the codes in order, for tests and summaries.
func (ds Diagnostics) Codes() []string {
	out := make([]string, len(ds))
	for i, d := range ds {
		out[i] = d.Code
	}
	return out
}

// Sort orders the diagnostics by file position, then path, then code, so
// that the same config always gives the same report.
func (ds Diagnostics) Sort() {
	sort.SliceStable(ds, func(i, j int) bool {
		a, b := ds[i], ds[j]
		if a.Span.File != b.Span.File {
			return a.Span.File < b.Span.File
		}
		if a.Span.Start.Offset != b.Span.Start.Offset {
			return a.Span.Start.Offset < b.Span.Start.Offset
		}
		if a.Path != b.Path {
			return a.Path < b.Path
		}
		return a.Code < b.Code
	})
}

// Err returns nil when there is no error, else an *InvalidError holding
// all the diagnostics.
func (ds Diagnostics) Err() error {
	if !ds.HasErrors() {
		return nil
	}
	return &InvalidError{Diags: ds}
}

// InvalidError is a config rejected by at least one error diagnostic.
type InvalidError struct {
	Diags Diagnostics
}

// Error returns the diagnostics one per line.
func (e *InvalidError) Error() string {
	lines := make([]string, len(e.Diags))
	for i, d := range e.Diags {
		lines[i] = d.String()
	}
	return strings.Join(lines, "\n")
}

// Unwrap returns the underlying causes (reader errors, evaluator errors,
// ErrNeedsEvaluator), so that errors.Is and errors.As find them.
func (e *InvalidError) Unwrap() []error {
	var out []error
	for _, d := range e.Diags {
		if d.cause != nil {
			out = append(out, d.cause)
		}
	}
	return out
}

// ErrNeedsEvaluator is the cause of the EVALUATOR_REQUIRED diagnostic: the
// config is an expression (a profile call, ->, assoc-in ...) and no RTFS
// evaluator was given to the Loader.
var ErrNeedsEvaluator = errors.New("profile macros need the RTFS evaluator, which this build lacks")

// The codes of diagnostics about the file and the shape of the config, as
// opposed to the semantic rules in validate.go.
const (
	CodeSyntax          = "SYNTAX_ERROR"
	CodeNoConfig        = "NO_CONFIG"
	CodeExtraForm       = "EXTRA_FORM"
	CodeNotAConfig      = "NOT_A_CONFIG"
	CodeEvaluatorNeeded = "EVALUATOR_REQUIRED"
	CodeEvalFailed      = "EVAL_FAILED"
	CodeUnknownKey      = "UNKNOWN_KEY"
	CodeMissingField    = "MISSING_FIELD"
	CodeDuplicateKey    = "DUPLICATE_KEY"
	CodeTypeMismatch    = "TYPE_MISMATCH"
	CodeInvalidValue    = "INVALID_VALUE"
	CodeModelMismatch   = "INTERNAL_DECODE"
)

// syntaxDiags turns reader errors into diagnostics.
func syntaxDiags(err error, file string) Diagnostics {
	var list rtfs.ErrorList
	if !errors.As(err, &list) {
		return Diagnostics{{Code: CodeSyntax, Message: err.Error(), Span: rtfs.Span{File: file}, cause: err}}
	}
	out := make(Diagnostics, len(list))
	for i, e := range list {
		out[i] = Diagnostic{Code: CodeSyntax, Message: e.Msg, Hint: e.Hint,
			Span: rtfs.Span{File: e.File, Start: e.Pos, End: e.Pos}, cause: e}
	}
	return out
}

// typeDiags turns type errors into diagnostics; root is the span used for
// values built at run time (by the evaluator), which have none.
func typeDiags(errs []*rtfs.TypeError, root rtfs.Span) Diagnostics {
	out := make(Diagnostics, 0, len(errs))
	for _, e := range errs {
		sp := e.Span
		if sp.IsZero() {
			sp = root
		}
		out = append(out, Diagnostic{Code: typeCode(e), Path: rtfs.DottedPath(e.Path),
			Message: e.Msg, Hint: e.Hint, Span: sp})
	}
	return out
}

func typeCode(e *rtfs.TypeError) string {
	if e.Code != "" {
		return e.Code
	}
	switch e.Kind {
	case rtfs.TypeUnknownKey:
		return CodeUnknownKey
	case rtfs.TypeMissingKey:
		return CodeMissingField
	case rtfs.TypeDuplicateKey:
		return CodeDuplicateKey
	case rtfs.TypeBadValue:
		return CodeInvalidValue
	}
	return CodeTypeMismatch
}

// lineCol formats a position for messages.
func lineCol(p rtfs.Pos) string {
	return "line " + strconv.Itoa(p.Line) + " col " + strconv.Itoa(p.Col)
}
