package plan

import (
	"errors"
	"fmt"
	"sort"

	"github.com/ccos-project/ccos/capability"
	"github.com/ccos-project/ccos/rtfs"
)

// StepOptions are the options a step declares after its name, read from
// the plan's text (never from what the guest later says):
//
//	(step "name" [:effects [[:network {:domains ["a.com"] :methods [:GET]}] :time]
//	              :resources {:max_time_ms 5000}
//	              :compensate (undo)
//	              :retry 2]
//	  body...)
//
// The options may also be written as a map {:effects [...] ...}.
type StepOptions struct {
	// Declared is set when :effects is written: the step may then do only
	// what it declares, and may make calls the analysis cannot resolve.
	Declared bool
	Effects  []capability.Effect
	// MaxTimeMS is :resources :max_time_ms (0 when not written).
	MaxTimeMS int64
	// Compensate is the :compensate expression (nil when not written).
	Compensate rtfs.Value
	// Retry is :retry N: how many times a failed attempt of the step runs
	// again (its side-effecting calls are not repeated: see control's
	// idempotency keys).
	Retry int
}

// Call is one capability call found in the plan.
type Call struct {
	Capability string
	Span       rtfs.Span
	// Via names the plan functions through which the step reaches the
	// call, outermost first (empty for a call written in the step).
	Via []string
	// Args are the argument forms as written at the call site (never
	// evaluated: admission reads the literal ones).
	Args []rtfs.Value
}

// stepOptionKeys are the options a step accepts.
var stepOptionKeys = map[string]bool{"effects": true, "resources": true, "compensate": true, "retry": true}

// stepParts splits a step form into its options form (nil if none) and
// its body.
func stepParts(l *rtfs.List) (opts rtfs.Value, body []rtfs.Value) {
	body = l.Items[2:]
	if len(body) < 2 {
		return nil, body
	}
	if k, ok := firstKey(body[0]); ok && stepOptionKeys[k] {
		return body[0], body[1:]
	}
	return nil, body
}

func firstKey(v rtfs.Value) (string, bool) {
	switch x := v.(type) {
	case *rtfs.Map:
		if x.Len() > 0 {
			if k, ok := x.Keys()[0].(rtfs.Keyword); ok {
				return k.Name, true
			}
		}
	case *rtfs.Vector:
		if len(x.Items) > 0 {
			if k, ok := x.Items[0].(rtfs.Keyword); ok {
				return k.Name, true
			}
		}
	}
	return "", false
}

// parseOptions reads a step's options form.
func parseOptions(v rtfs.Value) (StepOptions, error) {
	var o StepOptions
	var pairs []rtfs.Value
	switch x := v.(type) {
	case *rtfs.Map:
		for i := 0; i < x.Len(); i++ {
			k, val := x.Entry(i)
			pairs = append(pairs, k, val)
		}
	case *rtfs.Vector:
		if len(x.Items)%2 != 0 {
			return o, &Error{Span: x.S, Msg: "step options are :key value pairs; this vector has an odd number of forms"}
		}
		pairs = x.Items
	}
	for i := 0; i < len(pairs); i += 2 {
		k, ok := pairs[i].(rtfs.Keyword)
		if !ok || !stepOptionKeys[k.Name] {
			return o, &Error{Span: pairs[i].Span(), Msg: "unknown step option " + rtfs.Print(pairs[i]),
				Hint: "a step takes :effects, :resources, :compensate and :retry"}
		}
		val := pairs[i+1]
		switch k.Name {
		case "effects":
			effs, err := ParseEffects(val)
			if err != nil {
				return o, err
			}
			o.Declared, o.Effects = true, effs
		case "resources":
			m, ok := val.(*rtfs.Map)
			if !ok {
				return o, &Error{Span: val.Span(), Msg: ":resources must be a map, found " + rtfs.Describe(val)}
			}
			if t, ok := m.GetKeyword("max_time_ms"); ok {
				n, ok := t.(rtfs.Int)
				if !ok || n.V <= 0 {
					return o, &Error{Span: t.Span(), Msg: ":max_time_ms must be a positive integer, found " + rtfs.Describe(t)}
				}
				o.MaxTimeMS = n.V
			}
		case "compensate":
			o.Compensate = val
		case "retry":
			n, ok := val.(rtfs.Int)
			if !ok || n.V < 0 || n.V > rtfs.MaxStepRetries {
				return o, &Error{Span: val.Span(), Msg: fmt.Sprintf(":retry must be an integer from 0 to %d, found %s", rtfs.MaxStepRetries, rtfs.Print(val))}
			}
			o.Retry = int(n.V)
		}
	}
	return o, nil
}

// ParseEffects reads a vector of effects: each a keyword (:time) or a
// vector of a keyword and a scope map ([:network {:domains [...]}]).
func ParseEffects(v rtfs.Value) ([]capability.Effect, error) {
	effs, err := capability.ParseEffects(v)
	var de *capability.DecodeError
	if errors.As(err, &de) {
		return nil, &Error{Span: de.Span, Msg: de.Msg, Hint: de.Hint}
	}
	return effs, err
}

// analyser finds the capability calls each step can reach.
type analyser struct {
	// fns are the functions the plan defines, by name.
	fns map[string]rtfs.Value
	// memo holds each function's reachable calls once computed.
	memo     map[string]*reach
	visiting map[string]bool
}

type reach struct {
	calls   []Call
	dynamic []rtfs.Span
}

func (r *reach) add(o *reach, via string) {
	for _, c := range o.calls {
		c.Via = append([]string{via}, c.Via...)
		r.calls = append(r.calls, c)
	}
	r.dynamic = append(r.dynamic, o.dynamic...)
}

// collectFns records every (defn name ...) and (def name (fn ...)) of the
// plan.
func (a *analyser) collectFns(v rtfs.Value) {
	l, ok := v.(*rtfs.List)
	if !ok {
		walkChildren(v, a.collectFns)
		return
	}
	switch rtfs.HeadName(l) {
	case "quote":
		return
	case "defn":
		if len(l.Items) > 2 {
			if s, ok := l.Items[1].(rtfs.Symbol); ok {
				a.fns[s.Name] = &rtfs.List{Items: l.Items[2:], S: l.S}
			}
		}
	case "def":
		if len(l.Items) == 3 {
			if s, ok := l.Items[1].(rtfs.Symbol); ok {
				a.fns[s.Name] = l.Items[2]
			}
		}
	}
	walkChildren(v, a.collectFns)
}

func walkChildren(v rtfs.Value, f func(rtfs.Value)) {
	switch x := v.(type) {
	case *rtfs.List:
		for _, it := range x.Items {
			f(it)
		}
	case *rtfs.Vector:
		for _, it := range x.Items {
			f(it)
		}
	case *rtfs.Map:
		for i := 0; i < x.Len(); i++ {
			k, val := x.Entry(i)
			f(k)
			f(val)
		}
	}
}

// reachOf returns the calls reachable from v, not entering nested steps
// (which have their own profiles) or quoted data.
func (a *analyser) reachOf(v rtfs.Value) *reach {
	r := &reach{}
	var walk func(v rtfs.Value)
	walk = func(v rtfs.Value) {
		switch x := v.(type) {
		case rtfs.Symbol:
			if _, ok := a.fns[x.Name]; ok {
				r.add(a.fnReach(x.Name), x.Name)
			}
			return
		case *rtfs.List:
			switch rtfs.HeadName(x) {
			case "quote", "step":
				return
			case "defn":
				// A definition runs nothing; its calls count where the
				// function is used.
				return
			case "def":
				if len(x.Items) == 3 && isFnForm(x.Items[2]) {
					return
				}
			case "call":
				if len(x.Items) < 2 {
					r.dynamic = append(r.dynamic, x.S)
					return
				}
				if k, ok := x.Items[1].(rtfs.Keyword); ok {
					r.calls = append(r.calls, Call{Capability: k.Name, Span: x.S, Args: x.Items[2:]})
				} else {
					r.dynamic = append(r.dynamic, x.S)
				}
				for _, it := range x.Items[2:] {
					walk(it)
				}
				return
			}
		}
		walkChildren(v, walk)
	}
	walk(v)
	return r
}

func isFnForm(v rtfs.Value) bool {
	switch rtfs.HeadName(v) {
	case "fn", "λ", "lambda":
		return true
	}
	return false
}

func (a *analyser) fnReach(name string) *reach {
	if r, ok := a.memo[name]; ok {
		return r
	}
	if a.visiting[name] {
		// Recursion: the calls are those found on the way in.
		return &reach{}
	}
	a.visiting[name] = true
	r := a.reachOf(a.fns[name])
	delete(a.visiting, name)
	a.memo[name] = r
	return r
}

// analyse fills in each step's options and reachable calls, and the calls
// made outside every step.
func (p *Plan) analyse(stepForms []*rtfs.List) error {
	a := &analyser{fns: map[string]rtfs.Value{}, memo: map[string]*reach{}, visiting: map[string]bool{}}
	a.collectFns(p.Body)
	for i, l := range stepForms {
		optsForm, body := stepParts(l)
		if optsForm != nil {
			o, err := parseOptions(optsForm)
			if err != nil {
				return err
			}
			p.Steps[i].Options = o
		}
		// The compensation runs inside the step too: its calls are part of
		// the step's profile.
		code := body
		if c := p.Steps[i].Options.Compensate; c != nil {
			code = append(append([]rtfs.Value{}, body...), c)
		}
		r := a.reachOf(&rtfs.List{Items: code})
		p.Steps[i].Calls = dedupe(r.calls)
		p.Steps[i].Sites = r.calls
		p.Steps[i].Dynamic = r.dynamic
	}
	top := a.reachOf(p.Body)
	p.Unstepped = dedupe(top.calls)
	p.UnsteppedDynamic = top.dynamic
	return nil
}

// dedupe keeps the first call site of each capability, sorted by id.
func dedupe(calls []Call) []Call {
	seen := map[string]bool{}
	var out []Call
	for _, c := range calls {
		if !seen[c.Capability] {
			seen[c.Capability] = true
			out = append(out, c)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Capability < out[j].Capability })
	return out
}

// Capabilities returns the ids of the capabilities the step can reach.
func (s *Step) Capabilities() []string {
	out := make([]string, len(s.Calls))
	for i, c := range s.Calls {
		out[i] = c.Capability
	}
	return out
}
