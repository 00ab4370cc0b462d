package orchestrator

import (
	"context"
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/ccos-project/ccos/capability"
	"github.com/ccos-project/ccos/chain"
	"github.com/ccos-project/ccos/guest"
	"github.com/ccos-project/ccos/rtfs"
	"github.com/ccos-project/ccos/sandbox"
	"github.com/ccos-project/ccos/sandbox/mock"
)

// attestingProvider wraps the mock provider: its sandboxes report host
// measurements, and its guest claims its own.
type attestingProvider struct {
	mock.Provider
	host     map[string]string
	startErr error
}

type attestedBox struct {
	sandbox.Sandbox
	meas map[string]string
}

func (b attestedBox) Measurements() map[string]string { return b.meas }

func (p *attestingProvider) Start(ctx context.Context, spec sandbox.Spec) (sandbox.Sandbox, error) {
	if p.startErr != nil {
		return nil, p.startErr
	}
	sb, err := p.Provider.Start(ctx, spec)
	if err != nil {
		return nil, err
	}
	return attestedBox{sb, p.host}, nil
}

// guestClaiming runs the real guest agent reporting claim in its hello.
func guestClaiming(claim map[string]string) func(io.ReadWriteCloser) int {
	return func(c io.ReadWriteCloser) int {
		return guest.RunWithMeasurements(c, claim)
	}
}

func runAttested(t *testing.T, p *attestingProvider) ([]string, error) {
	t.Helper()
	store := chain.NewMemoryStore()
	rec, err := chain.NewRecorder(store, nil, chain.Options{})
	if err != nil {
		t.Fatal(err)
	}
	caps := capability.Builtins(time.Now)
	pl, a := admit(t, `(plan "att" :body (step "a" (call :ccos.math.add 1 2)))`, caps)
	_, runErr := Run(context.Background(), Request{Plan: pl, Admission: a, Provider: p, Caps: caps, Recorder: rec,
		Spec: sandbox.Spec{Limits: sandbox.Limits{Deadline: 10 * time.Second}}})
	var got []string
	store.Records(func(_ uint64, data []byte) error {
		e, err := chain.Decode(data)
		if err != nil {
			return err
		}
		if e.Type == chain.TypeAttestation {
			got = append(got, e.Origin.String()+":"+verdictOf(e))
		}
		if e.Type == chain.TypeStepStarted {
			got = append(got, "step")
		}
		return nil
	})
	return got, runErr
}

func verdictOf(e *chain.Event) string {
	s := rtfs.Print(e.Payload)
	i := strings.Index(s, ":verdict :")
	if i < 0 {
		return "?"
	}
	rest := s[i+len(":verdict :"):]
	if j := strings.IndexAny(rest, " }"); j >= 0 {
		rest = rest[:j]
	}
	return rest
}

const goodRootfs = "sha256:1111111111111111111111111111111111111111111111111111111111111111"

// The host's measurements and the guest's matching claim are both
// recorded, and verified, before the first step runs.
func TestAttestationVerified(t *testing.T) {
	p := &attestingProvider{host: map[string]string{"kernel": "sha256:aa", "rootfs": goodRootfs}}
	p.Guest = guestClaiming(map[string]string{"rootfs": goodRootfs})
	got, err := runAttested(t, p)
	if err != nil {
		t.Fatal(err)
	}
	want := "host:measured guest:claimed host:verified step"
	if strings.Join(got, " ") != want {
		t.Errorf("attestation events: %v, want %s", got, want)
	}
}

// A guest that booted something else (or lies) is stopped before any plan
// reaches it, and the mismatch is recorded.
func TestAttestationMismatchStopsRun(t *testing.T) {
	p := &attestingProvider{host: map[string]string{"rootfs": goodRootfs}}
	p.Guest = guestClaiming(map[string]string{"rootfs": "sha256:2222"})
	got, err := runAttested(t, p)
	if !errors.Is(err, ErrAttestation) || !strings.Contains(err.Error(), "sha256:2222") {
		t.Fatalf("err = %v, want an attestation failure naming the claim", err)
	}
	if strings.Join(got, " ") != "host:measured guest:claimed host:mismatch" {
		t.Errorf("events: %v", got)
	}
}

// A guest that measured nothing, where the host measured a rootfs, is
// refused too.
func TestAttestationMissingClaim(t *testing.T) {
	p := &attestingProvider{host: map[string]string{"rootfs": goodRootfs}}
	p.Guest = guest.Run
	got, err := runAttested(t, p)
	if !errors.Is(err, ErrAttestation) || !strings.Contains(err.Error(), "did not report") {
		t.Fatalf("err = %v", err)
	}
	if strings.Join(got, " ") != "host:measured host:mismatch" {
		t.Errorf("events: %v", got)
	}
}

// A provider that refuses to boot on an unexpected rootfs leaves a
// "refused" attestation in the chain, and nothing runs.
func TestAttestationRefusedAtStart(t *testing.T) {
	ae := &sandbox.AttestationError{Artifact: "rootfs", Expected: goodRootfs, Actual: "sha256:3333",
		Measurements: map[string]string{"rootfs": "sha256:3333"}}
	p := &attestingProvider{startErr: ae}
	p.Guest = guest.Run
	got, err := runAttested(t, p)
	var target *sandbox.AttestationError
	if !errors.As(err, &target) || !strings.Contains(err.Error(), goodRootfs) || !strings.Contains(err.Error(), "sha256:3333") {
		t.Fatalf("err = %v, want the attestation error naming both hashes", err)
	}
	if strings.Join(got, " ") != "host:refused" {
		t.Errorf("events: %v", got)
	}
}
