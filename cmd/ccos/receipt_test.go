package main

import (
	"encoding/base64"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ccos-project/ccos/chain"
	"github.com/ccos-project/ccos/receipt"
)

// runSession returns the session id of the first plan.admitted event of a
// chain file.
func runSession(t *testing.T, path string) string {
	t.Helper()
	s, err := chain.OpenReadOnly(chain.ModeForPath(path), path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	events, _, _, err := chain.Load(s, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range events {
		if e.Type == chain.TypePlanAdmitted {
			return e.Session
		}
	}
	t.Fatal("no run in the chain")
	return ""
}

// A plan run with the process provider and a chain key gets a receipt
// that verifies against its chain; a changed receipt does not.
func TestReceiptCreateAndVerify(t *testing.T) {
	dir := t.TempDir()
	key, chainFile, rcpt := filepath.Join(dir, "k"), filepath.Join(dir, "c.chain"), filepath.Join(dir, "r.json")
	if _, e, code := runCCOS(t, "", "chain", "keygen", "ccos.test/receipt", "--out", key); code != 0 {
		t.Fatal(e)
	}
	runReceipt := filepath.Join(dir, "run.json")
	if _, e, code := runCCOS(t, "", "run", "--provider", "process", "--chain", chainFile, "--chain-key", key,
		"--receipt", runReceipt, "../../examples/plans/hello.rtfs"); code != 0 {
		t.Fatal(e)
	}
	if out, e, code := runCCOS(t, "", "receipt", "verify", runReceipt, "--key", key+".pub", "--chain", chainFile); code != 0 {
		t.Fatalf("the receipt of ccos run --receipt: exit %d, %s %s", code, out, e)
	}
	if _, e, code := runCCOS(t, "", "run", "--receipt", runReceipt, "../../examples/plans/hello.rtfs"); code != 2 || !strings.Contains(e, "--receipt needs --chain-key") {
		t.Errorf("--receipt without a key: exit %d, %s", code, e)
	}
	id := runSession(t, chainFile)
	if _, e, code := runCCOS(t, "", "receipt", "create", "--chain", chainFile, "--run", id, "--key", key, "--out", rcpt); code != 0 {
		t.Fatal(e)
	}
	out, e, code := runCCOS(t, "", "receipt", "verify", rcpt, "--key", key+".pub", "--chain", chainFile)
	if code != 0 || !strings.Contains(out, "every fact matches") || !strings.Contains(out, `plan "hello"`) {
		t.Fatalf("verify: exit %d, %s %s", code, out, e)
	}
	out, _, code = runCCOS(t, "", "receipt", "verify", rcpt, "--key", key+".pub", "--json")
	var doc struct {
		OK        bool
		Statement struct{ PredicateType string }
	}
	if code != 0 || json.Unmarshal([]byte(out), &doc) != nil || !doc.OK || !strings.Contains(doc.Statement.PredicateType, "receipt/v1") {
		t.Fatalf("verify --json: exit %d, %s", code, out)
	}

	// The receipt says provider "mock"; one that says "qemu", signed again
	// with the same key, is caught against the chain and named.
	env, _ := os.ReadFile(rcpt)
	var envelope struct {
		Payload     string `json:"payload"`
		PayloadType string `json:"payloadType"`
	}
	json.Unmarshal(env, &envelope)
	payload, _ := base64.StdEncoding.DecodeString(envelope.Payload)
	forged := strings.Replace(string(payload), `"provider":"process"`, `"provider":"qemu"`, 1)
	if forged == string(payload) {
		t.Fatal("no provider field in the receipt")
	}
	skey, _ := os.ReadFile(key)
	signer, _ := chain.ParseSigner(string(skey))
	forgedEnv, err := receipt.SignEnvelope(receipt.PayloadType, []byte(forged), signer)
	if err != nil {
		t.Fatal(err)
	}
	bad := filepath.Join(dir, "bad.json")
	os.WriteFile(bad, forgedEnv, 0o644)
	_, e, code = runCCOS(t, "", "receipt", "verify", bad, "--key", key+".pub", "--chain", chainFile)
	if code != 1 || !strings.Contains(e, "predicate.run.provider") || !strings.Contains(e, `"qemu"`) {
		t.Errorf("forged receipt: exit %d, %s", code, e)
	}
	// The original envelope with the changed payload: the signature fails.
	envelope.Payload = base64.StdEncoding.EncodeToString([]byte(forged))
	var orig map[string]any
	json.Unmarshal(env, &orig)
	orig["payload"] = envelope.Payload
	unsigned, _ := json.Marshal(orig)
	os.WriteFile(bad, unsigned, 0o644)
	_, e, code = runCCOS(t, "", "receipt", "verify", bad, "--key", key+".pub")
	if code != 1 || !strings.Contains(e, "no envelope signature verifies") {
		t.Errorf("changed payload: exit %d, %s", code, e)
	}
}

// ccos replay: a run recorded by ccos run replays the same; a chain whose
// bytes were changed is refused before anything runs.
func TestReplayCommand(t *testing.T) {
	dir := t.TempDir()
	key, chainFile := filepath.Join(dir, "k"), filepath.Join(dir, "c.chain")
	plan := writeTemp(t, "clock.rtfs", `(plan "clock" :body (let [t (step "read" (call :ccos.system.current-time))] [t (+ 1 2)]))`)
	if _, e, code := runCCOS(t, "", "chain", "keygen", "ccos.test/replay", "--out", key); code != 0 {
		t.Fatal(e)
	}
	if _, e, code := runCCOS(t, "", "run", "--provider", "process", "--chain", chainFile, "--chain-key", key, plan); code != 0 {
		t.Fatal(e)
	}
	os.WriteFile(chainFile+".pub", mustRead(t, key+".pub"), 0o644)
	id := runSession(t, chainFile)
	out, e, code := runCCOS(t, "", "replay", "--chain", chainFile, "--run", id, "--provider", "process", plan)
	if code != 0 || !strings.Contains(out, "the same") || !strings.Contains(out, "1 host calls answered from the record") {
		t.Fatalf("replay: exit %d, %s %s", code, out, e)
	}
	other := writeTemp(t, "other.rtfs", `(plan "clock" :body (step "read" (call :ccos.system.current-time)))`)
	if _, e, code := runCCOS(t, "", "replay", "--chain", chainFile, "--run", id, other); code != 1 || !strings.Contains(e, "not the one the run recorded") {
		t.Errorf("other plan: exit %d, %s", code, e)
	}
	data, _ := os.ReadFile(chainFile)
	i := strings.LastIndex(string(data), "ccos.system.current-time")
	data[i] = 'C'
	os.WriteFile(chainFile, data, 0o644)
	if _, e, code := runCCOS(t, "", "replay", "--chain", chainFile, "--run", id, plan); code != 1 || !strings.Contains(e, "does not verify, nothing was replayed") {
		t.Errorf("tampered chain: exit %d, %s", code, e)
	}
}

func mustRead(t *testing.T, path string) []byte {
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
