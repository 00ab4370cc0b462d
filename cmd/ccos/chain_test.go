package main

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ccos-project/ccos/chain"
	"github.com/ccos-project/ccos/rtfs"
)

// makeChain generates a key with ccos chain keygen and writes a chain of n
// events (with a checkpoint every 4) to dir/name through the chain package.
func makeChain(t *testing.T, name string, n int) (path, keyFile string) {
	t.Helper()
	dir := t.TempDir()
	keyFile = filepath.Join(dir, "key")
	if _, stderr, code := runCCOS(t, "", "chain", "keygen", "ccos.test/cli", "--out", keyFile); code != 0 {
		t.Fatalf("keygen: %d %s", code, stderr)
	}
	signer, err := chain.ReadSignerFile(keyFile)
	if err != nil {
		t.Fatal(err)
	}
	path = filepath.Join(dir, name)
	s, err := chain.Open(chain.ModeForPath(path), path)
	if err != nil {
		t.Fatal(err)
	}
	rec, err := chain.NewRecorder(s, signer, chain.Options{CheckpointEvery: 4})
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < n; i++ {
		e := chain.Event{Type: chain.TypeStepStarted, Session: "s1", Plan: "p1", Step: "step-" + string(rune('a'+i)),
			Payload: rtfs.MapOf(rtfs.Keyword{Name: "i"}, rtfs.Int{V: int64(i)})}
		if i == 2 {
			e.Type, e.Origin, e.Payload = chain.TypeGuestEvent, chain.OriginGuest, rtfs.String{V: "guest says hi"}
		}
		if _, err := rec.Append(context.Background(), e); err != nil {
			t.Fatal(err)
		}
	}
	if err := rec.Close(); err != nil {
		t.Fatal(err)
	}
	return path, keyFile
}

func TestChainCheckpointVerifyProve(t *testing.T) {
	for _, name := range []string{"c.chain", "c.db"} {
		t.Run(name, func(t *testing.T) {
			path, key := makeChain(t, name, 6)
			// 6 events + 1 automatic checkpoint; ccos chain checkpoint adds one.
			out, stderr, code := runCCOS(t, "", "chain", "checkpoint", path, "--key", key)
			if code != 0 || !strings.HasPrefix(out, "ccos.test/cli\n7\n") || !strings.Contains(out, "\n— ccos.test/cli ") {
				t.Fatalf("checkpoint: %d\n%s%s", code, out, stderr)
			}
			if _, err := os.Stat(path + ".pub"); err != nil {
				t.Fatalf("verifier not stored beside: %v", err)
			}
			out, stderr, code = runCCOS(t, "", "chain", "verify", path)
			if code != 0 || !strings.Contains(out, "ok: 8 events, 2 checkpoints") {
				t.Fatalf("verify: %d\n%s%s", code, out, stderr)
			}
			out, _, code = runCCOS(t, "", "chain", "verify", path, "--key", key+".pub", "--json")
			var doc map[string]any
			if code != 0 || json.Unmarshal([]byte(out), &doc) != nil || doc["ok"] != true || doc["events"] != 8.0 {
				t.Fatalf("verify --json: %d %s", code, out)
			}
			out, stderr, code = runCCOS(t, "", "chain", "prove", path, "--index", "2")
			if code != 0 || !strings.Contains(out, "checkpoint ccos.test/cli size 7") || !strings.Contains(out, "verified against the signed checkpoint") {
				t.Fatalf("prove: %d\n%s%s", code, out, stderr)
			}
			out, _, code = runCCOS(t, "", "chain", "prove", path, "--index", "6", "--json")
			if code != 0 || json.Unmarshal([]byte(out), &doc) != nil || doc["verified"] != true || doc["tree_size"] != 7.0 {
				t.Fatalf("prove --json: %d %s", code, out)
			}
			if _, stderr, code := runCCOS(t, "", "chain", "prove", path, "--index", "7"); code != 1 || !strings.Contains(stderr, "not covered by a checkpoint") {
				t.Fatalf("prove uncovered: %d %s", code, stderr)
			}
			if _, stderr, code := runCCOS(t, "", "chain", "prove", path, "--index", "99"); code != 1 || !strings.Contains(stderr, "no event 99") {
				t.Fatalf("prove missing: %d %s", code, stderr)
			}
		})
	}
}

func TestChainShow(t *testing.T) {
	path, _ := makeChain(t, "c.chain", 5)
	out, stderr, code := runCCOS(t, "", "chain", "show", path)
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if code != 0 || len(lines) != 6 {
		t.Fatalf("show: %d\n%s%s", code, out, stderr)
	}
	if !strings.Contains(lines[0], " host step.started session=s1 plan=p1 step=step-a {:i 0}") ||
		!strings.Contains(lines[2], " guest guest.event ") || !strings.Contains(lines[4], "checkpoint origin=ccos.test/cli size=4 root=") {
		t.Fatalf("show lines:\n%s", out)
	}
	out, _, code = runCCOS(t, "", "chain", "show", path, "--json")
	var doc struct {
		Events []map[string]any `json:"events"`
	}
	if code != 0 || json.Unmarshal([]byte(out), &doc) != nil || len(doc.Events) != 6 {
		t.Fatalf("show --json: %d %s", code, out)
	}
	if e := doc.Events[2]; e["origin"] != "guest" || e["payload"] != `"guest says hi"` || e["parent"] != doc.Events[1]["hash"] {
		t.Fatalf("event 2: %v", e)
	}
}

// TestChainVerifyDamage: verify names the first bad sequence number.
func TestChainVerifyDamage(t *testing.T) {
	path, key := makeChain(t, "c.chain", 6)
	good, _ := os.ReadFile(path)
	b := append([]byte(nil), good...)
	i := strings.Index(string(b), "step-c")
	b[i+5] = 'X' // inside event 2
	damaged := writeTemp(t, "d.chain", string(b))
	out, stderr, code := runCCOS(t, "", "chain", "verify", damaged, "--key", key+".pub")
	if code != 1 || !strings.Contains(stderr, "first bad event: seq 2") {
		t.Fatalf("damaged verify: %d\n%s%s", code, out, stderr)
	}
	// A torn tail is damage for verify (it opens read-only).
	torn := writeTemp(t, "t.chain", string(good[:len(good)-3]))
	if _, stderr, code := runCCOS(t, "", "chain", "verify", torn, "--key", key+".pub"); code != 1 || !strings.Contains(stderr, "seq 6") || !strings.Contains(stderr, "torn tail") {
		t.Fatalf("torn verify: %d %s", code, stderr)
	}
	// Checkpoints need a verifier.
	nokey := writeTemp(t, "n.chain", string(good))
	if _, stderr, code := runCCOS(t, "", "chain", "verify", nokey); code != 1 || !strings.Contains(stderr, "no verifier key") {
		t.Fatalf("verify without key: %d %s", code, stderr)
	}
	// The wrong key fails the first checkpoint.
	other := filepath.Join(t.TempDir(), "other")
	runCCOS(t, "", "chain", "keygen", "ccos.test/cli", "--out", other)
	if _, stderr, code := runCCOS(t, "", "chain", "verify", path, "--key", other+".pub"); code != 1 || !strings.Contains(stderr, "seq 4") {
		t.Fatalf("verify with another key: %d %s", code, stderr)
	}
	if _, stderr, code := runCCOS(t, "", "chain", "verify", filepath.Join(t.TempDir(), "none")); code != 1 || stderr == "" {
		t.Fatalf("verify missing file: %d %s", code, stderr)
	}
	if _, stderr, code := runCCOS(t, "", "chain", "verify", writeTemp(t, "x.chain", "not a chain")); code != 1 || !strings.Contains(stderr, "not a ccos chain") {
		t.Fatalf("verify non-chain: %d %s", code, stderr)
	}
}

func TestChainKeygen(t *testing.T) {
	dir := t.TempDir()
	key := filepath.Join(dir, "k")
	out, _, code := runCCOS(t, "", "chain", "keygen", "ccos.example/agent", "--out", key)
	if code != 0 || !strings.HasPrefix(out, "ccos.example/agent+") {
		t.Fatalf("keygen: %d %s", code, out)
	}
	if st, err := os.Stat(key); err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("key file: %v %v", st, err)
	}
	b, _ := os.ReadFile(key)
	if !strings.HasPrefix(string(b), "PRIVATE+KEY+ccos.example/agent+") {
		t.Fatalf("key file content %q", b)
	}
	if _, stderr, code := runCCOS(t, "", "chain", "keygen", "ccos.example/agent", "--out", key); code != 1 || !strings.Contains(stderr, "not overwriting") {
		t.Fatalf("keygen over an existing key: %d %s", code, stderr)
	}
	if _, _, code := runCCOS(t, "", "chain", "keygen", "bad name", "--out", filepath.Join(dir, "k2")); code != 1 {
		t.Fatalf("keygen with a bad name: %d", code)
	}
	if _, _, code := runCCOS(t, "", "chain", "keygen", "x"); code != 2 {
		t.Fatalf("keygen without --out: %d, want 2", code)
	}
	if _, _, code := runCCOS(t, "", "chain", "checkpoint", filepath.Join(dir, "c.chain"), "--key", key+".pub"); code != 1 {
		t.Fatalf("checkpoint with a verifier as signer: %d", code)
	}
}

// TestChainVerifyAgainstCheckpoint: a checkpoint kept elsewhere catches a
// chain cut back to before it, which the chain alone cannot show.
func TestChainVerifyAgainstCheckpoint(t *testing.T) {
	path, key := makeChain(t, "c.chain", 6)
	note, _, code := runCCOS(t, "", "chain", "checkpoint", path, "--key", key)
	if code != 0 {
		t.Fatal("checkpoint failed")
	}
	kept := writeTemp(t, "kept.note", note)
	if out, stderr, code := runCCOS(t, "", "chain", "verify", path, "--checkpoint", kept); code != 0 {
		t.Fatalf("verify against its own checkpoint: %d %s%s", code, out, stderr)
	}
	// Cut the chain back to its first 5 events (the checkpoint after event
	// 4 included): the chain verifies alone, but not against the note.
	b, _ := os.ReadFile(path)
	s, err := chain.OpenReadOnly(chain.StorageAppendFile, path)
	if err != nil {
		t.Fatal(err)
	}
	var end int
	off := 8
	s.Records(func(seq uint64, data []byte) error {
		off += 8 + len(data)
		if seq == 4 {
			end = off
		}
		return nil
	})
	s.Close()
	cut := filepath.Join(filepath.Dir(path), "cut.chain")
	os.WriteFile(cut, b[:end], 0o644)
	if _, stderr, code := runCCOS(t, "", "chain", "verify", cut, "--key", path+".pub"); code != 0 {
		t.Fatalf("cut chain alone: %d %s", code, stderr)
	}
	if _, stderr, code := runCCOS(t, "", "chain", "verify", cut, "--key", path+".pub", "--checkpoint", kept); code != 1 || !strings.Contains(stderr, "shorter than the checkpoint") {
		t.Fatalf("cut chain against the note: %d %s", code, stderr)
	}
}

// TestChainVerifyUnsignedTail: events after the latest checkpoint make
// verify fail (ok false in --json, with the count) unless
// --allow-unsigned-tail; a host event forged and appended after the last
// checkpoint is such an event.
func TestChainVerifyUnsignedTail(t *testing.T) {
	path, key := makeChain(t, "c.chain", 6) // events 0-3, checkpoint 4, events 5-6
	verify := func(extra ...string) (map[string]any, string, int) {
		t.Helper()
		out, stderr, code := runCCOS(t, "", append([]string{"chain", "verify", path, "--key", key + ".pub", "--json"}, extra...)...)
		var doc map[string]any
		if err := json.Unmarshal([]byte(out), &doc); err != nil {
			t.Fatalf("verify --json: %v\n%s", err, out)
		}
		return doc, stderr, code
	}
	doc, stderr, code := verify()
	if code != 1 || doc["ok"] != false || doc["unsigned_tail"] != 2.0 || doc["signed_events"] != 5.0 ||
		!strings.Contains(stderr, "events 5 to 6 follow the latest checkpoint: no signature covers them") {
		t.Fatalf("unsigned tail: %d %v %s", code, doc, stderr)
	}
	if doc, _, code := verify("--allow-unsigned-tail"); code != 0 || doc["ok"] != true || doc["unsigned_tail"] != 2.0 {
		t.Fatalf("allowed tail: %d %v", code, doc)
	}
	if _, _, code := runCCOS(t, "", "chain", "checkpoint", path, "--key", key); code != 0 {
		t.Fatal("checkpoint failed")
	}
	if doc, _, code := verify(); code != 0 || doc["ok"] != true || doc["unsigned_tail"] != 0.0 {
		t.Fatalf("signed chain: %d %v", code, doc)
	}
	// A forger who can write the file appends a well-linked host event.
	s, err := chain.Open(chain.StorageAppendFile, path)
	if err != nil {
		t.Fatal(err)
	}
	forger, err := chain.NewRecorder(s, nil, chain.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := forger.Append(context.Background(), chain.Event{Type: chain.TypePlanFinished, Payload: rtfs.String{V: "all steps approved"}}); err != nil {
		t.Fatal(err)
	}
	forger.Close()
	doc, stderr, code = verify()
	if code != 1 || doc["ok"] != false || doc["unsigned_tail"] != 1.0 || !strings.Contains(stderr, "event 8 follows the latest checkpoint") {
		t.Fatalf("forged event: %d %v %s", code, doc, stderr)
	}
	out, _, code := runCCOS(t, "", "chain", "verify", path, "--key", key+".pub", "--allow-unsigned-tail")
	if code != 0 || !strings.Contains(out, "accepted with --allow-unsigned-tail: event 8 follows the latest checkpoint") {
		t.Fatalf("text output: %d %s", code, out)
	}
}

// TestChainVerifyRewrittenCheckpointEvent: the checkpoint event's own
// fields are signed; rewriting the last checkpoint event's time fails.
func TestChainVerifyRewrittenCheckpointEvent(t *testing.T) {
	path, key := makeChain(t, "c.chain", 4) // events 0-3, checkpoint 4
	s, err := chain.OpenReadOnly(chain.StorageAppendFile, path)
	if err != nil {
		t.Fatal(err)
	}
	var recs [][]byte
	s.Records(func(_ uint64, data []byte) error {
		recs = append(recs, append([]byte(nil), data...))
		return nil
	})
	s.Close()
	e, err := chain.Decode(recs[4])
	if err != nil || e.Type != chain.TypeCheckpoint {
		t.Fatalf("event 4: %+v %v", e, err)
	}
	e.Time = e.Time.Add(-24 * time.Hour)
	if recs[4], err = chain.Encode(e); err != nil {
		t.Fatal(err)
	}
	forged := filepath.Join(t.TempDir(), "forged.chain")
	fs, err := chain.Open(chain.StorageAppendFile, forged)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range recs {
		if err := <-fs.Append(r); err != nil {
			t.Fatal(err)
		}
	}
	fs.Close()
	out, stderr, code := runCCOS(t, "", "chain", "verify", forged, "--key", key+".pub", "--json")
	var doc map[string]any
	if code != 1 || json.Unmarshal([]byte(out), &doc) != nil || doc["ok"] != false || doc["bad_seq"] != 4.0 ||
		!strings.Contains(stderr, "seq 4: checkpoint event's fields differ from those its signature covers") {
		t.Fatalf("rewritten checkpoint event: %d %s %s", code, out, stderr)
	}
}
