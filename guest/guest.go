// Package guest is the agent that runs inside a sandbox: it receives a plan
// over the control channel, evaluates it, asks the host to enter and leave
// each step, runs pure capability calls itself and yields the others to the
// host, streams the plan's output and reports the result.
//
// The guest holds no credentials and the host believes none of its claims:
// every request it makes is checked on the host side. Its own checks (a
// step it was not given is refused before asking) only make failures
// clearer.
package guest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"sync"
	"time"

	"github.com/ccos-project/ccos/capability"
	"github.com/ccos-project/ccos/control"
	"github.com/ccos-project/ccos/plan"
	"github.com/ccos-project/ccos/rtfs"
)

// Exit statuses of Run.
const (
	// ExitOK: the plan ran and its value or error was reported.
	ExitOK = 0
	// ExitProtocol: the session with the host failed.
	ExitProtocol = 3
)

// Run serves one session on conn and returns the process exit status. A
// plan that fails is still a successful session: its error is reported to
// the host in the done message.
func Run(conn io.ReadWriteCloser) int { return RunWithMeasurements(conn, Measurements) }

// RunWithMeasurements is Run reporting meas, the guest's own measurements
// of what it booted, in its hello.
func RunWithMeasurements(conn io.ReadWriteCloser, meas map[string]string) int {
	defer conn.Close()
	WarmUp()
	g := &agent{c: control.NewConn(conn, control.GuestSide, 0), caps: capability.BuiltinsWith(capability.Options{Workdir: Workdir}),
		out: newOutbox(), meas: meas}
	if err := g.serve(); err != nil {
		// The host sees the session end; it reads the reason from the
		// sandbox log.
		fmt.Fprintln(logOut, "ccos guest:", err)
		return ExitProtocol
	}
	return ExitOK
}

// Workdir is the step workdir inside the sandbox, where the ccos.io
// capabilities are confined: every provider mounts a fresh, size-limited
// directory there.
var Workdir = "/work"

// Measurements are what the guest reports in its hello about what it
// booted from (a microVM's init measures its rootfs device); nil elsewhere.
var Measurements map[string]string

// newOutbox returns the guest's event buffer: 256 KiB in memory, then up
// to 16 MiB spilled to a hidden file of the workdir (the sandbox's tmpfs)
// when there is one.
func newOutbox() *Outbox {
	o := &Outbox{MemBytes: 256 << 10, SpillBytes: 16 << 20}
	if fi, err := os.Stat(Workdir); err == nil && fi.IsDir() {
		o.SpillPath = Workdir + "/.ccos-events"
	}
	return o
}

// logOut is where the guest writes diagnostics (its standard error, which
// the host keeps bounded).
var logOut io.Writer = stderr{}

type agent struct {
	meas     map[string]string
	c        *control.Conn
	caps     *capability.Registry
	admitted map[string]bool
	grants   map[string]control.Grant
	// unstepped are the capabilities the plan may call outside steps.
	unstepped []string
	// steps is the stack of steps being run, innermost last, and ords the
	// number of capability calls each has made in its current attempt.
	steps []string
	ords  []uint64
	// planHash is the admitted plan's hash, from which idempotency keys
	// are derived; wal records the side-effecting calls the guest runs,
	// opened at its first use (walPath "" keeps it in memory).
	planHash, session, walPath string
	wal                        *WAL
	// out buffers the guest's own events (claims about the capability
	// calls it runs itself) until the host records them.
	out    *Outbox
	in     *rtfs.Interp
	outSeq uint64
}

// warmUp does once, before the guest says hello, the work whose first run
// is slow: building the JSON codecs of the protocol messages, reading a
// plan and starting an interpreter. A guest waiting in a warm pool has then
// paid for it before a plan is dispatched to it (in the wasm sandbox this
// took dispatch from about 3 ms to under 1 ms; see docs/BENCHMARKS.md).
// It touches nothing outside the process.
// WarmUp pays the guest agent's first-use costs (protocol codecs, the
// reader, the builtins) ahead of a session; Run does it too. A microVM
// snapshot template calls it before it is frozen, so restored copies start
// warm.
func WarmUp() { warmOnce.Do(warmUp) }

// WarmUpAgain does the warm-up work again, whether or not it was done. A
// microVM clone calls it: it resumes a template that was warmed up, but
// under TCG its translated code is not part of the snapshot, so the same
// code runs cold once more unless something runs it before the plan.
func WarmUpAgain() { warmUp() }

var warmOnce sync.Once

func warmUp() {
	var buf bytes.Buffer
	host := control.NewConn(&buf, control.HostSide, 0)
	guest := control.NewConn(&buf, control.GuestSide, 0)
	const sample = `(plan "warm-up" :body (step "s" (call :ccos.echo [1 "a" :k {:m 2.5}])))`
	host.Send(&control.Welcome{Protocol: control.ProtocolVersion, Session: "warm-up"}, 0)
	host.Send(&control.Run{Plan: sample, File: "warm-up", Steps: []string{"s"}}, 0)
	guest.Recv()
	guest.Recv()
	guest.Send(&control.StepBegin{Name: "s"}, 0)
	if p, err := plan.Read([]byte(sample), "warm-up"); err == nil {
		rtfs.New(rtfs.Options{}).Eval(context.Background(), p.Body)
	}
}

func (g *agent) serve() error {
	if _, err := g.c.Send(&control.Hello{Protocol: control.ProtocolVersion, Measurements: g.meas}, 0); err != nil {
		return err
	}
	m, err := g.c.Recv()
	if err != nil {
		return fmt.Errorf("waiting for welcome: %w", err)
	}
	w, ok := m.Body.(*control.Welcome)
	if !ok {
		return fmt.Errorf("expected welcome, got %s", m.Type)
	}
	if w.Protocol != control.ProtocolVersion {
		return fmt.Errorf("host speaks protocol %d, guest speaks %d", w.Protocol, control.ProtocolVersion)
	}
	g.session = w.Session
	m, err = g.c.Recv()
	if err != nil {
		return fmt.Errorf("waiting for the plan: %w", err)
	}
	run, ok := m.Body.(*control.Run)
	if !ok {
		return fmt.Errorf("expected run, got %s", m.Type)
	}
	return g.run(run)
}

func (g *agent) run(run *control.Run) error {
	g.admitted = make(map[string]bool, len(run.Steps))
	for _, s := range run.Steps {
		g.admitted[s] = true
	}
	g.grants = make(map[string]control.Grant, len(run.Grants))
	for _, gr := range run.Grants {
		g.grants[gr.Step] = gr
	}
	g.unstepped = run.Unstepped
	g.planHash = run.PlanHash
	if fi, err := os.Stat(Workdir); err == nil && fi.IsDir() {
		g.walPath = Workdir + "/" + capability.ReservedPrefix + "wal"
	}
	defer func() {
		if g.wal != nil {
			g.wal.Close()
		}
	}()
	p, err := plan.Read([]byte(run.Plan), run.File)
	if err != nil {
		return g.done(nil, err)
	}
	g.in = rtfs.New(rtfs.Options{Host: g, Limits: rtfs.Limits{
		Timeout:       time.Duration(run.Limits.TimeoutMillis) * time.Millisecond,
		MaxSteps:      run.Limits.Steps,
		MaxDepth:      run.Limits.Depth,
		MaxCollection: run.Limits.CollectionSize,
		MaxOutput:     run.Limits.OutputBytes,
	}})
	v, err := g.in.Eval(context.Background(), p.Body)
	if ferr := g.flushOutput(); ferr != nil {
		return ferr
	}
	if ferr := g.flushEvents(); ferr != nil {
		return ferr
	}
	return g.done(v, err)
}

// done reports the plan's value or error.
func (g *agent) done(v rtfs.Value, err error) error {
	d := &control.Done{}
	if err != nil {
		d.Error = errorInfo(err)
	} else {
		s := rtfs.Print(v)
		d.Value = &s
	}
	_, serr := g.c.Send(d, 0)
	if errors.Is(serr, control.ErrFrameTooLarge) && d.Value != nil {
		d.Value = nil
		d.Error = &control.ErrorInfo{Type: "LimitError", Message: fmt.Sprintf("the plan's value is too large to return (%d bytes printed)", len(rtfs.Print(v)))}
		_, serr = g.c.Send(d, 0)
	}
	return serr
}

func errorInfo(err error) *control.ErrorInfo {
	var re *rtfs.Error
	if errors.As(err, &re) {
		info := &control.ErrorInfo{Type: re.Type, Message: re.Message}
		if !re.S.IsZero() {
			info.Where = re.S.String()
		}
		for _, f := range re.Stack {
			info.Stack = append(info.Stack, f.Name+" ("+f.S.String()+")")
		}
		return info
	}
	return &control.ErrorInfo{Type: "PlanError", Message: err.Error()}
}

// flushOutput sends what the plan printed since the last flush.
func (g *agent) flushOutput() error {
	text := g.in.TakeOutput()
	for len(text) > 0 {
		chunk := text
		if len(chunk) > control.DefaultMaxFrame/2 {
			chunk = chunk[:control.DefaultMaxFrame/2]
		}
		text = text[len(chunk):]
		g.outSeq++
		if _, err := g.c.Send(&control.Output{Seq: g.outSeq, Text: chunk}, 0); err != nil {
			return err
		}
	}
	return nil
}

// ask sends a request and waits for its answer: nil for ok, the value for
// result, an error for a refusal.
func (g *agent) ask(body any) (rtfs.Value, error) {
	if err := g.flushOutput(); err != nil {
		return nil, err
	}
	if err := g.flushEvents(); err != nil {
		return nil, err
	}
	return g.request(body)
}

// flushEvents sends every buffered event and waits until the host has
// recorded them.
func (g *agent) flushEvents() error {
	if g.out.Len() == 0 {
		return nil
	}
	items, err := g.out.Pending()
	if err != nil {
		return err
	}
	if _, err := g.request(&control.Events{Items: items}); err != nil {
		return fmt.Errorf("recording guest events: %w", err)
	}
	return g.out.Acked()
}

// emit records an event of the guest's own; when the buffer is full the
// plan pauses while the host records what is buffered.
func (g *agent) emit(typ string, payload rtfs.Value) error {
	step := ""
	if len(g.steps) > 0 {
		step = g.steps[len(g.steps)-1]
	}
	text := rtfs.Print(payload)
	err := g.out.Add(typ, step, text)
	if errors.Is(err, ErrOutboxFull) {
		if err = g.flushEvents(); err == nil {
			err = g.out.Add(typ, step, text)
		}
	}
	return err
}

// request sends a request and waits for its answer.
func (g *agent) request(body any) (rtfs.Value, error) {
	id, err := g.c.Request(body)
	if err != nil {
		return nil, err
	}
	m, err := g.c.Recv()
	if err != nil {
		return nil, fmt.Errorf("waiting for the host: %w", err)
	}
	if m.Re != id {
		if e, ok := m.Body.(*control.Error); ok {
			return nil, fmt.Errorf("the host ended the session: %s", e.Message)
		}
		return nil, fmt.Errorf("expected the answer to request %d, got %s", id, m.Type)
	}
	switch b := m.Body.(type) {
	case *control.OK:
		return nil, nil
	case *control.Result:
		return rtfs.ReadOne(b.Value, "<host>")
	case *control.Error:
		return nil, errors.New(b.Message)
	}
	return nil, fmt.Errorf("unexpected %s", m.Type)
}

// granted checks a call against what the host admitted for the step in
// progress (the host checks again: this only gives the plan a clear error
// early).
func (g *agent) granted(capID string) error {
	if len(g.steps) == 0 {
		if slices.Contains(g.unstepped, capID) {
			return nil
		}
		return fmt.Errorf("capability %s was not admitted outside a step", capID)
	}
	step := g.steps[len(g.steps)-1]
	gr := g.grants[step]
	if slices.Contains(gr.Capabilities, capID) || gr.Dynamic {
		return nil
	}
	return fmt.Errorf("capability %s is not in the profile of step %q (it may call %v)", capID, step, gr.Capabilities)
}

// Step implements rtfs.Host: the host must admit the step before its body
// runs, and hears when it ends.
func (g *agent) Step(ctx context.Context, name string, _ *rtfs.Map, body func(context.Context) (rtfs.Value, error)) (rtfs.Value, error) {
	if !g.admitted[name] {
		return nil, fmt.Errorf("step %q was not admitted for this plan", name)
	}
	if _, err := g.ask(&control.StepBegin{Name: name}); err != nil {
		return nil, fmt.Errorf("step %q refused: %w", name, err)
	}
	g.steps = append(g.steps, name)
	g.ords = append(g.ords, 0)
	v, err := body(ctx)
	g.steps, g.ords = g.steps[:len(g.steps)-1], g.ords[:len(g.ords)-1]
	end := &control.StepEnd{Name: name, OK: err == nil}
	if err != nil {
		end.Error = err.Error()
	}
	if _, aerr := g.ask(end); aerr != nil {
		return nil, fmt.Errorf("ending step %q: %w", name, aerr)
	}
	return v, err
}

// RetryStep implements rtfs.StepRetrier: the host hears that the step in
// progress failed and runs again, and the step's calls are numbered from 1
// again, so that each gets the idempotency key it had in the first
// attempt.
func (g *agent) RetryStep(_ context.Context, name string, attempt int, cause error) error {
	if n := len(g.steps); n == 0 || g.steps[n-1] != name {
		return fmt.Errorf("step %q is not the step in progress", name)
	}
	if _, err := g.ask(&control.StepRetry{Name: name, Attempt: attempt, Error: cause.Error()}); err != nil {
		return fmt.Errorf("retrying step %q: %w", name, err)
	}
	g.ords[len(g.ords)-1] = 0
	return nil
}

// ErrInDoubt is wrapped when a retried step reaches a side-effecting call
// that an earlier attempt started without recording its outcome: the call
// may have taken effect, so it is not run again.
var ErrInDoubt = errors.New("side-effecting call in doubt")

// ErrKeyConflict is wrapped when a retried step makes, under an idempotency
// key, another call than the earlier attempt made under it.
var ErrKeyConflict = errors.New("idempotency key conflict")

// callKey numbers a call of the step in progress and returns its ordinal
// and idempotency key (0 and "" outside steps).
func (g *agent) callKey() (uint64, string) {
	n := len(g.steps)
	if n == 0 {
		return 0, ""
	}
	g.ords[n-1]++
	return g.ords[n-1], control.CallKey(g.planHash, g.steps[n-1], g.ords[n-1])
}

// Call implements rtfs.Host: pure and workdir capabilities run here, the
// others are yielded to the host.
func (g *agent) Call(ctx context.Context, capID string, args []rtfs.Value) (rtfs.Value, error) {
	if err := g.granted(capID); err != nil {
		return nil, err
	}
	ord, key := g.callKey()
	if c, err := g.caps.Lookup(capID); err == nil && c.Class != capability.Host {
		if c.Mutates && key != "" {
			return g.callOnce(ctx, c, args, ord, key)
		}
		return g.callLocal(ctx, c, args)
	}
	texts := make([]string, len(args))
	for i, a := range args {
		texts[i] = rtfs.Print(a)
	}
	v, err := g.ask(&control.Call{Capability: capID, Args: texts, Key: key, Ordinal: ord})
	if err != nil {
		return nil, fmt.Errorf("capability %s: %w", capID, err)
	}
	if v == nil {
		return rtfs.Nil{}, nil
	}
	return v, nil
}

// callOnce runs a side-effecting capability of the guest at most once per
// idempotency key: the outcome of an earlier attempt is returned instead,
// and a call an earlier attempt started without finishing is in doubt.
func (g *agent) callOnce(ctx context.Context, c *capability.Capability, args []rtfs.Value, ord uint64, key string) (rtfs.Value, error) {
	step := g.steps[len(g.steps)-1]
	if g.wal == nil {
		w, err := OpenWAL(g.walPath, g.session)
		if err != nil {
			return nil, fmt.Errorf("capability %s not run: opening the write-ahead log: %w", c.ID, err)
		}
		g.wal = w
	}
	digest := ArgsDigest(args)
	if e, ok := g.wal.Lookup(key); ok {
		if e.Capability != c.ID || e.Args != digest {
			return nil, fmt.Errorf("%w: %s (call %d of step %q, key %s) is not the call an earlier attempt made under that key (%s with other arguments), so it is not run; a retried step must make the same side-effecting calls in the same order",
				ErrKeyConflict, c.ID, ord, step, key, e.Capability)
		}
		if !e.Done {
			return nil, fmt.Errorf("%w: capability %s (call %d of step %q, key %s) was started by an earlier attempt that did not record its outcome; it may have taken effect, so it is not run again",
				ErrInDoubt, c.ID, ord, step, key)
		}
		if err := g.emit("guest.event", rtfs.MapOf(rtfs.Keyword{Name: "replayed"}, rtfs.Keyword{Name: c.ID},
			rtfs.Keyword{Name: "key"}, rtfs.String{V: key})); err != nil {
			return nil, err
		}
		if e.Error != "" {
			return nil, errors.New(e.Error)
		}
		return rtfs.ReadOne(e.Value, "<wal>")
	}
	if err := g.wal.Started(key, c.ID, digest); err != nil {
		return nil, fmt.Errorf("capability %s not run: %w", c.ID, err)
	}
	v, cerr := g.callLocal(ctx, c, args)
	text := ""
	if cerr == nil {
		text = rtfs.Print(v)
	}
	if err := g.wal.Finished(key, text, cerr); err != nil {
		return nil, fmt.Errorf("capability %s ran, but its outcome was not logged: %w", c.ID, err)
	}
	return v, cerr
}

// callLocal runs a capability of the guest, recording the call and its
// result as the guest's claims.
func (g *agent) callLocal(ctx context.Context, c *capability.Capability, args []rtfs.Value) (rtfs.Value, error) {
	// The host never sees these calls: the guest records them as its own
	// claims.
	if err := g.emit("capability.call", rtfs.MapOf(rtfs.Keyword{Name: "capability"}, rtfs.Keyword{Name: c.ID},
		rtfs.Keyword{Name: "args"}, rtfs.NewVector(slices.Clone(args)...))); err != nil {
		return nil, err
	}
	v, cerr := c.Fn(ctx, args)
	result := rtfs.MapOf(rtfs.Keyword{Name: "capability"}, rtfs.Keyword{Name: c.ID}, rtfs.Keyword{Name: "ok"}, rtfs.Bool{V: cerr == nil})
	if cerr != nil {
		result.Set(rtfs.Keyword{Name: "error"}, rtfs.String{V: cerr.Error()})
	} else {
		result.Set(rtfs.Keyword{Name: "value"}, v)
	}
	if err := g.emit("capability.result", result); err != nil {
		return nil, err
	}
	return v, cerr
}
