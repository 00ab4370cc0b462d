package orchestrator

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"

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
	return (&chain.Truncated{Bytes: int64(len(text)), SHA256: hex.EncodeToString(sum[:])}).Encode()
}

// record appends one event about this run, if a recorder is attached.
func (s *session) record(ctx context.Context, origin chain.Origin, step string, p chain.Payload) error {
	ev := chain.Event{Type: p.EventType(), Origin: origin, Session: s.req.Spec.ID,
		Plan: s.req.Admission.PlanHash, Step: step, Payload: bounded(p.Encode())}
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
	p := &chain.PlanAdmitted{Name: s.req.Plan.Name, PlanHash: a.PlanHash, RiskTier: string(a.Tier), Policy: a.Policy,
		SecurityLevel: string(a.Level), Agent: a.Agent, ConfigDigest: a.ConfigDigest, Isolation: string(a.Isolation)}
	for _, prof := range a.Profiles {
		p.Steps = append(p.Steps, chain.AdmittedStep{Name: prof.Step, Capabilities: prof.Capabilities,
			Domains: prof.Network.Domains, MaxTimeMS: prof.MaxTimeMS, Methods: prof.Network.Methods,
			Retry: int64(prof.Retry), Seed: prof.Determinism.Seed, Dynamic: prof.Dynamic})
	}
	return s.record(ctx, chain.OriginHost, "", p)
}

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
		claim, err := chain.DecodePayload(typ, payload)
		if err != nil {
			return fmt.Errorf("%w: guest event %d: %w", control.ErrProtocol, it.Seq, err)
		}
		if err := s.record(ctx, chain.OriginGuest, it.Step, claim); err != nil {
			return err
		}
		s.lastEvent = it.Seq
	}
	return nil
}
