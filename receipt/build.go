package receipt

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/ccos-project/ccos/chain"
	"golang.org/x/mod/sumdb/note"
)

// The build errors.
var (
	ErrNoRun        = errors.New("receipt: the chain has no run with that session id")
	ErrRunShape     = errors.New("receipt: the run's events are not a run")
	ErrNoCheckpoint = errors.New("receipt: no signed checkpoint covers the run's last event (sign one with Recorder.Checkpoint first)")
)

// Build makes the statement of one run from its events (in chain order,
// the first being its plan.admitted), the checkpoint that covers them and
// the inclusion proof of the last one in the checkpoint's tree. Every fact
// of the predicate comes from the events; nothing is taken from elsewhere.
func Build(run []*chain.Event, cp *chain.Checkpoint, proof [][]byte) (*Statement, error) {
	if len(run) == 0 {
		return nil, ErrNoRun
	}
	first, last := run[0], run[len(run)-1]
	admitted, err := first.DecodedPayload()
	if err != nil {
		return nil, fmt.Errorf("%w: event %d: %w", ErrRunShape, first.Seq, err)
	}
	adm, ok := admitted.(*chain.PlanAdmitted)
	if !ok || first.Origin != chain.OriginHost {
		return nil, fmt.Errorf("%w: its first event (%d) is %s, not the host's plan.admitted", ErrRunShape, first.Seq, first.Type)
	}
	if cp.Size <= last.Seq {
		return nil, fmt.Errorf("%w: checkpoint of size %d does not cover event %d", ErrNoCheckpoint, cp.Size, last.Seq)
	}
	enc, err := chain.Encode(last)
	if err != nil {
		return nil, err
	}
	leaf := chain.LeafHash(enc)
	if err := chain.VerifyInclusion(last.Seq, cp.Size, leaf, proof, cp.Root); err != nil {
		return nil, fmt.Errorf("receipt: the inclusion proof of event %d does not verify: %w", last.Seq, err)
	}
	b := &builder{p: Predicate{Steps: []Step{}, Egress: []Egress{}}, steps: map[string]int{}}
	b.admitted(first.Session, adm)
	for _, e := range run[1:] {
		if e.Plan != adm.PlanHash {
			return nil, fmt.Errorf("%w: event %d is of plan %s, the run admitted %s", ErrRunShape, e.Seq, e.Plan, adm.PlanHash)
		}
		p, err := e.DecodedPayload()
		if err != nil {
			return nil, fmt.Errorf("%w: event %d: %w", ErrRunShape, e.Seq, err)
		}
		b.add(e, p)
	}
	pr := &b.p
	pr.Run.Started = timeText(first.Time)
	pr.Run.Finished = timeText(last.Time)
	pr.Chain = ChainProof{Checkpoint: string(cp.Note), FirstSeq: first.Seq, LastSeq: last.Seq, Events: len(run),
		LastLeafHash: hex.EncodeToString(leaf), InclusionProof: make([]string, len(proof))}
	for i, h := range proof {
		pr.Chain.InclusionProof[i] = hex.EncodeToString(h)
	}
	st := &Statement{Type: StatementType, PredicateType: PredicateType, Predicate: *pr,
		Subject: []Subject{{Name: SubjectPlan, Digest: map[string]string{"sha256": strings.TrimPrefix(adm.PlanHash, "sha256:")}}}}
	if pr.Run.ValueSHA256 != "" {
		st.Subject = append(st.Subject, Subject{Name: SubjectValue, Digest: map[string]string{"sha256": pr.Run.ValueSHA256}})
	}
	return st, nil
}

func timeText(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) }

type builder struct {
	p     Predicate
	steps map[string]int // index in p.Steps
}

func (b *builder) admitted(session string, a *chain.PlanAdmitted) {
	b.p.Run = Run{Session: session, Plan: a.Name, PlanHash: a.PlanHash, Agent: a.Agent, ConfigDigest: a.ConfigDigest,
		SecurityLevel: a.SecurityLevel, RiskTier: a.RiskTier, Policy: a.Policy, Isolation: a.Isolation}
	for _, s := range a.Steps {
		b.steps[s.Name] = len(b.p.Steps)
		b.p.Steps = append(b.p.Steps, Step{Name: s.Name, Outcome: "not-run", Profile: Profile{
			Capabilities: nonNil(s.Capabilities), Domains: nonNil(s.Domains), Methods: nonNil(s.Methods),
			MaxTimeMS: s.MaxTimeMS, Retry: s.Retry, Seed: s.Seed, Dynamic: s.Dynamic}})
	}
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

func (b *builder) step(name string) *Step {
	if i, ok := b.steps[name]; ok {
		return &b.p.Steps[i]
	}
	return nil
}

// add folds one event into the predicate. The guest's claims count only
// where the predicate says they are the guest's (step outcomes, the plan's
// error and value as reported).
func (b *builder) add(e *chain.Event, p chain.Payload) {
	r := &b.p.Run
	switch p := p.(type) {
	case *chain.SandboxLifecycle:
		if p.Provider != "" {
			r.Provider = p.Provider
		}
		if p.Event == "started" {
			r.Sandboxes++
		}
	case *chain.Attestation:
		if e.Origin == chain.OriginHost {
			b.p.Attestation = &Attestation{Verdict: p.Verdict, Measurements: p.Measurements}
		}
	case *chain.StepStarted:
		if s := b.step(e.Step); s != nil && e.Origin == chain.OriginHost {
			s.Attempts++
			s.Outcome, s.Error, s.DurationMS = "unfinished", "", 0
		}
	case *chain.StepFinished:
		if s := b.step(e.Step); s != nil {
			s.Outcome, s.Error, s.DurationMS = "failed", p.Error, p.DurationMS
			if p.OK {
				s.Outcome = "ok"
			}
		}
	case *chain.CapabilityCall:
		if s := b.step(e.Step); s != nil && e.Origin == chain.OriginHost {
			s.Calls++
		}
	case *chain.ProxyDecision:
		b.p.Egress = append(b.p.Egress, Egress{Seq: e.Seq, Step: e.Step, Action: p.Action, Kind: p.Kind, Method: p.Method,
			Host: p.Host, Port: p.Port, Rule: p.Rule, Status: p.Status})
	case *chain.GuestEvent:
		if p.Done == "error" {
			r.PlanError = &PlanError{Type: p.ErrorType, Message: p.Message}
		}
	case *chain.PlanFinished:
		r.OK, r.Failure, r.ValueSHA256 = p.OK, p.Failure, p.ValueSHA256
	}
}

// Marshal returns the statement's JSON, the DSSE payload.
func (st *Statement) Marshal() ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(st); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}

// Sign returns the statement in a DSSE envelope signed by signer.
func Sign(st *Statement, signer note.Signer) ([]byte, error) {
	payload, err := st.Marshal()
	if err != nil {
		return nil, err
	}
	return SignEnvelope(PayloadType, payload, signer)
}

// Prover gives inclusion proofs in a chain's tree (*chain.Tree,
// *chain.Recorder).
type Prover interface {
	InclusionProof(index, size uint64) ([][]byte, error)
}

// FromChain builds the statement of run session from a chain's events (in
// order; they may start anywhere before the run) and its tree: the run's
// events up to the first checkpoint recorded after its last event, that
// checkpoint (read from the chain, not re-verified), and the inclusion
// proof of the last event.
func FromChain(events []*chain.Event, tree Prover, session string) (*Statement, error) {
	run := chain.RunEvents(events, session, ^uint64(0))
	if len(run) == 0 {
		return nil, fmt.Errorf("%w: %q", ErrNoRun, session)
	}
	var cp *chain.Checkpoint
	for _, e := range events {
		if e.Type != chain.TypeCheckpoint || e.Seq <= run[len(run)-1].Seq {
			continue
		}
		c, err := checkpointOf(e)
		if err != nil {
			return nil, err
		}
		cp = c
		break
	}
	if cp == nil {
		return nil, fmt.Errorf("%w: run %q ends at event %d", ErrNoCheckpoint, session, run[len(run)-1].Seq)
	}
	run = chain.RunEvents(events, session, cp.Size)
	proof, err := tree.InclusionProof(run[len(run)-1].Seq, cp.Size)
	if err != nil {
		return nil, err
	}
	return Build(run, cp, proof)
}

// checkpointOf parses the checkpoint a checkpoint event carries, without
// checking its signature.
func checkpointOf(e *chain.Event) (*chain.Checkpoint, error) {
	p, err := e.DecodedPayload()
	if err != nil {
		return nil, err
	}
	return parseNote([]byte(p.(*chain.CheckpointNote).Note))
}

// parseNote parses a signed checkpoint note without checking signatures.
func parseNote(msg []byte) (*chain.Checkpoint, error) {
	i := bytes.LastIndex(msg, []byte("\n\n"))
	if i < 0 {
		return nil, fmt.Errorf("%w: no signature block", chain.ErrCheckpointFormat)
	}
	c, err := chain.ParseCheckpointBody(string(msg[:i+1]))
	if err != nil {
		return nil, err
	}
	c.Note = append([]byte(nil), msg...)
	return c, nil
}

// ForRun reads a chain store and returns the signed receipt (a DSSE
// envelope) of the run with session id session. The run must be followed
// by a signed checkpoint (the orchestrator signs one at the end of every
// run when its recorder has a key); signer is the chain's key, whose name
// must be the checkpoint's origin.
func ForRun(ctx context.Context, store chain.Store, session string, signer note.Signer) ([]byte, error) {
	events, tree, _, err := chain.Load(store, nil)
	if err != nil {
		return nil, fmt.Errorf("receipt: reading the chain: %w", err)
	}
	return signFrom(ctx, events, tree, session, signer)
}

// ForRecorder is ForRun for a chain being recorded: it decodes only the
// events from sequence number from on (the recorder's Size before the run
// started) and takes the proof from the recorder's tree.
func ForRecorder(ctx context.Context, rec *chain.Recorder, from uint64, session string, signer note.Signer) ([]byte, error) {
	events, err := rec.Events(from)
	if err != nil {
		return nil, fmt.Errorf("receipt: reading the chain: %w", err)
	}
	return signFrom(ctx, events, rec, session, signer)
}

func signFrom(ctx context.Context, events []*chain.Event, tree Prover, session string, signer note.Signer) ([]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	st, err := FromChain(events, tree, session)
	if err != nil {
		return nil, err
	}
	cp, err := parseNote([]byte(st.Predicate.Chain.Checkpoint))
	if err != nil {
		return nil, err
	}
	if cp.Origin != signer.Name() {
		return nil, fmt.Errorf("receipt: the checkpoint is signed by %q, the receipt key is %q", cp.Origin, signer.Name())
	}
	return Sign(st, signer)
}
