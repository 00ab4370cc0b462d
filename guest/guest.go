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
	g := &agent{c: control.NewConn(conn, control.GuestSide, 0), caps: builtins(),
		out: newOutbox(), meas: meas}
	if err := g.serve(); err != nil {
		// The host sees the session end; it reads the reason from the
		// sandbox log.
		fmt.Fprintln(logOut, "ccos guest:", err)
		return ExitProtocol
	}
	return ExitOK
}

// builtins returns the capabilities the guest runs itself (tests add
// their own).
var builtins = func() *capability.Registry { return capability.BuiltinsWith(capability.Options{Workdir: Workdir}) }

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
	// entered are the steps entered in this run, order the order they
	// were entered in, and at[i] the index in order of steps[i]: a step
	// runs once, but for the steps of a retried step's failed attempt.
	entered map[string]bool
	order   []string
	at      []int
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

// done reports the plan's value or error. A value too large for one
// message is reported as a LimitExceeded error instead.
func (g *agent) done(v rtfs.Value, err error) error {
	d := &control.Done{}
	if err != nil {
		d.Error = errorInfo(err)
	} else if text, ok := rtfs.PrintLimited(v, maxValueMessage); ok {
		d.Value = &text
	} else {
		d.Error = valueTooLarge()
	}
	_, serr := g.c.Send(d, 0)
	if errors.Is(serr, control.ErrFrameTooLarge) && d.Value != nil {
		// The value's text fits, but not once escaped for the message.
		d.Value, d.Error = nil, valueTooLarge()
		_, serr = g.c.Send(d, 0)
	}
	return serr
}

// maxValueMessage bounds the text of a value sent in one message: the
// frame, less room for the envelope.
const maxValueMessage = control.DefaultMaxFrame - 64<<10

func valueTooLarge() *control.ErrorInfo {
	return &control.ErrorInfo{Type: rtfs.ErrLimit, Message: fmt.Sprintf("the plan's value is too large to return: its text is longer than the %d bytes one control message carries", maxValueMessage)}
}

func errorInfo(err error) *control.ErrorInfo {
	var re *rtfs.Error
	if errors.As(err, &re) {
		info := &control.ErrorInfo{Type: re.Type, Message: re.Message, Hint: re.Hint}
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
		// Escaped for JSON a byte may take six: a chunk of 512 KiB fits
		// in a frame whatever it holds.
		chunk := text
		if len(chunk) > outputChunk {
			chunk = chunk[:outputChunk]
		}
		text = text[len(chunk):]
		g.outSeq++
		if _, err := g.c.Send(&control.Output{Seq: g.outSeq, Text: chunk}, 0); err != nil {
			return err
		}
	}
	return nil
}

// flushOutputOver sends the plan's output once more than n bytes of it
// wait, so that the host has it even if the guest dies before its next
// request.
func (g *agent) flushOutputOver(n int) error {
	if len(g.in.Output()) <= n {
		return nil
	}
	return g.flushOutput()
}

// outputChunk bounds the text of one output message.
const outputChunk = 512 << 10

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

// flushEvents sends every buffered event, in batches that fit a frame,
// and waits until the host has recorded them.
func (g *agent) flushEvents() error {
	if g.out.Len() == 0 {
		return nil
	}
	items, err := g.out.Pending()
	if err != nil {
		return err
	}
	for len(items) > 0 {
		n := batchLen(items)
		if _, err := g.request(&control.Events{Items: items[:n]}); err != nil {
			return fmt.Errorf("recording guest events: %w", err)
		}
		items = items[n:]
	}
	return g.out.Acked()
}

// batchBytes bounds the payload text of one events message: escaped for
// JSON (a byte may take six) a batch still fits in a frame.
const batchBytes = 512 << 10

// batchLen returns how many of items go in the next batch: at least one
// (an item is at most control.MaxEventPayload), at most
// control.MaxEventItems, and no more than batchBytes of payload.
func batchLen(items []control.EventItem) int {
	size := 0
	for i, it := range items {
		size += len(it.Type) + len(it.Step) + len(it.Payload)
		if i > 0 && (i == control.MaxEventItems || size > batchBytes) {
			return i
		}
	}
	return len(items)
}

// emit records an event of the guest's own. Once the events waiting fill
// the outbox's memory they are sent (the plan pauses while the host
// records them): the host learns of them soon, and the spill file is
// left for when the host cannot take them.
func (g *agent) emit(typ string, payload rtfs.Value) error {
	step := ""
	if len(g.steps) > 0 {
		step = g.steps[len(g.steps)-1]
	}
	// The recorded fields are bounded already (recordable); this only
	// keeps a payload that is not within the host's bound.
	text, ok := rtfs.PrintLimited(payload, control.MaxEventPayload)
	if !ok {
		full, _ := rtfs.PrintLimited(payload, capability.MaxValueBytes)
		text = rtfs.Print(control.Summary(full))
	}
	err := g.out.Add(typ, step, text)
	if errors.Is(err, ErrOutboxFull) {
		if err = g.flushEvents(); err == nil {
			err = g.out.Add(typ, step, text)
		}
	}
	if err == nil && g.out.Bytes() >= g.out.MemBytes {
		err = g.flushEvents()
	}
	return err
}

// request sends a request and waits for its answer.
func (g *agent) request(body any) (rtfs.Value, error) {
	id, err := g.c.Request(body)
	if errors.Is(err, control.ErrFrameTooLarge) {
		// Nothing was sent: the session goes on, the plan gets the limit.
		return nil, &rtfs.Error{Type: rtfs.ErrLimit, Message: fmt.Sprintf("the request is too large for one control message (%v)", err), Cause: err}
	}
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

// route decides where a call goes, from what the host granted: a
// capability in the grant of the step in progress (or admitted outside
// steps) runs here if the guest has it and it is not a host capability,
// else it is yielded; in a step that declared its effects, any other call
// is yielded too, for the host to refuse with the rule that refuses it;
// anything else is refused here. The host decides again for every call
// yielded, and checks every call the guest reports it ran.
func (g *agent) route(capID string) (local *capability.Capability, err error) {
	granted, dynamic := g.unstepped, false
	step := ""
	if n := len(g.steps); n > 0 {
		step = g.steps[n-1]
		granted, dynamic = g.grants[step].Capabilities, g.grants[step].Dynamic
	}
	if !slices.Contains(granted, capID) {
		switch {
		case dynamic:
			return nil, nil
		case step == "":
			return nil, fmt.Errorf("capability %s was not admitted outside a step", capID)
		}
		return nil, fmt.Errorf("capability %s is not in the profile of step %q (it may call %v)", capID, step, granted)
	}
	if c, err := g.caps.Lookup(capID); err == nil && c.Class != capability.Host {
		return c, nil
	}
	return nil, nil
}

// Step implements rtfs.Host: the host must admit the step before its body
// runs, and hears when it ends.
func (g *agent) Step(ctx context.Context, name string, _ *rtfs.Map, body func(context.Context) (rtfs.Value, error)) (rtfs.Value, error) {
	if !g.admitted[name] {
		return nil, fmt.Errorf("step %q was not admitted for this plan", name)
	}
	if g.entered[name] {
		return nil, &rtfs.Error{Type: ErrPlan, Message: fmt.Sprintf("step %q is entered a second time; a step runs at most once in a plan (put the loop inside the step, or give each step its own name)", name)}
	}
	if _, err := g.ask(&control.StepBegin{Name: name}); err != nil {
		return nil, fmt.Errorf("step %q refused: %w", name, err)
	}
	if g.entered == nil {
		g.entered = map[string]bool{}
	}
	g.entered[name] = true
	g.order = append(g.order, name)
	g.steps = append(g.steps, name)
	g.ords = append(g.ords, 0)
	g.at = append(g.at, len(g.order)-1)
	v, err := body(ctx)
	n := len(g.steps) - 1
	g.steps, g.ords, g.at = g.steps[:n], g.ords[:n], g.at[:n]
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
	n := len(g.steps) - 1
	g.ords[n] = 0
	// The steps entered during the failed attempt may be entered again.
	for _, inner := range g.order[g.at[n]+1:] {
		delete(g.entered, inner)
	}
	g.order = g.order[:g.at[n]+1]
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

// Call implements rtfs.Host: pure and workdir capabilities the host
// granted run here, the others are yielded to the host.
func (g *agent) Call(ctx context.Context, capID string, args []rtfs.Value) (rtfs.Value, error) {
	c, err := g.route(capID)
	if err != nil {
		return nil, err
	}
	if err := g.flushOutputOver(outputChunk / 8); err != nil {
		return nil, err
	}
	ord, key := g.callKey()
	if c != nil {
		if c.Mutates && key != "" {
			return g.callOnce(ctx, c, args, ord, key)
		}
		return g.callLocal(ctx, c, args)
	}
	texts, err := argTexts(capID, args)
	if err != nil {
		return nil, err
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
		// callLocal recorded the value: its text is within bounds.
		text, _ = rtfs.PrintLimited(v, capability.MaxValueBytes)
	}
	if err := g.wal.Finished(key, text, cerr); err != nil {
		return nil, fmt.Errorf("capability %s ran, but its outcome was not logged: %w", c.ID, err)
	}
	return v, cerr
}

// callLocal runs a capability of the guest under its time limit,
// recording the call and its result as the guest's claims.
func (g *agent) callLocal(ctx context.Context, c *capability.Capability, args []rtfs.Value) (rtfs.Value, error) {
	// The host never sees these calls: the guest records them as its own
	// claims.
	recArgs, err := recordableArgs(c.ID, slices.Clone(args))
	if err != nil {
		return nil, err
	}
	if err := g.emit("capability.call", rtfs.MapOf(rtfs.Keyword{Name: "capability"}, rtfs.Keyword{Name: c.ID},
		rtfs.Keyword{Name: "args"}, recArgs)); err != nil {
		return nil, err
	}
	v, cerr := capability.Invoke(ctx, c, args)
	var tl *capability.TimeLimitError
	if errors.As(cerr, &tl) {
		cerr = &rtfs.Error{Type: rtfs.ErrLimit, Message: tl.Error(), Cause: tl}
	}
	result := rtfs.MapOf(rtfs.Keyword{Name: "capability"}, rtfs.Keyword{Name: c.ID}, rtfs.Keyword{Name: "ok"}, rtfs.Bool{V: cerr == nil})
	if cerr != nil {
		result.Set(rtfs.Keyword{Name: "error"}, rtfs.String{V: clip(cerr.Error(), maxErrorText)})
	} else {
		rv, err := recordableResult(c.ID, v)
		if err != nil {
			return nil, err
		}
		result.Set(rtfs.Keyword{Name: "value"}, rv)
	}
	if err := g.emit("capability.result", result); err != nil {
		return nil, err
	}
	return v, cerr
}
