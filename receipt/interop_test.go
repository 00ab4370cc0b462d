package receipt

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/ccos-project/ccos/chain"
	ita1 "github.com/in-toto/attestation/go/v1"
	"github.com/secure-systems-lab/go-securesystemslib/dsse"
	"golang.org/x/mod/sumdb/note"
	"google.golang.org/protobuf/encoding/protojson"
)

// edKey is an Ed25519 key as the independent DSSE implementation sees it.
type edKey struct {
	priv ed25519.PrivateKey
	id   string
}

func (k edKey) Sign(_ context.Context, data []byte) ([]byte, error) {
	return ed25519.Sign(k.priv, data), nil
}
func (k edKey) Verify(_ context.Context, data, sig []byte) error {
	if !ed25519.Verify(k.priv.Public().(ed25519.PublicKey), data, sig) {
		return errors.New("bad signature")
	}
	return nil
}
func (k edKey) KeyID() (string, error)   { return k.id, nil }
func (k edKey) Public() crypto.PublicKey { return k.priv.Public() }

// sameKey returns one Ed25519 key as a note signer and verifier (ours) and
// as raw keys (theirs).
func sameKey(t *testing.T) (note.Signer, note.Verifier, edKey) {
	seed := bytes.Repeat([]byte{7}, ed25519.SeedSize)
	skey, vkey, err := note.GenerateKey(bytes.NewReader(seed), "interop.test")
	if err != nil {
		t.Fatal(err)
	}
	s, _ := note.NewSigner(skey)
	v, _ := note.NewVerifier(vkey)
	return s, v, edKey{priv: ed25519.NewKeyFromSeed(seed), id: KeyID(s.Name(), s.KeyHash())}
}

// TestDSSEInterop: envelopes signed here verify with
// go-securesystemslib's DSSE implementation, and the other way round.
func TestDSSEInterop(t *testing.T) {
	signer, verifier, theirs := sameKey(t)
	r := recordRun(t, testPlan)
	st, err := FromChain(loadAll(t, r))
	if err != nil {
		t.Fatal(err)
	}
	ours, err := Sign(st, signer)
	if err != nil {
		t.Fatal(err)
	}
	var env dsse.Envelope
	if err := json.Unmarshal(ours, &env); err != nil {
		t.Fatal(err)
	}
	ev, _ := dsse.NewEnvelopeVerifier(theirs)
	if _, err := ev.Verify(context.Background(), &env); err != nil {
		t.Fatalf("their verifier rejects our envelope: %v", err)
	}
	if got := string(dsse.PAE(PayloadType, []byte("x y"))); got != string(PAE(PayloadType, []byte("x y"))) {
		t.Errorf("PAE differs: %q", got)
	}

	payload, _ := st.Marshal()
	es, _ := dsse.NewEnvelopeSigner(theirs)
	their, err := es.SignPayload(context.Background(), PayloadType, payload)
	if err != nil {
		t.Fatal(err)
	}
	data, _ := json.Marshal(their)
	got, err := OpenEnvelope(data, verifier)
	if err != nil || !bytes.Equal(got, payload) {
		t.Fatalf("our verifier rejects their envelope: %v", err)
	}

	// The in-toto attestation bindings read our statement and find it valid.
	var s ita1.Statement
	if err := protojson.Unmarshal(payload, &s); err != nil {
		t.Fatalf("in-toto bindings cannot read the statement: %v", err)
	}
	if err := s.Validate(); err != nil {
		t.Fatalf("in-toto: %v", err)
	}
	if s.GetPredicateType() != PredicateType || s.GetSubject()[0].GetName() != SubjectPlan ||
		s.GetPredicate().GetFields()["run"].GetStructValue().GetFields()["session"].GetStringValue() != r.session {
		t.Errorf("in-toto reads %v", &s)
	}
}

func loadAll(t *testing.T, r *run) ([]*chain.Event, *chain.Tree, string) {
	events, tree, _, err := chain.Load(r.store, r.verifier)
	if err != nil {
		t.Fatal(err)
	}
	return events, tree, r.session
}

func FuzzParseEnvelope(f *testing.F) {
	addSeeds(f, "envelope")
	f.Add([]byte(`{"payload":"e30=","payloadType":"application/vnd.in-toto+json","signatures":[{"keyid":"k","sig":"AA=="}]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		env, payload, err := ParseEnvelope(data)
		if err != nil {
			return
		}
		again, _ := json.Marshal(env)
		env2, payload2, err := ParseEnvelope(again)
		if err != nil || !bytes.Equal(payload, payload2) || env2.PayloadType != env.PayloadType {
			t.Fatalf("re-encoded envelope differs: %v", err)
		}
	})
}

func FuzzParseStatement(f *testing.F) {
	addSeeds(f, "statement")
	f.Add([]byte(`{"_type":"https://in-toto.io/Statement/v1","subject":[{"name":"plan","digest":{"sha256":"` +
		"0000000000000000000000000000000000000000000000000000000000000000" + `"}}],"predicateType":"` + PredicateType + `","predicate":{}}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		st, err := ParseStatement(data)
		if err != nil {
			return
		}
		again, err := st.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		st2, err := ParseStatement(again)
		if err != nil {
			t.Fatalf("re-encoded statement does not parse: %v", err)
		}
		third, _ := st2.Marshal()
		if !bytes.Equal(again, third) {
			t.Fatalf("not stable")
		}
	})
}

// addSeeds adds testdata/fuzz-seeds/<kind>/* (kept regression inputs).
func addSeeds(f *testing.F, kind string) {
	files, _ := filepath.Glob(filepath.Join("testdata", "seeds", kind, "*"))
	for _, p := range files {
		if b, err := os.ReadFile(p); err == nil {
			f.Add(b)
		}
	}
}
