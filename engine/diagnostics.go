package engine

import (
	"errors"
	"fmt"
	"strconv"

	"github.com/ccos-project/ccos/config"
	"github.com/ccos-project/ccos/control"
	"github.com/ccos-project/ccos/governance"
	"github.com/ccos-project/ccos/plan"
	"github.com/ccos-project/ccos/rtfs"
)

// Diagnostic is one problem with a config, a plan or a run, in the one
// shape every front end shows (the CLI prints it as
// file:line:col: CODE: message (hint: ...); the MCP server and the API
// return it as JSON): what is wrong, where, and how to repair it.
type Diagnostic struct {
	// Code is stable: a config rule (INVALID_DOMAIN), an admission rule
	// (DOMAIN_NOT_ALLOWED), SYNTAX_ERROR, PLAN_ERROR, APPROVAL_ERROR, or
	// the RTFS error type of a plan that failed (TypeError).
	Code     string `json:"code"`
	Severity string `json:"severity"`
	Message  string `json:"message"`
	Hint     string `json:"hint,omitempty"`
	// File, Line, Col (1-based) and EndLine, EndCol are the place, when
	// there is one.
	File    string `json:"file,omitempty"`
	Line    int    `json:"line,omitempty"`
	Col     int    `json:"col,omitempty"`
	EndLine int    `json:"end_line,omitempty"`
	EndCol  int    `json:"end_col,omitempty"`
	// Step is the plan step concerned; Path the config field; Value the
	// offending value (a capability, a domain, an amount).
	Step  string `json:"step,omitempty"`
	Path  string `json:"path,omitempty"`
	Value string `json:"value,omitempty"`
	// Stack is the RTFS call stack of a plan error, innermost first.
	Stack []string `json:"stack,omitempty"`
	// Note says where a value came from when that is not the place (a
	// profile's own line, for a config built on it).
	Note string `json:"note,omitempty"`
}

// Codes of diagnostics that are not config or admission rules.
const (
	CodeSyntax   = "SYNTAX_ERROR"
	CodePlan     = "PLAN_ERROR"
	CodeApproval = "APPROVAL_ERROR"
	CodeRun      = "RUN_ERROR"
)

func (d Diagnostic) String() string {
	s := ""
	if d.File != "" {
		s = fmt.Sprintf("%s:%d:%d: ", d.File, d.Line, d.Col)
	}
	if d.Severity == "warning" {
		s += "warning: "
	}
	s += d.Code + ": "
	if d.Step != "" {
		s += fmt.Sprintf("step %q: ", d.Step)
	}
	s += d.Message
	if d.Hint != "" {
		s += " (hint: " + d.Hint + ")"
	}
	if d.Note != "" {
		s += " (note: " + d.Note + ")"
	}
	return s
}

func (d *Diagnostic) place(sp rtfs.Span) {
	if sp.IsZero() {
		return
	}
	d.File, d.Line, d.Col, d.EndLine, d.EndCol = sp.File, sp.Start.Line, sp.Start.Col, sp.End.Line, sp.End.Col
}

// ConfigDiagnostics converts a config's diagnostics.
func ConfigDiagnostics(ds config.Diagnostics) []Diagnostic {
	out := make([]Diagnostic, 0, len(ds))
	for _, c := range ds {
		d := Diagnostic{Code: c.Code, Severity: c.Severity.String(), Message: c.Message, Hint: c.Hint, Path: c.Path, Note: c.Note}
		d.place(c.Span)
		out = append(out, d)
	}
	return out
}

// DiagnosticsOf returns the diagnostics an error of the engine carries: a
// *ConfigError's, an *AdmissionError's (the plan's syntax, its structure,
// an approval, or every admission rule that refused it), or the error
// itself as one diagnostic.
func DiagnosticsOf(err error) []Diagnostic {
	if err == nil {
		return nil
	}
	var ce *ConfigError
	if errors.As(err, &ce) {
		var out []Diagnostic
		for _, d := range ConfigDiagnostics(ce.Diags) {
			if d.Severity == "error" {
				out = append(out, d)
			}
		}
		return out
	}
	var rs governance.Rejections
	if errors.As(err, &rs) {
		out := make([]Diagnostic, 0, len(rs))
		for _, r := range rs {
			d := Diagnostic{Code: fmt.Sprint(r.Rule), Severity: "error", Message: r.Msg, Hint: r.Hint, Step: r.Step, Value: r.Value}
			d.place(r.Span)
			out = append(out, d)
		}
		return out
	}
	var el rtfs.ErrorList
	if errors.As(err, &el) {
		out := make([]Diagnostic, 0, len(el))
		for _, e := range el {
			d := Diagnostic{Code: CodeSyntax, Severity: "error", Message: e.Msg, Hint: e.Hint, File: e.File, Line: e.Pos.Line, Col: e.Pos.Col}
			out = append(out, d)
		}
		return out
	}
	var pe *plan.Error
	if errors.As(err, &pe) {
		d := Diagnostic{Code: CodePlan, Severity: "error", Message: pe.Msg, Hint: pe.Hint}
		d.place(pe.Span)
		return []Diagnostic{d}
	}
	var ae *AdmissionError
	if errors.As(err, &ae) {
		code := CodePlan
		if ae.Stage == "approval" {
			code = CodeApproval
		}
		return []Diagnostic{{Code: code, Severity: "error", Message: ae.Err.Error(), File: ae.File}}
	}
	return []Diagnostic{{Code: CodeRun, Severity: "error", Message: err.Error()}}
}

// PlanErrorDiagnostic is the diagnostic of a plan that ran and failed
// with an RTFS error.
func PlanErrorDiagnostic(e *control.ErrorInfo) Diagnostic {
	d := Diagnostic{Code: e.Type, Severity: "error", Message: e.Message, Stack: e.Stack}
	if p, ok := ParsePlace(e.Where); ok {
		d.File, d.Line, d.Col = p.File, p.Line, p.Col
	}
	return d
}

// Place is a position in a file.
type Place struct {
	File      string
	Line, Col int
}

// ParsePlace reads file:line:col (the file name may hold colons).
func ParsePlace(s string) (Place, bool) {
	var p Place
	i := len(s)
	var nums [2]int
	for k := 1; k >= 0; k-- {
		j := i - 1
		for j >= 0 && s[j] >= '0' && s[j] <= '9' {
			j--
		}
		if j < 0 || j == i-1 || s[j] != ':' {
			return p, false
		}
		n, err := strconv.Atoi(s[j+1 : i])
		if err != nil {
			return p, false
		}
		nums[k] = n
		i = j
	}
	p.File, p.Line, p.Col = s[:i], nums[0], nums[1]
	return p, p.File != ""
}
