package chain

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"sort"

	"github.com/ccos-project/ccos/rtfs"
)

// Payload is the typed payload of one event kind (see "Payloads" in the
// package comment). Encode gives the RTFS value an Event carries;
// DecodePayload is the strict way back.
type Payload interface {
	// EventType is the event type whose payload this is.
	EventType() Type
	// Encode returns the payload's RTFS encoding.
	Encode() rtfs.Value
}

// The payload decoding errors, carried by a *PayloadError.
var (
	ErrPayloadShape   = errors.New("payload has the wrong shape")
	ErrPayloadMissing = errors.New("required field is missing")
	ErrPayloadKind    = errors.New("field has the wrong kind of value")
	ErrPayloadUnknown = errors.New("unknown field")
	ErrPayloadValue   = errors.New("field has a value outside its range")
)

// PayloadError is a payload that does not decode as its event type's:
// Field names the map key (empty for the payload as a whole) and Err is one
// of the ErrPayload* sentinels.
type PayloadError struct {
	Type  Type
	Field string
	Err   error
}

func (e *PayloadError) Error() string {
	if e.Field == "" {
		return fmt.Sprintf("chain: %s payload: %v", e.Type, e.Err)
	}
	return fmt.Sprintf("chain: %s payload field :%s: %v", e.Type, e.Field, e.Err)
}

func (e *PayloadError) Unwrap() error { return e.Err }

// PlanAdmitted is the payload of TypePlanAdmitted: what the governance
// kernel admitted, recorded before anything starts. Agent, ConfigDigest and
// Isolation are absent from chains written before they were added.
type PlanAdmitted struct {
	Name          string
	PlanHash      string
	RiskTier      string // keyword
	Policy        string
	SecurityLevel string // keyword
	Steps         []AdmittedStep
	Agent         string // the config's :agent-id
	ConfigDigest  string // "sha256:<hex>" of the decoded config admission used
	Isolation     string // the config's :orchestrator :isolation :mode (keyword)
}

// AdmittedStep is one step's admitted profile. Methods, Retry, Seed and
// Dynamic are absent from older chains.
type AdmittedStep struct {
	Name         string
	Capabilities []string // keywords
	Domains      []string
	MaxTimeMS    int64
	Methods      []string
	Retry        int64
	Seed         string
	Dynamic      bool
}

// PlanRejected is the payload of TypePlanRejected.
type PlanRejected struct{ Error string }

// PlanFinished is the payload of TypePlanFinished: the host's verdict on
// the run. ValueSHA256 is the hex SHA-256 of rtfs.Print of the value the
// guest reported (absent when it reported none, and in older chains).
type PlanFinished struct {
	OK          bool
	Failure     string
	ValueSHA256 string
}

// Attestation is the payload of TypeAttestation: a verdict ("measured",
// "claimed", "verified", "mismatch", "refused") on measurements by artifact.
type Attestation struct {
	Verdict      string // keyword
	Measurements map[string]string
	Error        string
	Artifact     string
	Expected     string
	Actual       string
}

// StepStarted is the payload of TypeStepStarted: nil for a step's first
// attempt; Attempt (from 2) and Cause for a retry.
type StepStarted struct {
	Attempt int64
	Cause   string
}

// StepFinished is the payload of TypeStepFinished (the guest's claim of
// how the step went).
type StepFinished struct {
	OK         bool
	Error      string
	DurationMS int64
}

// CapabilityCall is the payload of TypeCapabilityCall. The host records
// each argument as the string of the RTFS text the guest sent, with the
// call's Ordinal in its step and idempotency Key when the guest gave them
// (older chains have neither); the guest records argument values.
type CapabilityCall struct {
	Capability string // keyword
	Args       []rtfs.Value
	Ordinal    int64
	Key        string
}

// CapabilityResult is the payload of TypeCapabilityResult: Value when OK,
// Error otherwise; Replayed is the idempotency key whose recorded outcome
// answered the call instead of running it again.
type CapabilityResult struct {
	Capability string // keyword
	OK         bool
	Replayed   string
	Error      string
	Value      rtfs.Value
}

// ProxyDecision is the payload of TypeProxyDecision: one egress decision.
type ProxyDecision struct {
	Action string // keyword: allow, deny, report
	Kind   string
	Method string
	Host   string
	Port   int64
	Rule   string
	Reason string
	Addr   string
	Status int64
	DLP    []string
	Error  string
	// Secrets are the names of the credentials the proxy added (never
	// their values).
	Secrets []string
}

// SandboxLifecycle is the payload of TypeSandboxLifecycle. Event is
// started, start-failed, ended, limit-exceeded (orchestrator) or a
// supervisor event; Exited says an ended sandbox exited cleanly, Reason
// why it did not. A limit-exceeded event names the Limit the run went
// past, its LimitValue and the Unit the value counts.
type SandboxLifecycle struct {
	Event      string // keyword
	Provider   string
	Sandbox    string
	Error      string
	Exited     bool
	Reason     string
	TotalMS    int64
	Detail     string
	Limit      string
	LimitValue int64
	Unit       string
}

// GuestEvent is the payload of TypeGuestEvent: the guest's own account of
// its end (Done "value" with Value, or "error" with ErrorType, Message and
// Where), or of a side-effecting call it answered from its write-ahead log
// (Replayed capability, Key).
type GuestEvent struct {
	Done      string // keyword: value, error; "" for a replay event
	Value     rtfs.Value
	ErrorType string
	Message   string
	Where     string
	Replayed  string // keyword
	Key       string
}

// CheckpointNote is the payload of TypeCheckpoint: the signed note.
type CheckpointNote struct{ Note string }

// Truncated stands for a payload the recorder replaced by its size and
// SHA-256 because its text was too large; it decodes for every type.
type Truncated struct {
	Kind   Type
	Bytes  int64
	SHA256 string
}

// EventType implementations.
func (*PlanAdmitted) EventType() Type     { return TypePlanAdmitted }
func (*PlanRejected) EventType() Type     { return TypePlanRejected }
func (*PlanFinished) EventType() Type     { return TypePlanFinished }
func (*Attestation) EventType() Type      { return TypeAttestation }
func (*StepStarted) EventType() Type      { return TypeStepStarted }
func (*StepFinished) EventType() Type     { return TypeStepFinished }
func (*CapabilityCall) EventType() Type   { return TypeCapabilityCall }
func (*CapabilityResult) EventType() Type { return TypeCapabilityResult }
func (*ProxyDecision) EventType() Type    { return TypeProxyDecision }
func (*SandboxLifecycle) EventType() Type { return TypeSandboxLifecycle }
func (*GuestEvent) EventType() Type       { return TypeGuestEvent }
func (*CheckpointNote) EventType() Type   { return TypeCheckpoint }
func (t *Truncated) EventType() Type      { return t.Kind }

// builder appends key/value pairs in a fixed order.
type builder []rtfs.Value

func (b *builder) put(k string, v rtfs.Value) { *b = append(*b, rtfs.Keyword{Name: k}, v) }
func (b *builder) str(k, v string)            { b.put(k, rtfs.String{V: v}) }
func (b *builder) kw(k, v string)             { b.put(k, rtfs.Keyword{Name: v}) }
func (b *builder) num(k string, v int64)      { b.put(k, rtfs.Int{V: v}) }
func (b *builder) flag(k string, v bool)      { b.put(k, rtfs.Bool{V: v}) }
func (b *builder) optStr(k, v string) {
	if v != "" {
		b.str(k, v)
	}
}
func (b *builder) optNum(k string, v int64) {
	if v != 0 {
		b.num(k, v)
	}
}
func (b builder) m() *rtfs.Map { return rtfs.MapOf(b...) }

func strVec(ss []string) *rtfs.Vector {
	v := make([]rtfs.Value, len(ss))
	for i, s := range ss {
		v[i] = rtfs.String{V: s}
	}
	return rtfs.NewVector(v...)
}

func kwVec(ss []string) *rtfs.Vector {
	v := make([]rtfs.Value, len(ss))
	for i, s := range ss {
		v[i] = rtfs.Keyword{Name: s}
	}
	return rtfs.NewVector(v...)
}

func orNil(v rtfs.Value) rtfs.Value {
	if v == nil {
		return rtfs.Nil{}
	}
	return v
}

// Encode encodes p.
func (p *PlanAdmitted) Encode() rtfs.Value {
	steps := make([]rtfs.Value, len(p.Steps))
	for i, s := range p.Steps {
		var b builder
		b.str("name", s.Name)
		b.put("capabilities", kwVec(s.Capabilities))
		b.put("domains", strVec(s.Domains))
		b.num("max-time-ms", s.MaxTimeMS)
		if len(s.Methods) > 0 {
			b.put("methods", strVec(s.Methods))
		}
		b.optNum("retry", s.Retry)
		b.optStr("seed", s.Seed)
		if s.Dynamic {
			b.flag("dynamic", true)
		}
		steps[i] = b.m()
	}
	var b builder
	b.str("name", p.Name)
	b.str("plan-hash", p.PlanHash)
	b.kw("risk-tier", p.RiskTier)
	b.str("policy", p.Policy)
	b.kw("security-level", p.SecurityLevel)
	b.put("steps", rtfs.NewVector(steps...))
	b.optStr("agent", p.Agent)
	b.optStr("config-digest", p.ConfigDigest)
	if p.Isolation != "" {
		b.kw("isolation", p.Isolation)
	}
	return b.m()
}

// Encode encodes p.
func (p *PlanRejected) Encode() rtfs.Value { var b builder; b.str("error", p.Error); return b.m() }

// Encode encodes p.
func (p *PlanFinished) Encode() rtfs.Value {
	var b builder
	b.flag("ok", p.OK)
	b.optStr("failure", p.Failure)
	b.optStr("value-sha256", p.ValueSHA256)
	return b.m()
}

// Encode encodes p; measurements are written in the order of their names.
func (p *Attestation) Encode() rtfs.Value {
	names := make([]string, 0, len(p.Measurements))
	for k := range p.Measurements {
		names = append(names, k)
	}
	sort.Strings(names)
	var mb builder
	for _, k := range names {
		mb.str(k, p.Measurements[k])
	}
	var b builder
	b.kw("verdict", p.Verdict)
	b.put("measurements", mb.m())
	b.optStr("artifact", p.Artifact)
	b.optStr("expected", p.Expected)
	b.optStr("actual", p.Actual)
	b.optStr("error", p.Error)
	return b.m()
}

// Encode encodes p: nil for a first attempt.
func (p *StepStarted) Encode() rtfs.Value {
	if p.Attempt == 0 && p.Cause == "" {
		return rtfs.Nil{}
	}
	var b builder
	b.num("attempt", p.Attempt)
	b.str("cause", p.Cause)
	return b.m()
}

// Encode encodes p.
func (p *StepFinished) Encode() rtfs.Value {
	var b builder
	b.flag("ok", p.OK)
	b.str("error", p.Error)
	b.num("duration-ms", p.DurationMS)
	return b.m()
}

// Encode encodes p.
func (p *CapabilityCall) Encode() rtfs.Value {
	args := make([]rtfs.Value, len(p.Args))
	for i, a := range p.Args {
		args[i] = orNil(a)
	}
	var b builder
	b.kw("capability", p.Capability)
	b.put("args", rtfs.NewVector(args...))
	b.optNum("ordinal", p.Ordinal)
	b.optStr("key", p.Key)
	return b.m()
}

// Encode encodes p.
func (p *CapabilityResult) Encode() rtfs.Value {
	var b builder
	b.kw("capability", p.Capability)
	b.flag("ok", p.OK)
	b.optStr("replayed", p.Replayed)
	if p.OK {
		b.put("value", orNil(p.Value))
	} else {
		b.str("error", p.Error)
	}
	return b.m()
}

// Encode encodes p.
func (p *ProxyDecision) Encode() rtfs.Value {
	var b builder
	b.kw("action", p.Action)
	b.str("kind", p.Kind)
	b.str("method", p.Method)
	b.str("host", p.Host)
	b.num("port", p.Port)
	b.str("rule", p.Rule)
	b.str("reason", p.Reason)
	b.optStr("addr", p.Addr)
	b.optNum("status", p.Status)
	if len(p.DLP) > 0 {
		b.put("dlp", strVec(p.DLP))
	}
	b.optStr("error", p.Error)
	if len(p.Secrets) > 0 {
		b.put("secrets", strVec(p.Secrets))
	}
	return b.m()
}

// Encode encodes p.
func (p *SandboxLifecycle) Encode() rtfs.Value {
	var b builder
	b.kw("event", p.Event)
	b.optStr("provider", p.Provider)
	b.optStr("sandbox", p.Sandbox)
	b.optStr("error", p.Error)
	switch {
	case p.Exited:
		b.kw("reason", "exited")
	case p.Reason != "":
		b.str("reason", p.Reason)
	}
	if p.Event == "ended" || p.TotalMS != 0 {
		b.num("total-ms", p.TotalMS)
	}
	b.optStr("detail", p.Detail)
	b.optStr("limit", p.Limit)
	b.optNum("value", p.LimitValue)
	b.optStr("unit", p.Unit)
	return b.m()
}

// Encode encodes p.
func (p *GuestEvent) Encode() rtfs.Value {
	var b builder
	switch {
	case p.Replayed != "":
		b.kw("replayed", p.Replayed)
		b.str("key", p.Key)
	case p.Done == "error":
		b.kw("done", "error")
		b.str("type", p.ErrorType)
		b.str("message", p.Message)
		b.str("where", p.Where)
	default:
		b.kw("done", "value")
		b.put("value", orNil(p.Value))
	}
	return b.m()
}

// Encode encodes p.
func (p *CheckpointNote) Encode() rtfs.Value { return rtfs.String{V: p.Note} }

// Encode encodes p.
func (p *Truncated) Encode() rtfs.Value {
	var b builder
	b.flag("truncated", true)
	b.num("bytes", p.Bytes)
	b.str("sha256", p.SHA256)
	return b.m()
}

// fields reads a payload map strictly: every key a keyword, each known
// field read at most once, and done reports any key left unread.
type fields struct {
	typ  Type
	m    *rtfs.Map
	read map[string]bool
	err  error
}

func openFields(typ Type, v rtfs.Value) (*fields, error) {
	m, ok := v.(*rtfs.Map)
	if !ok {
		return nil, &PayloadError{typ, "", fmt.Errorf("%w: %s, not a map", ErrPayloadShape, kindName(v))}
	}
	for _, k := range m.Keys() {
		if _, ok := k.(rtfs.Keyword); !ok {
			return nil, &PayloadError{typ, "", fmt.Errorf("%w: key %s is not a keyword", ErrPayloadShape, rtfs.Print(k))}
		}
	}
	return &fields{typ: typ, m: m, read: map[string]bool{}}, nil
}

func kindName(v rtfs.Value) string {
	if v == nil {
		return "nothing"
	}
	return v.Kind().String()
}

func (f *fields) fail(name string, err error) {
	if f.err == nil {
		f.err = &PayloadError{f.typ, name, err}
	}
}

func (f *fields) get(name string, required bool) (rtfs.Value, bool) {
	f.read[name] = true
	v, ok := f.m.GetKeyword(name)
	if !ok && required {
		f.fail(name, ErrPayloadMissing)
	}
	return v, ok
}

func (f *fields) has(name string) bool { _, ok := f.m.GetKeyword(name); return ok }

func (f *fields) str(name string, required bool) string {
	v, ok := f.get(name, required)
	if !ok {
		return ""
	}
	s, ok := v.(rtfs.String)
	if !ok {
		f.fail(name, fmt.Errorf("%w: %s, want a string", ErrPayloadKind, kindName(v)))
	}
	return s.V
}

func (f *fields) kw(name string, required bool) string {
	v, ok := f.get(name, required)
	if !ok {
		return ""
	}
	k, ok := v.(rtfs.Keyword)
	if !ok {
		f.fail(name, fmt.Errorf("%w: %s, want a keyword", ErrPayloadKind, kindName(v)))
	}
	return k.Name
}

func (f *fields) num(name string, required bool) int64 {
	v, ok := f.get(name, required)
	if !ok {
		return 0
	}
	n, ok := v.(rtfs.Int)
	if !ok {
		f.fail(name, fmt.Errorf("%w: %s, want an integer", ErrPayloadKind, kindName(v)))
	}
	return n.V
}

func (f *fields) flag(name string, required bool) bool {
	v, ok := f.get(name, required)
	if !ok {
		return false
	}
	b, ok := v.(rtfs.Bool)
	if !ok {
		f.fail(name, fmt.Errorf("%w: %s, want a boolean", ErrPayloadKind, kindName(v)))
	}
	return b.V
}

func (f *fields) value(name string, required bool) rtfs.Value {
	v, _ := f.get(name, required)
	return v
}

func (f *fields) items(name string, required bool) []rtfs.Value {
	v, ok := f.get(name, required)
	if !ok {
		return nil
	}
	vec, ok := v.(*rtfs.Vector)
	if !ok {
		f.fail(name, fmt.Errorf("%w: %s, want a vector", ErrPayloadKind, kindName(v)))
		return nil
	}
	return vec.Items
}

func (f *fields) strs(name string, required bool, keywords bool) []string {
	items := f.items(name, required)
	if items == nil {
		return nil
	}
	out := make([]string, len(items))
	for i, it := range items {
		switch x := it.(type) {
		case rtfs.String:
			if !keywords {
				out[i] = x.V
				continue
			}
		case rtfs.Keyword:
			if keywords {
				out[i] = x.Name
				continue
			}
		}
		want := "strings"
		if keywords {
			want = "keywords"
		}
		f.fail(name, fmt.Errorf("%w: item %d is %s, want %s", ErrPayloadKind, i+1, kindName(it), want))
		return nil
	}
	return out
}

func (f *fields) done() error {
	if f.err != nil {
		return f.err
	}
	for _, k := range f.m.Keys() {
		if name := k.(rtfs.Keyword).Name; !f.read[name] {
			return &PayloadError{f.typ, name, ErrPayloadUnknown}
		}
	}
	return nil
}

// DecodePayload decodes the payload of an event of type t strictly: the
// value must have the shape of t's payload type, carry every required field
// with the right kind of value and no field that type does not define. It
// returns one of the payload types of this package (a pointer), or
// *Truncated when the recorder summarised a payload that was too large.
func DecodePayload(t Type, v rtfs.Value) (Payload, error) {
	if tr, ok := decodeTruncated(t, v); ok {
		return tr, nil
	}
	switch t {
	case TypePlanAdmitted:
		return decodePlanAdmitted(v)
	case TypePlanRejected:
		f, err := openFields(t, v)
		if err != nil {
			return nil, err
		}
		p := &PlanRejected{Error: f.str("error", true)}
		return p, f.done()
	case TypePlanFinished:
		f, err := openFields(t, v)
		if err != nil {
			return nil, err
		}
		p := &PlanFinished{OK: f.flag("ok", true), Failure: f.str("failure", false), ValueSHA256: f.str("value-sha256", false)}
		return p, f.done()
	case TypeAttestation:
		return decodeAttestation(v)
	case TypeStepStarted:
		if _, ok := v.(rtfs.Nil); ok {
			return &StepStarted{}, nil
		}
		f, err := openFields(t, v)
		if err != nil {
			return nil, err
		}
		p := &StepStarted{Attempt: f.num("attempt", true), Cause: f.str("cause", true)}
		if f.err == nil && p.Attempt < 2 {
			f.fail("attempt", fmt.Errorf("%w: a retry's attempt is at least 2, not %d", ErrPayloadValue, p.Attempt))
		}
		return p, f.done()
	case TypeStepFinished:
		f, err := openFields(t, v)
		if err != nil {
			return nil, err
		}
		p := &StepFinished{OK: f.flag("ok", true), Error: f.str("error", true), DurationMS: f.num("duration-ms", true)}
		return p, f.done()
	case TypeCapabilityCall:
		f, err := openFields(t, v)
		if err != nil {
			return nil, err
		}
		p := &CapabilityCall{Capability: f.kw("capability", true), Args: f.items("args", true),
			Ordinal: f.num("ordinal", false), Key: f.str("key", false)}
		if p.Args == nil {
			p.Args = []rtfs.Value{}
		}
		return p, f.done()
	case TypeCapabilityResult:
		return decodeCapabilityResult(v)
	case TypeProxyDecision:
		f, err := openFields(t, v)
		if err != nil {
			return nil, err
		}
		p := &ProxyDecision{Action: f.kw("action", true), Kind: f.str("kind", true), Method: f.str("method", true),
			Host: f.str("host", true), Port: f.num("port", true), Rule: f.str("rule", true), Reason: f.str("reason", true),
			Addr: f.str("addr", false), Status: f.num("status", false), DLP: f.strs("dlp", false, false), Error: f.str("error", false),
			Secrets: f.strs("secrets", false, false)}
		return p, f.done()
	case TypeSandboxLifecycle:
		return decodeLifecycle(v)
	case TypeGuestEvent:
		return decodeGuestEvent(v)
	case TypeCheckpoint:
		s, ok := v.(rtfs.String)
		if !ok {
			return nil, &PayloadError{t, "", fmt.Errorf("%w: %s, not a string", ErrPayloadShape, kindName(v))}
		}
		return &CheckpointNote{Note: s.V}, nil
	}
	return nil, &PayloadError{t, "", fmt.Errorf("%w %q", ErrUnknownType, t)}
}

// decodeTruncated recognises the recorder's summary of an over-large
// payload: exactly {:truncated true :bytes N :sha256 "hex"}.
func decodeTruncated(t Type, v rtfs.Value) (*Truncated, bool) {
	m, ok := v.(*rtfs.Map)
	if !ok || m.Len() != 3 {
		return nil, false
	}
	tr, _ := m.GetKeyword("truncated")
	n, _ := m.GetKeyword("bytes")
	h, _ := m.GetKeyword("sha256")
	tb, ok1 := tr.(rtfs.Bool)
	nb, ok2 := n.(rtfs.Int)
	hs, ok3 := h.(rtfs.String)
	if !ok1 || !ok2 || !ok3 || !tb.V {
		return nil, false
	}
	return &Truncated{Kind: t, Bytes: nb.V, SHA256: hs.V}, true
}

func decodePlanAdmitted(v rtfs.Value) (*PlanAdmitted, error) {
	f, err := openFields(TypePlanAdmitted, v)
	if err != nil {
		return nil, err
	}
	p := &PlanAdmitted{Name: f.str("name", true), PlanHash: f.str("plan-hash", true), RiskTier: f.kw("risk-tier", true),
		Policy: f.str("policy", true), SecurityLevel: f.kw("security-level", true), Agent: f.str("agent", false),
		ConfigDigest: f.str("config-digest", false), Isolation: f.kw("isolation", false)}
	for i, it := range f.items("steps", true) {
		sf, err := openFields(TypePlanAdmitted, it)
		if err != nil {
			return nil, &PayloadError{TypePlanAdmitted, fmt.Sprintf("steps %d", i+1), err.(*PayloadError).Err}
		}
		s := AdmittedStep{Name: sf.str("name", true), Capabilities: sf.strs("capabilities", true, true),
			Domains: sf.strs("domains", true, false), MaxTimeMS: sf.num("max-time-ms", true),
			Methods: sf.strs("methods", false, false), Retry: sf.num("retry", false), Seed: sf.str("seed", false),
			Dynamic: sf.flag("dynamic", false)}
		if err := sf.done(); err != nil {
			pe := err.(*PayloadError)
			return nil, &PayloadError{TypePlanAdmitted, fmt.Sprintf("steps %d :%s", i+1, pe.Field), pe.Err}
		}
		p.Steps = append(p.Steps, s)
	}
	return p, f.done()
}

func decodeAttestation(v rtfs.Value) (*Attestation, error) {
	f, err := openFields(TypeAttestation, v)
	if err != nil {
		return nil, err
	}
	p := &Attestation{Verdict: f.kw("verdict", true), Error: f.str("error", false), Artifact: f.str("artifact", false),
		Expected: f.str("expected", false), Actual: f.str("actual", false), Measurements: map[string]string{}}
	if mv := f.value("measurements", true); mv != nil {
		mf, err := openFields(TypeAttestation, mv)
		if err != nil {
			return nil, &PayloadError{TypeAttestation, "measurements", err.(*PayloadError).Err}
		}
		for _, k := range mf.m.Keys() {
			name := k.(rtfs.Keyword).Name
			p.Measurements[name] = mf.str(name, true)
		}
		if err := mf.done(); err != nil {
			pe := err.(*PayloadError)
			return nil, &PayloadError{TypeAttestation, "measurements :" + pe.Field, pe.Err}
		}
	}
	return p, f.done()
}

func decodeCapabilityResult(v rtfs.Value) (*CapabilityResult, error) {
	f, err := openFields(TypeCapabilityResult, v)
	if err != nil {
		return nil, err
	}
	p := &CapabilityResult{Capability: f.kw("capability", true), OK: f.flag("ok", true), Replayed: f.str("replayed", false)}
	if f.err == nil {
		if p.OK {
			p.Value = f.value("value", true)
		} else {
			p.Error = f.str("error", true)
		}
	}
	return p, f.done()
}

func decodeLifecycle(v rtfs.Value) (*SandboxLifecycle, error) {
	f, err := openFields(TypeSandboxLifecycle, v)
	if err != nil {
		return nil, err
	}
	p := &SandboxLifecycle{Event: f.kw("event", true), Provider: f.str("provider", false), Sandbox: f.str("sandbox", false),
		Error: f.str("error", false), TotalMS: f.num("total-ms", false), Detail: f.str("detail", false),
		Limit: f.str("limit", false), LimitValue: f.num("value", false), Unit: f.str("unit", false)}
	switch r := f.value("reason", false).(type) {
	case nil:
	case rtfs.Keyword:
		if r.Name != "exited" {
			f.fail("reason", fmt.Errorf("%w: :%s, want :exited or a string", ErrPayloadValue, r.Name))
		}
		p.Exited = true
	case rtfs.String:
		p.Reason = r.V
	default:
		f.fail("reason", fmt.Errorf("%w: %s, want :exited or a string", ErrPayloadKind, kindName(r)))
	}
	return p, f.done()
}

func decodeGuestEvent(v rtfs.Value) (*GuestEvent, error) {
	f, err := openFields(TypeGuestEvent, v)
	if err != nil {
		return nil, err
	}
	p := &GuestEvent{}
	switch {
	case f.has("replayed"):
		p.Replayed, p.Key = f.kw("replayed", true), f.str("key", true)
	case f.has("done"):
		switch p.Done = f.kw("done", true); p.Done {
		case "value":
			p.Value = f.value("value", true)
		case "error":
			p.ErrorType, p.Message, p.Where = f.str("type", true), f.str("message", true), f.str("where", true)
		default:
			f.fail("done", fmt.Errorf("%w: :%s, want :value or :error", ErrPayloadValue, p.Done))
		}
	default:
		return nil, &PayloadError{TypeGuestEvent, "done", ErrPayloadMissing}
	}
	return p, f.done()
}

// DecodedPayload decodes e's payload as its type's (DecodePayload).
func (e *Event) DecodedPayload() (Payload, error) { return DecodePayload(e.Type, e.Payload) }

// ValueDigest returns the hex SHA-256 of rtfs.Print(v), the digest
// PlanFinished and run receipts give of a plan's value; "" for no value.
func ValueDigest(v rtfs.Value) string {
	if v == nil {
		return ""
	}
	sum := sha256.Sum256([]byte(rtfs.Print(v)))
	return hex.EncodeToString(sum[:])
}
