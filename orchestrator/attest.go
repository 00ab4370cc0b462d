package orchestrator

import (
	"context"
	"errors"
	"fmt"
	"sort"

	"github.com/ccos-project/ccos/chain"
)

// ErrAttestation is wrapped when the guest's own measurement of what it
// booted differs from the host's, or is missing.
var ErrAttestation = errors.New("attestation failed")

// attestationPayload is the chain payload of an attestation event: the
// verdict and every measurement by artifact.
func attestationPayload(verdict string, meas map[string]string) *chain.Attestation {
	return &chain.Attestation{Verdict: verdict, Measurements: meas}
}

// checkGuestMeasurements records the guest's claims about what it booted
// and compares them with the host's measurements before any plan is sent:
// for every artifact both measured, they must agree, and a guest of a
// provider that measured its rootfs must report its own.
func (s *session) checkGuestMeasurements(ctx context.Context, claimed map[string]string) error {
	if len(claimed) > 0 {
		if err := s.record(ctx, chain.OriginGuest, "", attestationPayload("claimed", claimed)); err != nil {
			return err
		}
	}
	if s.measured == nil {
		return nil
	}
	if _, ok := s.measured["rootfs"]; ok {
		if _, ok := claimed["rootfs"]; !ok {
			err := fmt.Errorf("%w: the guest did not report its rootfs measurement", ErrAttestation)
			s.record(ctx, chain.OriginHost, "", &chain.Attestation{Verdict: "mismatch", Measurements: s.measured, Error: err.Error()})
			return err
		}
	}
	names := make([]string, 0, len(claimed))
	for k := range claimed {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, k := range names {
		host, ok := s.measured[k]
		if ok && host != claimed[k] {
			err := fmt.Errorf("%w: the guest reports %s %s, the host measured %s", ErrAttestation, k, claimed[k], host)
			s.record(ctx, chain.OriginHost, "", &chain.Attestation{Verdict: "mismatch", Measurements: s.measured, Error: err.Error()})
			return err
		}
	}
	return s.record(ctx, chain.OriginHost, "", attestationPayload("verified", s.measured))
}
