package orchestrator

import (
	"context"
	"errors"
	"fmt"

	"github.com/ccos-project/ccos/capability"
	"github.com/ccos-project/ccos/chain"
	"github.com/ccos-project/ccos/control"
	"github.com/ccos-project/ccos/rtfs"
)

// ErrChain is wrapped when the causal chain cannot be written: the run is
// stopped rather than left unrecorded.
var ErrChain = errors.New("causal chain")

func str(s string) rtfs.String { return rtfs.String{V: s} }

// bounded returns v, or its summary (control.Summary) when its text is
// larger than control.MaxEventPayload.
func bounded(v rtfs.Value) rtfs.Value {
	if v == nil {
		return rtfs.Nil{}
	}
	text := rtfs.Print(v)
	if len(text) <= control.MaxEventPayload {
		return v
	}
	return control.Summary(text)
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

// guestEvents records a batch of the guest's own events and acknowledges
// it.
func (s *session) guestEvents(ctx context.Context, id uint64, b *control.Events) error {
	if err := s.recordGuestEvents(ctx, b.Items); err != nil {
		return err
	}
	_, err := s.c.Send(&control.OK{}, id)
	return err
}

// recordGuestEvents records the guest's own events as its claims, in
// sequence, dropping any it sent again after a broken channel. The host
// checks what it can of a claim: a capability the guest says it ran
// itself must be one the host's decision grants the step (and not a host
// capability, which only the host runs).
func (s *session) recordGuestEvents(ctx context.Context, items []control.EventItem) error {
	for _, it := range items {
		if it.Seq <= s.lastEvent {
			continue // already recorded: sent again
		}
		if it.Seq != s.lastEvent+1 {
			return fmt.Errorf("%w: guest event %d skips ahead of %d", control.ErrProtocol, it.Seq, s.lastEvent+1)
		}
		if err := s.chargeEvent(it); err != nil {
			return err
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
		if typ == chain.TypeCapabilityCall {
			if err := s.checkClaimedCall(it, claim); err != nil {
				return err
			}
		}
		if err := s.record(ctx, chain.OriginGuest, it.Step, claim); err != nil {
			return err
		}
		s.lastEvent = it.Seq
	}
	return nil
}

// chargeEvent counts an event against the run's bounds.
func (s *session) chargeEvent(it control.EventItem) error {
	s.events++
	s.eventBytes += int64(len(it.Payload))
	bd := s.req.Bounds
	if s.events > bd.Events {
		return &LimitExceeded{Limit: LimitEvents, Value: int64(bd.Events), Unit: "events", Detail: fmt.Sprintf("the guest reported event %d past the host's bound", it.Seq)}
	}
	if s.eventBytes > bd.EventBytes {
		return &LimitExceeded{Limit: LimitEventBytes, Value: bd.EventBytes, Unit: "bytes", Detail: fmt.Sprintf("the guest's events reached %d bytes of payload with event %d", s.eventBytes, it.Seq)}
	}
	return nil
}

// checkClaimedCall checks the guest's claim that it ran a capability
// itself.
func (s *session) checkClaimedCall(it control.EventItem, claim chain.Payload) error {
	call, ok := claim.(*chain.CapabilityCall)
	if !ok {
		return fmt.Errorf("%w: guest event %d claims a capability call without naming the capability", control.ErrProtocol, it.Seq)
	}
	c, err := s.req.Caps.Lookup(call.Capability)
	if err == nil && c.Class == capability.Host {
		err = fmt.Errorf("%s is a host capability, which only the host runs", c.ID)
	}
	if err == nil {
		err = s.req.Admission.Authorize(it.Step, c)
	}
	if err != nil {
		return fmt.Errorf("%w: guest event %d claims the guest ran capability %s in step %q, which the host does not grant: %w", control.ErrProtocol, it.Seq, call.Capability, it.Step, err)
	}
	return nil
}
