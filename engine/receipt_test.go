package engine

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/ccos-project/ccos/archive"
	"github.com/ccos-project/ccos/chain"
	"github.com/ccos-project/ccos/receipt"
)

// A run of an agent whose chain has a key gets a receipt that verifies
// against the chain, and the archive keeps it.
func TestRunReceipt(t *testing.T) {
	dir := t.TempDir()
	skey, vkey, _ := chain.GenerateKey("engine.test")
	signer, _ := chain.ParseSigner(skey)
	verifier, _ := chain.ParseVerifier(vkey)
	chainFile, arcDir := filepath.Join(dir, "c.chain"), filepath.Join(dir, "arc")
	e := newEngine(t, Options{})
	a := loadAgent(t, e, `(profile:minimal "agent.receipt")`, AgentOptions{Provider: "process", Chain: chainFile, Signer: signer, Archive: arcDir})
	for _, id := range []string{"run-a", "run-b"} {
		res, err := a.Run(context.Background(), RunRequest{ID: id,
			PlanInput: PlanInput{Source: []byte(`(plan "p" :body (step "s" (call :ccos.system.current-time)))`), File: "p.rtfs"}})
		if err != nil {
			t.Fatal(err)
		}
		if res.Receipt == nil {
			t.Fatal("no receipt")
		}
		st, err := receipt.Open(res.Receipt, verifier)
		if err != nil || st.Predicate.Run.Session != id || st.Predicate.Run.Agent != "agent.receipt" || st.Predicate.Run.Provider != "process" {
			t.Fatalf("receipt of %s: %v %+v", id, err, st)
		}
	}
	a.Close()
	s, err := chain.OpenReadOnly(chain.StorageAppendFile, chainFile)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	arc, err := archive.Open(arcDir)
	if err != nil {
		t.Fatal(err)
	}
	defer arc.Close()
	list, _ := arc.List()
	n := 0
	for _, o := range list {
		if o.Kind != archive.KindReceipt {
			continue
		}
		n++
		r, err := arc.GetReceipt(o.Hash)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := receipt.Verify([]byte(r.Envelope), verifier, s); err != nil {
			t.Errorf("archived receipt of %s: %v", r.Run, err)
		}
	}
	if n != 2 {
		t.Errorf("%d receipts archived, want 2", n)
	}
}
