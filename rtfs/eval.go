package rtfs

import (
	"context"
	"errors"
	"fmt"
	"runtime/debug"
	"strings"
	"sync"
	"time"
)

// Host performs the effects of a program. The evaluator has no I/O of its
// own: (step "name" ...) and (call :capability.id ...) are delegated to the
// Host, which decides whether they may run (the guest forwards them to the
// host orchestrator, which checks them against the admitted plan).
type Host interface {
	// Step runs a named step of a plan. opts holds the options map written
	// after the name (an empty map if none). The host must call body at
	// most once, on the calling goroutine, before Step returns; body
	// evaluates the step's forms and returns the value of the last one.
	Step(ctx context.Context, name string, opts *Map, body func(context.Context) (Value, error)) (Value, error)
	// Call invokes the capability capID with evaluated arguments.
	Call(ctx context.Context, capID string, args []Value) (Value, error)
}

// StepRetrier is implemented by hosts that retry steps. A step written
// with :retry N whose body fails (with an error try/catch could catch) is
// evaluated again, up to N more times, inside the same Host.Step call; the
// interpreter calls RetryStep before each new attempt (attempt counts from
// 1), and an error from it ends the step with that error. With a host that
// does not implement StepRetrier, :retry is ignored: only the host can
// keep a retried step's side effects from repeating.
type StepRetrier interface {
	RetryStep(ctx context.Context, name string, attempt int, cause error) error
}

// ErrNoHost is returned (wrapped in a HostError) by the default host, which
// refuses every step and capability call.
var ErrNoHost = errors.New("no host is attached to this evaluation")

type refusingHost struct{}

func (refusingHost) Step(_ context.Context, name string, _ *Map, _ func(context.Context) (Value, error)) (Value, error) {
	return nil, fmt.Errorf("step %q cannot run: %w (steps run under ccos run, not ccos eval)", name, ErrNoHost)
}

func (refusingHost) Call(_ context.Context, capID string, _ []Value) (Value, error) {
	return nil, fmt.Errorf("capability %s cannot be called: %w (capabilities run under ccos run, not ccos eval)", capID, ErrNoHost)
}

// Limits bound what one evaluation may consume. A zero field takes the
// value from DefaultLimits.
type Limits struct {
	// Timeout bounds the wall-clock time of one Eval call.
	Timeout time.Duration
	// MaxSteps bounds the number of evaluated forms and function calls.
	MaxSteps int64
	// MaxDepth bounds the nesting of function calls (recursion depth).
	MaxDepth int
	// MaxCollection bounds the number of elements of any collection built,
	// and the length in bytes of any string built.
	MaxCollection int
	// MaxOutput bounds the bytes written by println, print and log and not
	// yet collected with TakeOutput.
	MaxOutput int
}

// DefaultLimits returns the limits used for fields left zero: 5 s, 10
// million steps, call depth 2000, a million elements, 1 MiB of output.
func DefaultLimits() Limits {
	return Limits{Timeout: 5 * time.Second, MaxSteps: 10_000_000, MaxDepth: 2000,
		MaxCollection: 1_000_000, MaxOutput: 1 << 20}
}

func (l Limits) withDefaults() Limits { return l.Or(DefaultLimits()) }

// Or returns l with every zero field taken from d.
func (l Limits) Or(d Limits) Limits {
	if l.Timeout <= 0 {
		l.Timeout = d.Timeout
	}
	if l.MaxSteps <= 0 {
		l.MaxSteps = d.MaxSteps
	}
	if l.MaxDepth <= 0 {
		l.MaxDepth = d.MaxDepth
	}
	if l.MaxCollection <= 0 {
		l.MaxCollection = d.MaxCollection
	}
	if l.MaxOutput <= 0 {
		l.MaxOutput = d.MaxOutput
	}
	return l
}

// Options configure an Interp. The zero value is usable: no host (steps
// and calls are refused), default limits, real sleeping.
type Options struct {
	Host   Host
	Limits Limits
	// Sleep implements (thread/sleep ms); nil waits on a timer, ending early
	// with the context. Tests inject a clock that does not wait.
	Sleep func(ctx context.Context, d time.Duration) error
}

// Interp evaluates RTFS forms. Definitions made with def and defn persist
// from one Eval call to the next. An Interp is not safe for concurrent use.
type Interp struct {
	host    Host
	lim     Limits
	sleep   func(context.Context, time.Duration) error
	globals map[string]Value
	// ownGlobals is set once globals is this interpreter's own copy.
	ownGlobals bool
	types      map[string]Value
	out        strings.Builder
	// macros are the macros defined with defmacro; modules the modules
	// defined with module; mod is the module whose body is being evaluated.
	macros  map[string]*Func
	modules map[string]*module
	mod     *module
	// regexps caches compiled regular expressions by pattern.
	regexps map[string]compiledRegexp

	// State of the evaluation in progress.
	ctx        context.Context
	deadline   time.Time
	steps      int64
	depth      int
	evalDepth  int
	macroDepth int
	stack      []Frame
	tail       vecTail
	argStack   []Value
}

// New returns an interpreter with the standard library loaded.
func New(opts Options) *Interp {
	in := &Interp{host: opts.Host, lim: opts.Limits.withDefaults(), sleep: opts.Sleep,
		globals: builtinGlobals(), types: make(map[string]Value), ctx: context.Background()}
	if in.host == nil {
		in.host = refusingHost{}
	}
	if in.sleep == nil {
		in.sleep = sleepCtx
	}
	return in
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Define binds name to v in the global environment.
func (in *Interp) Define(name string, v Value) { in.setGlobal(name, v) }

// builtinGlobals is the builtins table as globals, built once.
var builtinGlobals = sync.OnceValue(func() map[string]Value {
	g := make(map[string]Value, len(builtins))
	for k, f := range builtins {
		g[k] = f
	}
	return g
})

// setGlobal defines a global. An interpreter starts with the shared,
// read-only table of builtins as its globals, so that New costs nothing
// (a guest starts one per plan); the first definition copies the table.
func (in *Interp) setGlobal(name string, v Value) {
	if !in.ownGlobals {
		g := make(map[string]Value, len(builtins)+16)
		for k, f := range builtinGlobals() {
			g[k] = f
		}
		in.globals, in.ownGlobals = g, true
	}
	in.globals[name] = v
}

// Output returns what println, print and log wrote so far.
func (in *Interp) Output() string { return in.out.String() }

// TakeOutput returns the captured output and clears it.
func (in *Interp) TakeOutput() string {
	s := in.out.String()
	in.out.Reset()
	return s
}

// EvalString reads src and evaluates its forms in order, returning the value
// of the last one (nil for no forms). Reader errors are returned as is.
func (in *Interp) EvalString(ctx context.Context, src, file string) (Value, error) {
	forms, err := ReadString(src, file)
	if err != nil {
		return nil, err
	}
	return in.EvalForms(ctx, forms)
}

// Eval evaluates one form.
func (in *Interp) Eval(ctx context.Context, form Value) (Value, error) {
	return in.EvalForms(ctx, []Value{form})
}

// EvalForms evaluates forms in order under one budget and returns the value
// of the last one. Errors are *Error values.
func (in *Interp) EvalForms(ctx context.Context, forms []Value) (result Value, err error) {
	ctx, cancel := context.WithTimeout(ctx, in.lim.Timeout)
	defer cancel()
	in.ctx, in.steps, in.depth, in.evalDepth, in.macroDepth, in.stack, in.mod = ctx, 0, 0, 0, 0, in.stack[:0], nil
	in.deadline, _ = ctx.Deadline()
	in.tail, in.argStack = vecTail{}, in.argStack[:0]
	defer func() {
		if r := recover(); r != nil {
			result, err = nil, &Error{Type: ErrInternal,
				Message: fmt.Sprintf("evaluator panic: %v\n%s", r, debug.Stack())}
		}
	}()
	result = Nil{}
	for _, f := range forms {
		result, err = in.eval(f, nil)
		if err != nil {
			return nil, err
		}
		if _, ok := result.(*recurValue); ok {
			return nil, in.fail(f.Span(), ErrSpecialForm, "recur outside of loop or fn")
		}
	}
	// The caller will print or encode the result: bound its size.
	if err := in.checkTree(result, "result"); err != nil {
		return nil, in.locate(err, forms[len(forms)-1].Span())
	}
	return result, nil
}

// Apply calls f with args from inside a native function (map, reduce, ...).
func (in *Interp) Apply(f Value, args []Value) (Value, error) {
	return in.apply(f, args, Span{})
}

// fail returns an error raised at sp with the current call stack.
func (in *Interp) fail(sp Span, typ, format string, args ...any) *Error {
	e := newError(typ, format, args...)
	e.S = sp
	e.Stack = in.snapshot()
	return e
}

func (in *Interp) snapshot() []Frame {
	st := make([]Frame, len(in.stack))
	for i, f := range in.stack {
		st[len(st)-1-i] = f
	}
	return st
}

// locate gives an error without position the span of the form that raised it.
func (in *Interp) locate(err error, sp Span) error {
	var e *Error
	if !errors.As(err, &e) {
		e = asError(err, ErrHost)
		err = e
	}
	if e.S.IsZero() && !sp.IsZero() {
		e.S = sp
		e.Stack = in.snapshot()
	}
	return err
}

// tick charges one step and checks the context every 1024 steps.
func (in *Interp) tick(sp Span) error {
	in.steps++
	if in.steps > in.lim.MaxSteps {
		return in.fail(sp, ErrLimit, "evaluation step budget of %d exhausted (Limits.MaxSteps); the program may loop forever", in.lim.MaxSteps)
	}
	if in.steps&1023 == 0 {
		if err := in.ctx.Err(); err != nil {
			return in.ctxErr(sp, err)
		}
		// The context's timer may never fire while this goroutine computes:
		// where Go has no asynchronous preemption (wasip1, inside the wasm
		// sandbox) timers run only when a goroutine yields. So the deadline
		// is also checked against the clock.
		if !in.deadline.IsZero() && time.Now().After(in.deadline) {
			return in.ctxErr(sp, context.DeadlineExceeded)
		}
	}
	return nil
}

func (in *Interp) ctxErr(sp Span, err error) *Error {
	if errors.Is(err, context.DeadlineExceeded) {
		e := in.fail(sp, ErrLimit, "evaluation time limit exceeded (Limits.Timeout %s)", in.lim.Timeout)
		e.Cause = err
		return e
	}
	e := in.fail(sp, ErrCancelled, "evaluation cancelled: %v", err)
	e.Cause = err
	return e
}

// charge bills work proportional to n elements copied by a native
// function (one step per 8; map copies, which also rebuild their hash
// index, are billed 8 per entry by the callers), so that copying large immutable collections
// over and over exhausts the step budget instead of running unbounded.
func (in *Interp) charge(n int) error {
	in.steps += int64(n >> 3)
	if in.steps > in.lim.MaxSteps {
		return newError(ErrLimit, "evaluation step budget of %d exhausted (Limits.MaxSteps) while copying collections", in.lim.MaxSteps)
	}
	return nil
}

// checkSize enforces Limits.MaxCollection on a collection or string about
// to be built with n elements (or bytes).
func (in *Interp) checkSize(n int, what string) error {
	if n > in.lim.MaxCollection || n < 0 {
		return newError(ErrLimit, "%s of %d elements exceeds the collection size limit of %d (Limits.MaxCollection)", what, n, in.lim.MaxCollection)
	}
	return nil
}

// env is a lexical frame: a few names with their values and a parent.
// Frames are small (one function's parameters, one let's bindings), so a
// linear scan from the newest binding beats a hash map.
type env struct {
	names  []string
	vals   []Value
	parent *env
	// Room for the common small frame, so that a call allocates once.
	inlNames [3]string
	inlVals  [3]Value
}

func newEnv(parent *env, n int) *env {
	e := &env{parent: parent}
	if n <= len(e.inlNames) {
		e.names, e.vals = e.inlNames[:0], e.inlVals[:0]
	} else {
		e.names, e.vals = make([]string, 0, n), make([]Value, 0, n)
	}
	return e
}

func (e *env) bind(name string, v Value) {
	e.names = append(e.names, name)
	e.vals = append(e.vals, v)
}

func (e *env) lookup(name string) (Value, bool) {
	for ; e != nil; e = e.parent {
		for i := len(e.names) - 1; i >= 0; i-- {
			if e.names[i] == name {
				return e.vals[i], true
			}
		}
	}
	return nil, false
}

func (in *Interp) lookup(s Symbol, e *env) (Value, error) {
	if v, ok := e.lookup(s.Name); ok {
		return v, nil
	}
	if v, ok := in.globals[s.Name]; ok {
		return v, nil
	}
	if v, ok := builtins[s.Name]; ok {
		return v, nil
	}
	if _, ok := specialForms[s.Name]; ok {
		return nil, in.fail(s.S, ErrSpecialForm, "%s is a special form, not a value: it can only be called as (%s ...)", s.Name, s.Name)
	}
	if f := errorConstructor(s.Name); f != nil {
		return f, nil
	}
	return nil, in.unbound(s, e)
}

// unbound reports an unbound symbol, with the names it probably meant as
// the hint.
func (in *Interp) unbound(s Symbol, e *env) *Error {
	if err := in.privateName(s); err != nil {
		return err
	}
	err := in.fail(s.S, ErrUnboundSymbol, "unbound symbol %s: it is not defined by def, let, a function parameter or the standard library", s.Name)
	if s.Name == ":" {
		err.Hint = "a lone : separates a name from its type, as in (defn f [x : int] ...) or (let [x : int 5] ...); a keyword is written :name"
		return err
	}
	err.Hint = didYouMean(in.suggest(s.Name, e))
	return err
}

// eval evaluates x in e.
func (in *Interp) eval(x Value, e *env) (Value, error) {
	switch v := x.(type) {
	case Symbol:
		return in.lookup(v, e)
	case *List:
		return in.evalList(v, e)
	case *Vector:
		return in.evalVector(v, e)
	case *Map:
		return in.evalMap(v, e)
	case nil:
		return Nil{}, nil
	}
	return x, nil
}

func (in *Interp) evalVector(v *Vector, e *env) (Value, error) {
	if isConstant(v) {
		return v, nil
	}
	items, err := in.evalArgs(v.Items, e)
	if err != nil {
		return nil, err
	}
	return &Vector{Items: items}, nil
}

func (in *Interp) evalMap(m *Map, e *env) (Value, error) {
	if isConstant(m) {
		return m, nil
	}
	out := NewMap(m.Len())
	for i, k := range m.keys {
		kv, err := in.evalArg(k, e)
		if err != nil {
			return nil, err
		}
		if err := in.checkTree(kv, "map key"); err != nil {
			return nil, in.locate(err, k.Span())
		}
		vv, err := in.evalArg(m.vals[i], e)
		if err != nil {
			return nil, err
		}
		out.Set(kv, vv)
	}
	return out, nil
}

// isConstant reports whether evaluating v gives v itself (no symbols or
// lists inside), so that literal data is not copied on every evaluation.
func isConstant(v Value) bool {
	switch x := v.(type) {
	case Symbol, *List:
		return false
	case *Vector:
		for _, it := range x.Items {
			if !isConstant(it) {
				return false
			}
		}
	case *Map:
		for i, k := range x.keys {
			if !isConstant(k) || !isConstant(x.vals[i]) {
				return false
			}
		}
	}
	return true
}

// evalArg evaluates a form whose value is used (not in tail position).
func (in *Interp) evalArg(x Value, e *env) (Value, error) {
	v, err := in.eval(x, e)
	if err != nil {
		return nil, err
	}
	if _, ok := v.(*recurValue); ok {
		return nil, in.fail(x.Span(), ErrSpecialForm, "recur must be in tail position of a loop or fn")
	}
	return v, nil
}

func (in *Interp) evalArgs(xs []Value, e *env) ([]Value, error) {
	out := make([]Value, len(xs))
	for i, x := range xs {
		v, err := in.evalArg(x, e)
		if err != nil {
			return nil, err
		}
		out[i] = v
	}
	return out, nil
}

// evalBody evaluates forms in order and returns the last value (nil if none).
func (in *Interp) evalBody(body []Value, e *env) (Value, error) {
	if len(body) == 0 {
		return Nil{}, nil
	}
	for _, f := range body[:len(body)-1] {
		if _, err := in.evalArg(f, e); err != nil {
			return nil, err
		}
	}
	return in.eval(body[len(body)-1], e)
}

func (in *Interp) evalList(l *List, e *env) (Value, error) {
	if len(l.Items) == 0 {
		return l, nil
	}
	if err := in.tick(l.S); err != nil {
		return nil, err
	}
	in.evalDepth++
	v, err := in.evalCall(l, e)
	in.evalDepth--
	return v, err
}

func (in *Interp) evalCall(l *List, e *env) (Value, error) {
	if in.evalDepth > maxEvalNesting {
		return nil, in.fail(l.S, ErrLimit, "expression nesting deeper than %d", maxEvalNesting)
	}
	head := l.Items[0]
	if m := in.macroFor(l, e); m != nil {
		return in.evalMacroCall(m, l, e)
	}
	if s, ok := head.(Symbol); ok {
		if sf, ok := specialForms[s.Name]; ok {
			if _, shadowed := e.lookup(s.Name); !shadowed {
				return sf(in, l, e)
			}
		}
	}
	switch head.(type) {
	case Int, Float, String, Bool:
		// (1 2 3): a list whose head can never be called is data, its
		// elements evaluated like a vector's (spec 03 §1).
		items, err := in.evalArgs(l.Items, e)
		if err != nil {
			return nil, err
		}
		return &List{Items: items}, nil
	}
	f, err := in.evalArg(head, e)
	if err != nil {
		return nil, err
	}
	// Arguments live on a stack shared by all calls: callees copy what they
	// keep (closures bind them into a frame, natives must not retain args).
	base := len(in.argStack)
	for _, x := range l.Items[1:] {
		v, err := in.evalArg(x, e)
		if err != nil {
			in.argStack = in.argStack[:base]
			return nil, err
		}
		in.argStack = append(in.argStack, v)
	}
	v, err := in.apply(f, in.argStack[base:len(in.argStack):len(in.argStack)], l.S)
	clear(in.argStack[base:])
	in.argStack = in.argStack[:base]
	return v, err
}

// maxEvalNesting bounds Go recursion independently of MaxDepth: each call
// nests a few evaluations, so this stays far below Go's stack limit.
const maxEvalNesting = 200_000

// apply calls f with evaluated args; sp is the call site.
func (in *Interp) apply(f Value, args []Value, sp Span) (Value, error) {
	switch fn := f.(type) {
	case *Func:
		if fn.native != nil {
			v, err := fn.native(in, args)
			if err != nil {
				return nil, in.locate(err, sp)
			}
			return v, nil
		}
		return in.callClosure(fn, args, sp)
	case Keyword:
		if len(args) < 1 || len(args) > 2 {
			return nil, in.fail(sp, ErrArity, "keyword :%s called with %d arguments; write (:%s map) or (:%s map default)", fn.Name, len(args), fn.Name, fn.Name)
		}
		return lookupIn(args[0], fn, args[1:]), nil
	case *Map:
		if len(args) < 1 || len(args) > 2 {
			return nil, in.fail(sp, ErrArity, "a map called as a function takes a key and an optional default, got %d arguments", len(args))
		}
		return lookupIn(fn, args[0], args[1:]), nil
	case *Vector:
		if len(args) != 1 {
			return nil, in.fail(sp, ErrArity, "a vector called as a function takes one index, got %d arguments", len(args))
		}
		v, err := nth(fn.Items, args[0], nil)
		if err != nil {
			return nil, in.locate(err, sp)
		}
		return v, nil
	}
	return nil, in.fail(sp, ErrType, "cannot call %s: only functions, keywords, maps and vectors can be called", describe(f))
}

// lookupIn implements (get coll key default) for maps and error values.
func lookupIn(coll, key Value, def []Value) Value {
	switch c := coll.(type) {
	case *Map:
		if v, ok := c.Get(key); ok {
			return v
		}
	case *Error:
		if k, ok := key.(Keyword); ok {
			if v := errorField(c, k.Name); v != nil {
				return v
			}
		}
	case *Vector:
		if i, ok := key.(Int); ok && i.V >= 0 && i.V < int64(len(c.Items)) {
			return c.Items[i.V]
		}
	}
	if len(def) > 0 {
		return def[0]
	}
	return Nil{}
}

func errorField(e *Error, name string) Value {
	switch name {
	case "message":
		return String{V: e.Message}
	case "type":
		return Keyword{Name: e.Type}
	case "data":
		return orNil(e.Data)
	case "hint":
		if e.Hint == "" {
			return Nil{}
		}
		return String{V: e.Hint}
	}
	return nil
}

// Func is a function value: a closure made by fn/defn or a native function
// of the standard library. It prints as #<fn name>.
type Func struct {
	Name   string
	native NativeFunc
	cl     *closure
}

// NativeFunc is the Go implementation of a function. It returns *Error
// values (or any error, reported as a HostError); the evaluator adds the
// position and call stack. The args slice is only valid during the call:
// copy it to keep it.
type NativeFunc func(in *Interp, args []Value) (Value, error)

// NewNative returns a function value implemented in Go.
func NewNative(name string, fn NativeFunc) *Func { return &Func{Name: name, native: fn} }

// Kind reports KindFunc.
func (*Func) Kind() Kind { return KindFunc }

// Span reports the zero span: functions are run-time values.
func (*Func) Span() Span { return Span{} }

// String returns #<fn name>.
func (f *Func) String() string {
	if f.Name == "" {
		return "#<fn>"
	}
	return "#<fn " + f.Name + ">"
}

// Atom is a mutable reference made by (atom v), read with (deref a) or @a
// and changed with reset! and swap!.
type Atom struct{ V Value }

// Kind reports KindAtom.
func (*Atom) Kind() Kind { return KindAtom }

// Span reports the zero span: atoms are run-time values.
func (*Atom) Span() Span { return Span{} }

// String returns #<atom value>.
func (a *Atom) String() string {
	var b strings.Builder
	b.WriteString("#<atom ")
	if !printBounded(&b, a.V, 1<<20) {
		b.WriteString("...")
	}
	b.WriteString(">")
	return b.String()
}

// recurValue carries the arguments of (recur ...) back to the enclosing
// loop or fn; it never escapes to a program.
type recurValue struct {
	args []Value
	S    Span
}

func (*recurValue) Kind() Kind       { return KindOther }
func (r *recurValue) Span() Span     { return r.S }
func (r *recurValue) String() string { return "#<recur>" }
