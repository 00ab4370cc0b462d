package orchestrator

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"github.com/ccos-project/ccos/chain"
	"github.com/ccos-project/ccos/control"
	"github.com/ccos-project/ccos/rtfs"
)

// ErrChain is wrapped when the causal chain cannot be written: the run is
// stopped rather than left unrecorded.
var ErrChain = errors.New("causal chain")

// maxPayloadText bounds what one event records of a value; a larger value
// is recorded by its size and SHA-256.
const maxPayloadText = 64 << 10

func kw(name string) rtfs.Keyword { return rtfs.Keyword{Name: name} }

func str(s string) rtfs.String { return rtfs.String{V: s} }

// bounded returns v, or a summary of it when its text is too large.
func bounded(v rtfs.Value) rtfs.Value {
	if v == nil {
		return rtfs.Nil{}
	}
	text := rtfs.Print(v)
	if len(text) <= maxPayloadText {
		return v
	}
	sum := sha256.Sum256([]byte(text))
	return rtfs.MapOf(kw("truncated"), rtfs.Bool{V: true}, kw("bytes"), rtfs.Int{V: int64(len(text))},
		kw("sha256"), str(hex.EncodeToString(sum[:])))
}

// record appends one event about this run, if a recorder is attached.
func (s *session) record(ctx context.Context, typ chain.Type, origin chain.Origin, step string, payload rtfs.Value) error {
	ev := chain.Event{Type: typ, Origin: origin, Session: s.req.Spec.ID,
		Plan: s.req.Admission.PlanHash, Step: step, Payload: bounded(payload)}
	if rec := s.req.Recorder; rec != nil {
		if _, err := rec.Append(ctx, ev); err != nil {
			return fmt.Errorf("%w: %w", ErrChain, err)
		}
	}
	if s.req.OnEvent != nil {
		s.req.OnEvent(ev)
	}
	return nil
}

// recordAdmission records what was admitted, before anything starts.
func (s *session) recordAdmission(ctx context.Context) error {
	a := s.req.Admission
	steps := make([]rtfs.Value, len(a.Profiles))
	for i, p := range a.Profiles {
		caps := make([]rtfs.Value, len(p.Capabilities))
		for j, c := range p.Capabilities {
			caps[j] = kw(c)
		}
		domains := make([]rtfs.Value, len(p.Network.Domains))
		for j, d := range p.Network.Domains {
			domains[j] = str(d)
		}
		steps[i] = rtfs.MapOf(kw("name"), str(p.Step), kw("capabilities"), rtfs.NewVector(caps...),
			kw("domains"), rtfs.NewVector(domains...), kw("max-time-ms"), rtfs.Int{V: p.MaxTimeMS})
	}
	return s.record(ctx, chain.TypePlanAdmitted, chain.OriginHost, "", rtfs.MapOf(
		kw("name"), str(s.req.Plan.Name), kw("plan-hash"), str(a.PlanHash), kw("risk-tier"), kw(string(a.Tier)),
		kw("policy"), str(a.Policy), kw("security-level"), kw(string(a.Level)), kw("steps"), rtfs.NewVector(steps...)))
}

func ms(d time.Duration) rtfs.Int { return rtfs.Int{V: d.Milliseconds()} }

// guestEventTypes are the event types a guest may report about itself.
var guestEventTypes = map[string]chain.Type{
	"capability.call":   chain.TypeCapabilityCall,
	"capability.result": chain.TypeCapabilityResult,
	"guest.event":       chain.TypeGuestEvent,
}

// recordGuestEvents records the guest's own events as its claims, in
// sequence, dropping any it sent again after a broken channel.
func (s *session) recordGuestEvents(ctx context.Context, items []control.EventItem) error {
	for _, it := range items {
		if it.Seq <= s.lastEvent {
			continue // already recorded: sent again
		}
		if it.Seq != s.lastEvent+1 {
			return fmt.Errorf("%w: guest event %d skips ahead of %d", control.ErrProtocol, it.Seq, s.lastEvent+1)
		}
		typ, ok := guestEventTypes[it.Type]
		if !ok {
			return fmt.Errorf("%w: the guest may not report events of type %q", control.ErrProtocol, it.Type)
		}
		payload, err := readValue(it.Payload)
		if err != nil {
			return fmt.Errorf("%w: guest event %d: the payload does not read: %w", control.ErrProtocol, it.Seq, err)
		}
		if it.Step != "" && s.req.Admission.Profile(it.Step) == nil {
			return fmt.Errorf("%w: guest event %d names step %q, which was not admitted", control.ErrProtocol, it.Seq, it.Step)
		}
		if err := s.record(ctx, typ, chain.OriginGuest, it.Step, payload); err != nil {
			return err
		}
		s.lastEvent = it.Seq
	}
	return nil
}
