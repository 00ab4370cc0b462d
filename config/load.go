package config

import (
	_ "embed"
	"fmt"
	"strings"
	"sync"

	"github.com/ccos-project/ccos/internal/input"
	"github.com/ccos-project/ccos/rtfs"
)

// Evaluator evaluates a config written as an RTFS expression, such as
// (profile:networked "agent.x" ["a.com"]) or (-> (profile:minimal "a")
// (assoc-in [...] ...)). The Loader gives it the profile prelude (the forms
// of profiles.rtfs, to evaluate first, in order) and the config form, in
// which every (agent.config :k v ...) has already been rewritten to the map
// literal {:k v ...}. It returns the resulting value, which must be a map.
type Evaluator interface {
	EvalConfig(prelude []rtfs.Value, form rtfs.Value) (rtfs.Value, error)
}

//go:embed profiles.rtfs
var profilesSource []byte

// PreludeFile is the name the prelude's values carry in their spans.
const PreludeFile = "config/profiles.rtfs"

var readPrelude = sync.OnceValues(func() ([]rtfs.Value, error) {
	return rtfs.ReadString(string(profilesSource), PreludeFile)
})

// Prelude returns the forms of the embedded profile prelude (profiles.rtfs),
// which defines profile:minimal, profile:networked, profile:microvm-min and
// profile:microvm-networked.
func Prelude() ([]rtfs.Value, error) { return readPrelude() }

// PreludeSource returns the RTFS text of the profile prelude.
func PreludeSource() []byte { return append([]byte(nil), profilesSource...) }

// Loader loads configs. The zero Loader loads literal configs only; set
// Evaluator to load configs written as expressions.
type Loader struct {
	Evaluator Evaluator
}

// Result is the outcome of loading one config.
type Result struct {
	// File is the name the config was read under.
	File string
	// Expanded is the complete config after evaluation and defaults, with
	// canonical key spellings in schema order; nil when the config did not
	// get past the schema check.
	Expanded *rtfs.Map
	// Config is the decoded config; nil when Expanded is nil.
	Config *Config
	// Diags are every problem found, sorted.
	Diags Diagnostics
}

// Err returns an *InvalidError when any diagnostic is an error.
func (r *Result) Err() error { return r.Diags.Err() }

// Load loads the config in src with the given evaluator, which may be nil
// (then configs written as expressions fail with EVALUATOR_REQUIRED).
func Load(src []byte, file string, ev Evaluator) *Result {
	return (&Loader{Evaluator: ev}).Load(src, file)
}

// LoadFile reads and loads the config at path with the given evaluator,
// which may be nil.
func LoadFile(path string, ev Evaluator) (*Result, error) {
	return (&Loader{Evaluator: ev}).LoadFile(path)
}

// MaxFileSize bounds a config file: LoadFile refuses a larger one, and
// anything but a regular file, before reading it.
const MaxFileSize = input.MaxSource

// LoadFile reads and loads the config at path. The error is for a file that
// cannot be read (missing, not a regular file, over MaxFileSize); problems
// in the config are in Result.Diags.
func (l *Loader) LoadFile(path string) (*Result, error) {
	src, err := input.ReadFile(path, MaxFileSize)
	if err != nil {
		return nil, err
	}
	return l.Load(src, path), nil
}

// Load loads the config in src, read under the name file.
func (l *Loader) Load(src []byte, file string) *Result {
	res := &Result{File: file}
	m, form, diags := l.configMap(src, file)
	res.Diags = diags
	if m != nil {
		res.Expanded, res.Config, res.Diags = finish(m, diags)
	}
	atCallSite(res.Diags, form)
	res.Diags.Sort()
	return res
}

// atCallSite moves the diagnostics placed inside the embedded prelude (a
// value a profile wrote) to the user's own file: the call of the first
// prelude function in the config form, with the prelude's place as a
// note. A person or a model can fix only what is in their file.
func atCallSite(ds Diagnostics, form rtfs.Value) {
	var site *rtfs.List
	var find func(v rtfs.Value)
	find = func(v rtfs.Value) {
		l, ok := v.(*rtfs.List)
		if !ok || site != nil {
			return
		}
		if strings.HasPrefix(rtfs.HeadName(l), "profile:") {
			site = l
			return
		}
		for _, it := range l.Items {
			find(it)
		}
	}
	for i := range ds {
		if ds[i].Span.File != PreludeFile {
			continue
		}
		if site == nil && form != nil {
			find(form)
		}
		if site == nil {
			continue
		}
		ds[i].Note = fmt.Sprintf("the value comes from %s, written at %s", rtfs.HeadName(site), ds[i].Span)
		ds[i].Span = site.S
	}
}

// configMap reads src and returns the config as a map, evaluating it when
// it is an expression.
func (l *Loader) configMap(src []byte, file string) (*rtfs.Map, rtfs.Value, Diagnostics) {
	read, err := rtfs.Read(src, file, rtfs.ReadOptions{})
	if err != nil {
		return nil, nil, syntaxDiags(err, file)
	}
	switch len(read.Forms) {
	case 0:
		return nil, nil, Diagnostics{{Code: CodeNoConfig, Message: "the file holds no config form",
			Hint: "write (agent.config :version \"0.1\" :agent-id \"...\" ...)",
			Span: rtfs.Span{File: file, Start: rtfs.Pos{Line: 1, Col: 1}, End: rtfs.Pos{Line: 1, Col: 1}}}}
	case 1:
	default:
		first, second := read.Forms[0].Span(), read.Forms[1]
		return nil, nil, Diagnostics{{Code: CodeExtraForm, Span: second.Span(),
			Message: fmt.Sprintf("a config file holds one form; %s follows the config that ends at %s",
				rtfs.Describe(second), lineCol(first.End)),
			Hint: "move it inside the config form, or delete it"}}
	}
	form, diags := rewriteAgentConfig(read.Forms[0])
	if len(diags) > 0 {
		return nil, nil, diags
	}
	if m, ok := form.(*rtfs.Map); ok && isLiteral(m) {
		return m, form, nil
	}
	if _, ok := form.(*rtfs.List); !ok {
		if _, isMap := form.(*rtfs.Map); !isMap {
			return nil, nil, Diagnostics{{Code: CodeNotAConfig, Span: form.Span(),
				Message: "expected (agent.config ...), a map or a profile call, found " + rtfs.Describe(form),
				Hint:    "write (agent.config :version \"0.1\" :agent-id \"...\" ...)"}}
		}
	}
	m, diags := l.evaluate(form)
	return m, form, diags
}

// evaluate hands an expression config to the Evaluator.
func (l *Loader) evaluate(form rtfs.Value) (*rtfs.Map, Diagnostics) {
	if l.Evaluator == nil {
		what := "this config is an expression"
		if h := rtfs.HeadName(form); h != "" {
			what = "this config is a call to " + h
		}
		return nil, Diagnostics{{Code: CodeEvaluatorNeeded, Span: form.Span(), cause: ErrNeedsEvaluator,
			Message: what + ": " + ErrNeedsEvaluator.Error(),
			Hint:    "write the expanded config as a literal (agent.config ...) form"}}
	}
	prelude, err := Prelude()
	if err != nil {
		return nil, Diagnostics{{Code: CodeEvalFailed, Span: form.Span(), cause: err,
			Message: "the profile prelude does not read: " + err.Error()}}
	}
	v, err := l.Evaluator.EvalConfig(prelude, form)
	if err != nil {
		return nil, Diagnostics{{Code: CodeEvalFailed, Span: form.Span(), cause: err,
			Message: "evaluating the config failed: " + err.Error()}}
	}
	m, ok := v.(*rtfs.Map)
	if !ok {
		return nil, Diagnostics{{Code: CodeNotAConfig, Span: form.Span(),
			Message: "the config expression evaluates to " + rtfs.Describe(v) + ", not a map",
			Hint:    "a config expression must return the config map"}}
	}
	if m.Span().IsZero() {
		// Values built by the evaluator have no span; report at the form.
		c := m.Clone()
		c.S = form.Span()
		m = c
	}
	return m, nil
}

// finish checks m against the schema, completes it, decodes it and runs
// the semantic rules.
func finish(m *rtfs.Map, diags Diagnostics) (*rtfs.Map, *Config, Diagnostics) {
	schema, err := LoadSchema()
	if err != nil {
		return nil, nil, append(diags, Diagnostic{Code: CodeModelMismatch, Span: m.Span(), cause: err,
			Message: "the embedded schema is broken: " + err.Error()})
	}
	if errs := schema.Root.Check(m, checkOptions); len(errs) > 0 {
		return nil, nil, append(diags, typeDiags(errs, m.Span())...)
	}
	full, ok := schema.Root.Complete(m, checkOptions).(*rtfs.Map)
	if !ok {
		return nil, nil, append(diags, Diagnostic{Code: CodeModelMismatch, Span: m.Span(),
			Message: "completing the config did not give a map"})
	}
	cfg, err := decode(full)
	if err != nil {
		return full, nil, append(diags, Diagnostic{Code: CodeModelMismatch, Span: m.Span(), cause: err,
			Message: "the schema and the Go model disagree: " + err.Error()})
	}
	diags = append(diags, resolveKeys(cfg)...)
	diags = append(diags, Validate(cfg)...)
	return full, cfg, diags
}

// rewriteAgentConfig turns every (agent.config :k v ...) form into the map
// literal {:k v ...}, keeping the form's span, so that a literal config is a
// map and an expression config evaluates without an agent.config function.
// Collections without such a form inside are returned as they are.
func rewriteAgentConfig(v rtfs.Value) (rtfs.Value, Diagnostics) {
	switch x := v.(type) {
	case *rtfs.List:
		items, changed, diags := rewriteItems(x.Items)
		if rtfs.HeadName(x) == "agent.config" && x.Sugar == rtfs.SugarNone {
			m, d := agentConfigMap(x, items[1:])
			return m, append(diags, d...)
		}
		if !changed {
			return v, diags
		}
		return &rtfs.List{Items: items, Meta: x.Meta, Sugar: x.Sugar, Orig: x.Orig, S: x.S}, diags
	case *rtfs.Vector:
		items, changed, diags := rewriteItems(x.Items)
		if !changed {
			return v, diags
		}
		return &rtfs.Vector{Items: items, Meta: x.Meta, S: x.S}, diags
	case *rtfs.Map:
		vals, changed, diags := rewriteItems(x.Vals())
		if !changed {
			return v, diags
		}
		out := rtfs.NewMap(x.Len())
		out.S, out.Meta = x.S, x.Meta
		for i, k := range x.Keys() {
			out.Set(k, vals[i])
		}
		return out, diags
	}
	return v, nil
}

// rewriteItems rewrites each item, copying the slice only on a change.
func rewriteItems(items []rtfs.Value) ([]rtfs.Value, bool, Diagnostics) {
	var diags Diagnostics
	out := items
	changed := false
	for i, it := range items {
		nv, d := rewriteAgentConfig(it)
		diags = append(diags, d...)
		if nv != it && !changed {
			out = append(make([]rtfs.Value, 0, len(items)), items...)
			changed = true
		}
		if changed {
			out[i] = nv
		}
	}
	return out, changed, diags
}

// agentConfigMap builds the map of an (agent.config ...) form from its
// arguments, which must alternate keyword keys and values.
func agentConfigMap(form *rtfs.List, args []rtfs.Value) (*rtfs.Map, Diagnostics) {
	var diags Diagnostics
	if len(args)%2 != 0 {
		last := args[len(args)-1]
		diags = append(diags, Diagnostic{Code: CodeTypeMismatch, Span: last.Span(),
			Message: fmt.Sprintf("(agent.config ...) takes keys and values in pairs; %s has no value", rtfs.Describe(last)),
			Hint:    "add the value after the key, or remove the key"})
		args = args[:len(args)-1]
	}
	m := rtfs.NewMap(len(args) / 2)
	m.S = form.S
	first := make(map[string]rtfs.Value, len(args)/2) // key name -> where it was written
	for i := 0; i < len(args); i += 2 {
		k := args[i]
		if _, ok := k.(rtfs.Keyword); !ok {
			diags = append(diags, Diagnostic{Code: CodeTypeMismatch, Span: k.Span(),
				Message: "(agent.config ...) keys are keywords, found " + rtfs.Describe(k),
				Hint:    "write :key value pairs, such as :version \"0.1\""})
			continue
		}
		name := k.(rtfs.Keyword).Name
		if prev, ok := first[name]; ok {
			diags = append(diags, Diagnostic{Code: CodeDuplicateKey, Path: name, Span: k.Span(),
				Message: fmt.Sprintf("key %s is given twice; it was first written at %s", rtfs.Print(k), lineCol(prev.Span().Start)),
				Hint:    "remove one of the two entries"})
			continue
		}
		first[name] = k
		m.Set(k, args[i+1])
	}
	return m, diags
}

// isLiteral reports whether v holds no list, so that reading it is all the
// evaluation it needs.
func isLiteral(v rtfs.Value) bool {
	switch x := v.(type) {
	case *rtfs.List:
		return false
	case *rtfs.Vector:
		for _, it := range x.Items {
			if !isLiteral(it) {
				return false
			}
		}
	case *rtfs.Map:
		for i, k := range x.Keys() {
			if !isLiteral(k) || !isLiteral(x.Vals()[i]) {
				return false
			}
		}
	}
	return true
}
