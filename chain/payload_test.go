package chain

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/ccos-project/ccos/rtfs"
)

func readValue(t testing.TB, text string) rtfs.Value {
	t.Helper()
	v, err := rtfs.ReadOne(text, "test")
	if err != nil {
		t.Fatalf("%s: %v", text, err)
	}
	return v
}

// TestPayloadsRoundTrip checks Decode(Encode(p)) == p for every payload
// type, with and without its optional fields.
func TestPayloadsRoundTrip(t *testing.T) {
	for _, p := range []Payload{
		&PlanAdmitted{Name: "p", PlanHash: "sha256:00", RiskTier: "low", Policy: "", SecurityLevel: "controlled",
			Steps: []AdmittedStep{{Name: "a", Capabilities: []string{}, Domains: []string{}}}},
		&PlanAdmitted{Name: "p", PlanHash: "sha256:00", RiskTier: "high", Policy: "strict", SecurityLevel: "full",
			Steps: []AdmittedStep{{Name: "a", Capabilities: []string{"ccos.network.http-fetch"}, Domains: []string{"example.com"},
				MaxTimeMS: 5, Methods: []string{"GET"}, Retry: 2, Seed: "ab", Dynamic: true}},
			Agent: "agent.x", ConfigDigest: "sha256:11", Isolation: "container"},
		&PlanRejected{Error: "no"},
		&PlanFinished{OK: true}, &PlanFinished{OK: false, Failure: "boom", ValueSHA256: "ff"},
		&Attestation{Verdict: "measured", Measurements: map[string]string{"rootfs": "sha256:1", "kernel": "sha256:2"}},
		&Attestation{Verdict: "refused", Measurements: map[string]string{}, Artifact: "rootfs", Expected: "a", Actual: "b", Error: "e"},
		&StepStarted{}, &StepStarted{Attempt: 2, Cause: "flaky"},
		&StepFinished{OK: true, Error: "", DurationMS: 3},
		&CapabilityCall{Capability: "ccos.echo", Args: []rtfs.Value{rtfs.String{V: "1"}}},
		&CapabilityCall{Capability: "ccos.echo", Args: []rtfs.Value{}, Ordinal: 2, Key: "k1:ab"},
		&CapabilityResult{Capability: "ccos.echo", OK: true, Value: rtfs.Int{V: 1}},
		&CapabilityResult{Capability: "ccos.echo", OK: false, Error: "bad", Replayed: "k1:ab"},
		&ProxyDecision{Action: "allow", Kind: "http", Method: "GET", Host: "example.com", Port: 443, Rule: "r", Reason: "ok"},
		&ProxyDecision{Action: "deny", Kind: "connect", Method: "CONNECT", Host: "x", Port: 1, Rule: "r", Reason: "no",
			Addr: "127.0.0.1", Status: 403, DLP: []string{"aws-key"}, Error: "e"},
		&SandboxLifecycle{Event: "started", Provider: "process", Sandbox: "s"},
		&SandboxLifecycle{Event: "ended", Exited: true, TotalMS: 4},
		&SandboxLifecycle{Event: "ended", Reason: "exit status 1", TotalMS: 4},
		&SandboxLifecycle{Event: "crashed", Detail: "gone"},
		&SandboxLifecycle{Event: "limit-exceeded", Limit: "event-bytes", LimitValue: 1 << 20, Unit: "bytes", Detail: "past it"},
		&GuestEvent{Done: "value", Value: rtfs.Int{V: 3}},
		&GuestEvent{Done: "error", ErrorType: "t", Message: "m", Where: "w"},
		&GuestEvent{Replayed: "ccos.io.write", Key: "k"},
		&CheckpointNote{Note: "n"},
	} {
		v := p.Encode()
		back, err := DecodePayload(p.EventType(), readValue(t, rtfs.Print(v)))
		if err != nil {
			t.Errorf("%s %s: %v", p.EventType(), rtfs.Print(v), err)
			continue
		}
		if rtfs.Print(back.Encode()) != rtfs.Print(v) {
			t.Errorf("%s: round trip %s -> %s", p.EventType(), rtfs.Print(v), rtfs.Print(back.Encode()))
		}
		if !reflect.DeepEqual(normal(back), normal(p)) {
			t.Errorf("%s: decoded %#v, want %#v", p.EventType(), back, p)
		}
	}
}

// normal drops source spans so that decoded values compare equal.
func normal(p Payload) string { return string(p.EventType()) + " " + rtfs.Print(p.Encode()) }

// TestOldEncodingsDecode: payloads as the producers wrote them before the
// typed payloads existed still decode.
func TestOldEncodingsDecode(t *testing.T) {
	for _, c := range []struct {
		typ  Type
		text string
	}{
		{TypePlanAdmitted, `{:name "p" :plan-hash "sha256:ab" :risk-tier :low :policy "" :security-level :controlled :steps [{:name "s" :capabilities [:ccos.echo] :domains ["example.com"] :max-time-ms 0}]}`},
		{TypePlanRejected, `{:error "CAPABILITY_DISABLED: no"}`},
		{TypePlanFinished, `{:ok false :failure "guest failure"}`},
		{TypeAttestation, `{:verdict :refused :measurements {:rootfs "sha256:1"} :artifact "rootfs" :expected "a" :actual "b"}`},
		{TypeAttestation, `{:verdict :mismatch :measurements {} :error "attestation failed"}`},
		{TypeStepStarted, `nil`},
		{TypeStepStarted, `{:attempt 2 :cause "boom"}`},
		{TypeStepFinished, `{:ok true :error "" :duration-ms 12}`},
		{TypeCapabilityCall, `{:capability :ccos.echo :args ["\"hi\""]}`},
		{TypeCapabilityCall, `{:capability :ccos.math.add :args [1 2]}`},
		{TypeCapabilityResult, `{:capability :ccos.echo :ok true :replayed "k1:00" :value "hi"}`},
		{TypeCapabilityResult, `{:capability :ccos.echo :ok false :error "nope"}`},
		{TypeProxyDecision, `{:action :deny :kind "http" :method "GET" :host "evil.test" :port 80 :rule "not-allowed" :reason "r" :addr "127.0.0.1" :status 403 :dlp ["aws"] :error "e" :secrets ["api"]}`},
		{TypeSandboxLifecycle, `{:event :start-failed :provider "qemu" :error "no kvm"}`},
		{TypeSandboxLifecycle, `{:event :started :provider "process" :sandbox "ccos-1"}`},
		{TypeSandboxLifecycle, `{:event :ended :reason :exited :total-ms 10}`},
		{TypeSandboxLifecycle, `{:event :ended :reason "signal: killed" :total-ms 10}`},
		{TypeSandboxLifecycle, `{:event :crashed :detail "vm gone"}`},
		{TypeGuestEvent, `{:done :value :value [1 2]}`},
		{TypeGuestEvent, `{:done :error :type "t" :message "m" :where "w"}`},
		{TypeGuestEvent, `{:replayed :ccos.io.write :key "k1:00"}`},
		{TypeCapabilityResult, `{:truncated true :bytes 70000 :sha256 "00"}`},
	} {
		if _, err := DecodePayload(c.typ, readValue(t, c.text)); err != nil {
			t.Errorf("%s %s: %v", c.typ, c.text, err)
		}
	}
}

func TestPayloadStrictness(t *testing.T) {
	for _, c := range []struct {
		typ   Type
		text  string
		field string
		err   error
	}{
		{TypePlanFinished, `[1]`, "", ErrPayloadShape},
		{TypePlanFinished, `{:ok true :extra 1}`, "extra", ErrPayloadUnknown},
		{TypePlanFinished, `{}`, "ok", ErrPayloadMissing},
		{TypePlanFinished, `{:ok "yes"}`, "ok", ErrPayloadKind},
		{TypePlanFinished, `{"ok" true}`, "", ErrPayloadShape},
		{TypeStepStarted, `{:attempt 1 :cause ""}`, "attempt", ErrPayloadValue},
		{TypeCapabilityResult, `{:capability :x :ok true}`, "value", ErrPayloadMissing},
		{TypeCapabilityResult, `{:capability :x :ok false}`, "error", ErrPayloadMissing},
		{TypeCapabilityResult, `{:capability :x :ok false :error "e" :value 1}`, "value", ErrPayloadUnknown},
		{TypeSandboxLifecycle, `{:event :ended :reason :crashed}`, "reason", ErrPayloadValue},
		{TypeGuestEvent, `{:done :maybe}`, "done", ErrPayloadValue},
		{TypeGuestEvent, `{:anything 1}`, "done", ErrPayloadMissing},
		{TypePlanAdmitted, `{:name "p" :plan-hash "h" :risk-tier :low :policy "" :security-level :pure :steps [{:name "s" :capabilities ["x"] :domains [] :max-time-ms 0}]}`, "steps 1 :capabilities", ErrPayloadKind},
		{TypeAttestation, `{:verdict :measured :measurements {:rootfs 1}}`, "measurements :rootfs", ErrPayloadKind},
		{TypeProxyDecision, `{:action :allow}`, "kind", ErrPayloadMissing},
		{TypeCheckpoint, `1`, "", ErrPayloadShape},
	} {
		_, err := DecodePayload(c.typ, readValue(t, c.text))
		var pe *PayloadError
		if !errors.As(err, &pe) || !errors.Is(err, c.err) || pe.Field != c.field {
			t.Errorf("%s %s: got %v, want field %q %v", c.typ, c.text, err, c.field, c.err)
		}
	}
}

// FuzzDecodePayload: whatever decodes re-encodes to a value that decodes to
// the same payload.
func FuzzDecodePayload(f *testing.F) {
	seeds, _ := filepath.Glob(filepath.Join("testdata", "payloads", "*.rtfs"))
	for _, s := range seeds {
		b, err := os.ReadFile(s)
		if err == nil {
			f.Add(string(TypePlanAdmitted), string(b))
		}
	}
	for _, typ := range []Type{TypePlanFinished, TypeStepStarted, TypeCapabilityResult, TypeGuestEvent, TypeSandboxLifecycle, TypeProxyDecision} {
		f.Add(string(typ), `{:ok true}`)
	}
	f.Add(string(TypeGuestEvent), `{:done :value :value {:a [1 "x"]}}`)
	f.Add(string(TypeSandboxLifecycle), `{:event :ended :reason :exited :total-ms 1}`)
	f.Fuzz(func(t *testing.T, typ, text string) {
		src, err := rtfs.Read([]byte(text), "fuzz", rtfs.ReadOptions{MaxErrors: 1, MaxDepth: 50})
		if err != nil || len(src.Forms) != 1 {
			return
		}
		p, err := DecodePayload(Type(typ), src.Forms[0])
		if err != nil {
			return
		}
		enc := rtfs.Print(p.Encode())
		back, err := rtfs.ReadOne(enc, "re")
		if err != nil {
			t.Fatalf("encoding %q does not read: %v", enc, err)
		}
		p2, err := DecodePayload(Type(typ), back)
		if err != nil {
			t.Fatalf("re-encoded %q does not decode: %v", enc, err)
		}
		if again := rtfs.Print(p2.Encode()); again != enc {
			t.Fatalf("not stable: %q then %q", enc, again)
		}
	})
}

func TestInRun(t *testing.T) {
	for s, want := range map[string]bool{"a": true, "a-r1": true, "a-r12": true, "a-r": false, "a-r01": false, "a-rx": false, "ab": false, "b": false} {
		if InRun(s, "a") != want {
			t.Errorf("InRun(%q) != %v", s, want)
		}
	}
}
