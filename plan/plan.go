// Package plan reads RTFS plans and finds their steps.
//
// A plan is either the form (plan "name" :body expr ...) or any other
// expression, which is then the body of an unnamed plan. Steps are written
// (step "name" body...) or (step "name" {options} body...) anywhere in the
// body; their names must be string literals, unique within the plan, so that
// the host can admit each step before the plan runs and recognise it when
// the guest asks to enter it.
package plan

import (
	"errors"
	"fmt"

	"github.com/ccos-project/ccos/rtfs"
)

// Plan is a read plan.
type Plan struct {
	// Name is the plan's name ("" for a bare expression).
	Name string
	// Body is the expression the plan evaluates.
	Body rtfs.Value
	// Intent holds the :intent map, if written.
	Intent *rtfs.Map
	// Steps are the plan's steps in the order they are written.
	Steps []Step
	// Unstepped are the capability calls made outside every step, and
	// UnsteppedDynamic those whose capability is computed at run time.
	Unstepped        []Call
	UnsteppedDynamic []rtfs.Span
	// Source is the text the plan was read from, and File its name.
	Source []byte
	File   string
}

// Step is one (step ...) form of a plan.
type Step struct {
	Name string
	// Span is where the step form is written.
	Span rtfs.Span
	// Options are the step's declared options.
	Options StepOptions
	// Calls are the capabilities the step can reach, directly or through
	// the plan's functions, one per capability, sorted by id.
	Calls []Call
	// Sites are every call site the step can reach, in the order found,
	// with their argument forms.
	Sites []Call
	// Dynamic are the call sites whose capability is computed at run time.
	Dynamic []rtfs.Span
}

// Error is a plan that cannot be admitted, at a source position.
type Error struct {
	Span rtfs.Span
	Msg  string
	Hint string
}

func (e *Error) Error() string {
	s := e.Span.String() + ": " + e.Msg
	if e.Hint != "" {
		s += " (hint: " + e.Hint + ")"
	}
	return s
}

// ErrNoPlan is returned for a text that holds no form.
var ErrNoPlan = errors.New("the plan file holds no form")

// Read reads a plan from src. Reader errors are returned as an
// rtfs.ErrorList; structural problems as *Error.
func Read(src []byte, file string) (*Plan, error) {
	s, err := rtfs.Read(src, file, rtfs.ReadOptions{})
	if err != nil {
		return nil, err
	}
	switch len(s.Forms) {
	case 0:
		return nil, fmt.Errorf("%s: %w", file, ErrNoPlan)
	case 1:
	default:
		return nil, &Error{Span: s.Forms[1].Span(), Msg: fmt.Sprintf("a plan file holds one form, this one holds %d", len(s.Forms)),
			Hint: "wrap the forms in (do ...) or in (plan \"name\" :body (do ...))"}
	}
	p := &Plan{Source: src, File: file}
	if err := p.setForm(s.Forms[0]); err != nil {
		return nil, err
	}
	forms, err := p.findSteps()
	if err != nil {
		return nil, err
	}
	if err := p.analyse(forms); err != nil {
		return nil, err
	}
	return p, nil
}

func (p *Plan) setForm(form rtfs.Value) error {
	if rtfs.HeadName(form) != "plan" {
		p.Body = form
		return nil
	}
	l := form.(*rtfs.List)
	if len(l.Items) < 2 {
		return &Error{Span: l.S, Msg: "(plan ...) needs a name", Hint: `write (plan "name" :body expr)`}
	}
	name, ok := l.Items[1].(rtfs.String)
	if !ok {
		return &Error{Span: l.Items[1].Span(), Msg: "the plan name must be a string, found " + rtfs.Describe(l.Items[1])}
	}
	p.Name = name.V
	rest := l.Items[2:]
	if len(rest)%2 != 0 {
		return &Error{Span: l.S, Msg: "(plan ...) takes a name followed by :key value pairs", Hint: `write (plan "name" :intent {...} :body expr)`}
	}
	for i := 0; i < len(rest); i += 2 {
		k, ok := rest[i].(rtfs.Keyword)
		if !ok {
			return &Error{Span: rest[i].Span(), Msg: "expected a keyword (:body or :intent), found " + rtfs.Describe(rest[i])}
		}
		switch k.Name {
		case "body":
			p.Body = rest[i+1]
		case "intent":
			m, ok := rest[i+1].(*rtfs.Map)
			if !ok {
				return &Error{Span: rest[i+1].Span(), Msg: ":intent must be a map, found " + rtfs.Describe(rest[i+1])}
			}
			p.Intent = m
		default:
			return &Error{Span: k.S, Msg: "unknown plan key :" + k.Name, Hint: "a plan takes :body and :intent"}
		}
	}
	if p.Body == nil {
		return &Error{Span: l.S, Msg: "(plan ...) has no :body", Hint: `add :body expr`}
	}
	return nil
}

// findSteps collects every (step "name" ...) form of the body. Quoted data
// is not code and is not searched.
func (p *Plan) findSteps() ([]*rtfs.List, error) {
	var forms []*rtfs.List
	seen := map[string]rtfs.Span{}
	var err error
	var walk func(v rtfs.Value)
	walk = func(v rtfs.Value) {
		if err != nil {
			return
		}
		if x, ok := v.(*rtfs.List); ok {
			switch rtfs.HeadName(x) {
			case "quote":
				return
			case "step":
				if len(x.Items) < 2 {
					err = &Error{Span: x.S, Msg: "(step ...) needs a name", Hint: `write (step "name" body...)`}
					return
				}
				name, ok := x.Items[1].(rtfs.String)
				if !ok {
					err = &Error{Span: x.Items[1].Span(), Msg: "a step name must be a string literal, found " + rtfs.Describe(x.Items[1]),
						Hint: "the host admits steps by name before the plan runs, so names cannot be computed"}
					return
				}
				if first, dup := seen[name.V]; dup {
					err = &Error{Span: x.S, Msg: fmt.Sprintf("step %q is written twice; the first is at line %d col %d", name.V, first.Start.Line, first.Start.Col),
						Hint: "give every step a unique name"}
					return
				}
				seen[name.V] = x.S
				p.Steps = append(p.Steps, Step{Name: name.V, Span: x.S})
				forms = append(forms, x)
			}
		}
		walkChildren(v, walk)
	}
	walk(p.Body)
	return forms, err
}

// StepNames returns the names of the plan's steps in order.
func (p *Plan) StepNames() []string {
	out := make([]string, len(p.Steps))
	for i, s := range p.Steps {
		out[i] = s.Name
	}
	return out
}
