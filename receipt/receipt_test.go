package receipt

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/ccos-project/ccos/capability"
	"github.com/ccos-project/ccos/chain"
	"github.com/ccos-project/ccos/config"
	"github.com/ccos-project/ccos/governance"
	"github.com/ccos-project/ccos/guest"
	"github.com/ccos-project/ccos/orchestrator"
	"github.com/ccos-project/ccos/plan"
	"github.com/ccos-project/ccos/rtfs"
	"github.com/ccos-project/ccos/sandbox"
	"github.com/ccos-project/ccos/sandbox/mock"
	"golang.org/x/mod/sumdb/note"
)

// run is one recorded run: its chain, keys and session id.
type run struct {
	store    *chain.MemoryStore
	signer   note.Signer
	verifier note.Verifier
	skey     string
	session  string
}

const testPlan = `(plan "receipt-test" :body
  (let [a (step "add" (call :ccos.math.add 1 2))
        t (step "clock" (call :ccos.system.current-time))]
    [a t]))`

// recordRun runs src with the real guest agent (in process, mock
// provider) and a recorder that signs checkpoints; other runs before and
// after it share the chain.
func recordRun(t testing.TB, src string) *run {
	t.Helper()
	skey, vkey, err := chain.GenerateKey("receipt.test")
	if err != nil {
		t.Fatal(err)
	}
	signer, _ := chain.ParseSigner(skey)
	verifier, _ := chain.ParseVerifier(vkey)
	store := chain.NewMemoryStore()
	rec, err := chain.NewRecorder(store, signer, chain.Options{})
	if err != nil {
		t.Fatal(err)
	}
	r := &run{store: store, signer: signer, verifier: verifier, skey: skey}
	for i, s := range []string{`(step "before" 1)`, src, `(step "after" 2)`} {
		id := fmt.Sprintf("ccos-test-%d", i)
		runWith(t, rec, s, id)
		if i == 1 {
			r.session = id
		}
	}
	return r
}

func runWith(t testing.TB, rec *chain.Recorder, src, id string) *orchestrator.Report {
	t.Helper()
	fixed := time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)
	caps := capability.Builtins(func() time.Time { return fixed })
	p, err := plan.Read([]byte(src), "plan.rtfs")
	if err != nil {
		t.Fatal(err)
	}
	res := config.Load([]byte(`(profile:minimal "agent.receipt")`), "cfg", config.RTFSEvaluator{})
	a, err := governance.Admit(p, res.Config, caps, nil)
	if err != nil {
		t.Fatal(err)
	}
	// The egress proxy records its decisions while the guest runs.
	g := func(rw io.ReadWriteCloser) int {
		d := &chain.ProxyDecision{Action: "deny", Kind: "http", Method: "GET", Host: "evil.test", Port: 80, Rule: "not-allowed", Reason: "r"}
		rec.Append(context.Background(), chain.Event{Type: chain.TypeProxyDecision, Session: id, Plan: a.PlanHash, Payload: d.Encode()})
		return guest.Run(rw)
	}
	rep, err := orchestrator.Run(context.Background(), orchestrator.Request{Plan: p, Admission: a,
		Provider: &mock.Provider{Guest: g}, Spec: sandbox.Spec{ID: id, Limits: sandbox.Limits{Deadline: 10 * time.Second}},
		Caps: caps, Recorder: rec})
	if err != nil {
		t.Fatal(err)
	}
	return rep
}

func TestPAESpecVectors(t *testing.T) {
	for _, c := range []struct{ typ, body, want string }{
		// The DSSE protocol document's example.
		{"http://example.com/HelloWorld", "hello world", "DSSEv1 29 http://example.com/HelloWorld 11 hello world"},
		{"", "", "DSSEv1 0  0 "},
		{PayloadType, "{}", "DSSEv1 28 application/vnd.in-toto+json 2 {}"},
	} {
		if got := string(PAE(c.typ, []byte(c.body))); got != c.want {
			t.Errorf("PAE(%q, %q) = %q, want %q", c.typ, c.body, got, c.want)
		}
	}
}

func TestReceiptOfARun(t *testing.T) {
	r := recordRun(t, testPlan)
	env, err := ForRun(context.Background(), r.store, r.session, r.signer)
	if err != nil {
		t.Fatal(err)
	}
	st, err := Verify(env, r.verifier, r.store)
	if err != nil {
		t.Fatal(err)
	}
	p := st.Predicate
	if p.Run.Session != r.session || p.Run.Plan != "receipt-test" || !p.Run.OK || p.Run.Provider != "mock" ||
		p.Run.Agent != "agent.receipt" || !strings.HasPrefix(p.Run.ConfigDigest, "sha256:") || p.Run.Sandboxes != 1 {
		t.Errorf("run = %+v", p.Run)
	}
	if len(p.Steps) != 2 || p.Steps[0].Outcome != "ok" || p.Steps[1].Calls != 1 || p.Steps[1].Attempts != 1 ||
		len(p.Steps[1].Profile.Capabilities) != 1 || p.Steps[1].Profile.Seed == "" {
		t.Errorf("steps = %+v", p.Steps)
	}
	if len(p.Egress) != 1 || p.Egress[0].Host != "evil.test" || p.Egress[0].Action != "deny" {
		t.Errorf("egress = %+v", p.Egress)
	}
	if len(st.Subject) != 2 || st.Subject[1].Digest["sha256"] != chain.ValueDigest(mustRead(t, "[3 2026-11-22T12:00:00Z]")) {
		t.Errorf("subjects = %+v", st.Subject)
	}
	// Only the run's own events are in it.
	events, _, _, _ := chain.Load(r.store, nil)
	for _, e := range events[p.Chain.FirstSeq : p.Chain.LastSeq+1] {
		if e.Session != r.session {
			t.Errorf("event %d of session %q inside the run's range", e.Seq, e.Session)
		}
	}
	// Open alone checks everything but the chain.
	if _, err := Open(env, r.verifier); err != nil {
		t.Fatal(err)
	}
	// Another key does not verify it.
	_, other, _ := chain.GenerateKey("receipt.test")
	ov, _ := chain.ParseVerifier(other)
	if _, err := Open(env, ov); !errors.Is(err, ErrSignature) {
		t.Errorf("other key: %v", err)
	}
}

func mustRead(t *testing.T, text string) rtfs.Value {
	v, err := rtfs.ReadOne(text, "t")
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// leaves lists the JSON paths of every scalar of v and of every array.
func leaves(path string, v any, out *[]string) {
	join := func(k string) string {
		if path == "" {
			return k
		}
		return path + "." + k
	}
	switch x := v.(type) {
	case map[string]any:
		keys := make([]string, 0, len(x))
		for k := range x {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			leaves(join(k), x[k], out)
		}
	case []any:
		*out = append(*out, path)
		for i, it := range x {
			leaves(fmt.Sprintf("%s[%d]", path, i), it, out)
		}
	default:
		*out = append(*out, path)
	}
}

// tamper changes the value at path in the JSON tree v.
func tamper(t *testing.T, v any, path string) any {
	var walk func(cur any, parts []string) any
	walk = func(cur any, parts []string) any {
		if len(parts) == 0 {
			switch x := cur.(type) {
			case string:
				return x + "0"
			case float64:
				return x + 1
			case bool:
				return !x
			case []any:
				if len(x) > 0 {
					return x[:len(x)-1]
				}
				return append(x, "0")
			case nil:
				return "0"
			}
			t.Fatalf("cannot tamper with %T at %s", cur, path)
		}
		part := parts[0]
		name, idx, isIdx := strings.Cut(part, "[")
		switch x := cur.(type) {
		case map[string]any:
			if isIdx {
				var i int
				fmt.Sscanf(idx, "%d]", &i)
				arr := x[name].([]any)
				arr[i] = walk(arr[i], parts[1:])
				return x
			}
			x[name] = walk(x[name], parts[1:])
			return x
		}
		t.Fatalf("bad path %s", path)
		return nil
	}
	return walk(v, splitPath(path))
}

// splitPath splits "a.b[2].c" into "a", "b[2]", "c"; "b[2][1]" is not
// produced by receipts.
func splitPath(p string) []string { return strings.Split(p, ".") }

// TestTamperingWithEachField: changing any field of a receipt and signing
// it again with the chain's key is caught, and the error names the field.
func TestTamperingWithEachField(t *testing.T) {
	r := recordRun(t, `(plan "p" :body (step "s" (call :ccos.system.current-time)))`)
	env, err := ForRun(context.Background(), r.store, r.session, r.signer)
	if err != nil {
		t.Fatal(err)
	}
	payload, err := OpenEnvelope(env, r.verifier)
	if err != nil {
		t.Fatal(err)
	}
	var tree any
	json.Unmarshal(payload, &tree)
	var paths []string
	leaves("", tree, &paths)
	if len(paths) < 30 {
		t.Fatalf("only %d fields", len(paths))
	}
	for _, path := range paths {
		var fresh any
		json.Unmarshal(payload, &fresh)
		changed, _ := json.Marshal(tamper(t, fresh, path))
		forged, err := SignEnvelope(PayloadType, changed, r.signer)
		if err != nil {
			t.Fatal(err)
		}
		_, err = Verify(forged, r.verifier, r.store)
		if err == nil {
			t.Errorf("%s: tampering not detected", path)
			continue
		}
		var me *MismatchError
		switch {
		case strings.HasPrefix(path, "predicate.chain") || path == "_type" || path == "predicateType" ||
			strings.HasPrefix(path, "subject") || errors.Is(err, ErrStatement):
			// Caught by the statement, checkpoint or proof checks.
		case errors.As(err, &me):
			if !strings.HasPrefix(path, me.Field) && !strings.HasPrefix(me.Field, "subject") {
				t.Errorf("%s: the error names %s: %v", path, me.Field, err)
			}
		default:
			t.Errorf("%s: %v (not a mismatch)", path, err)
		}
		// Not signed again: the signature no longer verifies.
		var env2 Envelope
		json.Unmarshal(forged, &env2)
		var orig Envelope
		json.Unmarshal(env, &orig)
		env2.Signatures = orig.Signatures
		unsigned, _ := json.Marshal(env2)
		if _, err := Open(unsigned, r.verifier); !errors.Is(err, ErrSignature) {
			t.Errorf("%s without a new signature: %v", path, err)
		}
	}
}

// TestReceiptOfATamperedChain: a chain whose events were changed after
// the receipt was made does not verify.
func TestReceiptOfATamperedChain(t *testing.T) {
	r := recordRun(t, testPlan)
	env, err := ForRun(context.Background(), r.store, r.session, r.signer)
	if err != nil {
		t.Fatal(err)
	}
	var recs [][]byte
	r.store.Records(func(_ uint64, b []byte) error { recs = append(recs, b); return nil })
	for i, b := range recs {
		e, _ := chain.Decode(b)
		if e.Type == chain.TypeCapabilityResult && e.Session == r.session {
			e.Payload = (&chain.CapabilityResult{Capability: "ccos.system.current-time", OK: true, Value: rtfs.String{V: "1999"}}).Encode()
			recs[i], _ = chain.Encode(e)
			break
		}
	}
	forged := chain.NewMemoryStore()
	for _, b := range recs {
		<-forged.Append(b)
	}
	if _, err := Verify(env, r.verifier, forged); err == nil || !strings.Contains(err.Error(), "does not verify") {
		t.Errorf("tampered chain: %v", err)
	}
}

func TestNoCheckpointNoReceipt(t *testing.T) {
	store := chain.NewMemoryStore()
	rec, _ := chain.NewRecorder(store, nil, chain.Options{})
	runWith(t, rec, `(step "s" 1)`, "ccos-x")
	skey, _, _ := chain.GenerateKey("k")
	signer, _ := chain.ParseSigner(skey)
	if _, err := ForRun(context.Background(), store, "ccos-x", signer); !errors.Is(err, ErrNoCheckpoint) {
		t.Errorf("got %v", err)
	}
	if _, err := ForRun(context.Background(), store, "ccos-none", signer); !errors.Is(err, ErrNoRun) {
		t.Errorf("got %v", err)
	}
}

// ForRecorder, reading only the events since the run started, makes the
// same receipt as ForRun reading the whole chain.
func TestForRecorderMatchesForRun(t *testing.T) {
	skey, vkey, _ := chain.GenerateKey("receipt.test")
	signer, _ := chain.ParseSigner(skey)
	verifier, _ := chain.ParseVerifier(vkey)
	store := chain.NewMemoryStore()
	rec, _ := chain.NewRecorder(store, signer, chain.Options{})
	runWith(t, rec, `(step "before" 1)`, "ccos-a")
	from := rec.Size()
	runWith(t, rec, testPlan, "ccos-b")
	live, err := ForRecorder(context.Background(), rec, from, "ccos-b", signer)
	if err != nil {
		t.Fatal(err)
	}
	whole, err := ForRun(context.Background(), store, "ccos-b", signer)
	if err != nil {
		t.Fatal(err)
	}
	a, _ := Verify(live, verifier, store)
	b, _ := Verify(whole, verifier, store)
	if a == nil || b == nil || toJSON(a) == nil || full(toJSON(a)) != full(toJSON(b)) {
		t.Fatalf("receipts differ or do not verify:\n%v\n%v", a, b)
	}
}
