package witness

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ccos-project/ccos/chain"
	"golang.org/x/mod/sumdb/note"
)

// logKeys returns a log's note signer and verifier.
func logKeys(t testing.TB, name string) (note.Signer, note.Verifier) {
	t.Helper()
	skey, vkey, err := chain.GenerateKey(name)
	if err != nil {
		t.Fatal(err)
	}
	s, _ := chain.ParseSigner(skey)
	v, _ := chain.ParseVerifier(vkey)
	return s, v
}

// witnessKeys returns a witness's cosignature signer and the verifier a
// client uses (built from the plain Ed25519 verifier key).
func witnessKeys(t testing.TB, name string) (note.Signer, note.Verifier) {
	t.Helper()
	skey, vkey, err := chain.GenerateKey(name)
	if err != nil {
		t.Fatal(err)
	}
	s, err := NewSigner(skey)
	if err != nil {
		t.Fatal(err)
	}
	v, err := NewVerifier(vkey)
	if err != nil {
		t.Fatal(err)
	}
	return s, v
}

// tree returns a tree of n leaves named prefix0, prefix1, ...; two trees
// with the same prefix share their leaves.
func tree(n int, leaf func(i int) string) *chain.Tree {
	t := chain.NewTree()
	for i := 0; i < n; i++ {
		t.Append(chain.LeafHash([]byte(leaf(i))))
	}
	return t
}

func honest(i int) string { return fmt.Sprintf("event %d", i) }

// forked shares the first 3 events with honest, then differs.
func forked(i int) string {
	if i < 3 {
		return honest(i)
	}
	return fmt.Sprintf("other event %d", i)
}

func checkpoint(t testing.TB, s note.Signer, tr *chain.Tree, size uint64) *chain.Checkpoint {
	t.Helper()
	root, err := tr.RootAt(size)
	if err != nil {
		t.Fatal(err)
	}
	cp, err := chain.SignCheckpoint(s, size, root, chain.Hash{})
	if err != nil {
		t.Fatal(err)
	}
	return cp
}

type fixture struct {
	w      *Witness
	client *Client
	logS   note.Signer
	logV   note.Verifier
	witV   note.Verifier
	state  string
	witS   note.Signer
}

func newFixture(t *testing.T) *fixture {
	f := &fixture{state: filepath.Join(t.TempDir(), "witness.db")}
	f.logS, f.logV = logKeys(t, "ccos.test/log")
	f.witS, f.witV = witnessKeys(t, "ccos.test/witness")
	f.open(t)
	return f
}

func (f *fixture) open(t *testing.T) {
	w, err := New(f.witS, []note.Verifier{f.logV}, f.state, Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(w)
	t.Cleanup(func() { srv.Close(); w.Close() })
	f.w, f.client = w, &Client{URL: srv.URL}
}

func (f *fixture) add(t *testing.T, old uint64, tr *chain.Tree, size uint64) ([]byte, error) {
	t.Helper()
	var proof [][]byte
	if old > 0 && old <= size {
		var err error
		if proof, err = tr.ConsistencyProof(old, size); err != nil {
			t.Fatal(err)
		}
	}
	return f.client.AddCheckpoint(context.Background(), &Request{OldSize: old, Proof: proof, Note: checkpoint(t, f.logS, tr, size).Note})
}

func status(err error) int {
	var se *StatusError
	var ce *ConflictError
	switch {
	case err == nil:
		return 200
	case errors.As(err, &ce):
		return 409
	case errors.As(err, &se):
		return se.Code
	}
	return -1
}

func TestWitnessCosignsAConsistentLog(t *testing.T) {
	f := newFixture(t)
	tr := tree(10, honest)
	for _, step := range []struct{ old, size uint64 }{{0, 4}, {4, 7}, {7, 7}, {7, 10}} {
		sigs, err := f.add(t, step.old, tr, step.size)
		if err != nil {
			t.Fatalf("old %d size %d: %v", step.old, step.size, err)
		}
		cosigned := append(checkpoint(t, f.logS, tr, step.size).Note, sigs...)
		c, err := OpenCosigned(cosigned, f.logV, []note.Verifier{f.witV})
		if err != nil || c.Size != step.size {
			t.Fatalf("cosigned checkpoint of size %d: %v", step.size, err)
		}
	}
	// Without the witness's line, the checkpoint lacks its cosignature.
	_, err := OpenCosigned(checkpoint(t, f.logS, tr, 10).Note, f.logV, []note.Verifier{f.witV})
	if !errors.Is(err, ErrMissingCosignature) {
		t.Errorf("uncosigned: %v", err)
	}
}

// TestWitnessRefusesForks: the C2SP rules, each with its status.
func TestWitnessRefusesForks(t *testing.T) {
	f := newFixture(t)
	good, fork := tree(10, honest), tree(10, forked)
	if _, err := f.add(t, 0, good, 5); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name     string
		old      uint64
		tr       *chain.Tree
		size     uint64
		want     int
		conflict uint64
		recorded bool
	}{
		{"same size, different root", 5, fork, 5, 409, 0, true},
		{"forked tree: the proof does not verify", 5, fork, 8, 422, 0, true},
		{"smaller tree than the one cosigned", 0, good, 3, 409, 5, false},
		{"old size above the checkpoint's", 5, good, 3, 400, 0, false},
		{"stale old size", 4, good, 8, 409, 5, false},
	}
	for _, c := range cases {
		_, err := f.add(t, c.old, c.tr, c.size)
		if status(err) != c.want {
			t.Errorf("%s: %v, want %d", c.name, err, c.want)
		}
		var ce *ConflictError
		if c.conflict != 0 && (!errors.As(err, &ce) || ce.Size != c.conflict) {
			t.Errorf("%s: %v, want the witness's size %d", c.name, err, c.conflict)
		}
	}
	// A proof from size 5 of the forked tree, presented with the honest
	// root at 5 (a tree that is not a prefix): refused.
	proof, _ := fork.ConsistencyProof(5, 9)
	_, err := f.client.AddCheckpoint(context.Background(), &Request{OldSize: 5, Proof: proof, Note: checkpoint(t, f.logS, fork, 9).Note})
	if status(err) != 422 {
		t.Errorf("not a prefix: %v", err)
	}
	refused, _ := f.w.Refused("ccos.test/log")
	if len(refused) != 3 {
		t.Errorf("kept %d refused requests as evidence: %q", len(refused), refused)
	}
	// The honest log still goes on.
	if _, err := f.add(t, 5, good, 10); err != nil {
		t.Fatal(err)
	}
}

func TestWitnessRefusesUnknownLogsAndBadSignatures(t *testing.T) {
	f := newFixture(t)
	tr := tree(3, honest)
	other, _ := logKeys(t, "ccos.test/other")
	_, err := f.client.AddCheckpoint(context.Background(), &Request{Note: checkpoint(t, other, tr, 3).Note})
	if status(err) != 404 {
		t.Errorf("unknown log: %v", err)
	}
	impostor, _ := logKeys(t, "ccos.test/log") // same name, other key
	_, err = f.client.AddCheckpoint(context.Background(), &Request{Note: checkpoint(t, impostor, tr, 3).Note})
	if status(err) != 403 {
		t.Errorf("wrong key: %v", err)
	}
	for name, body := range map[string]string{
		"no old line":       "ccos.test/log\n3\n",
		"leading zero":      "old 03\n\nx\n",
		"bad proof line":    "old 1\n!!!\n\nx\n",
		"no checkpoint":     "old 0\n\n",
		"not a signed note": "old 0\n\nccos.test/log\n3\nAAAA\n",
	} {
		resp, err := http.Post(f.client.URL+"/add-checkpoint", "text/plain", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 400 {
			t.Errorf("%s: status %d", name, resp.StatusCode)
		}
	}
	if resp, _ := http.Get(f.client.URL + "/add-checkpoint"); resp.StatusCode != 405 {
		t.Errorf("GET: %d", resp.StatusCode)
	}
}

// TestWitnessStateSurvivesRestart: after a restart the witness still
// refuses what it refused before.
func TestWitnessStateSurvivesRestart(t *testing.T) {
	f := newFixture(t)
	good, fork := tree(8, honest), tree(8, forked)
	if _, err := f.add(t, 0, good, 6); err != nil {
		t.Fatal(err)
	}
	f.w.Close()
	f.open(t)
	if _, err := f.add(t, 6, fork, 6); status(err) != 409 {
		t.Errorf("fork after restart: %v", err)
	}
	if size, _, _ := f.w.Latest("ccos.test/log"); size != 6 {
		t.Errorf("latest size %d", size)
	}
}

// TestCosignFollowsTheWitnessSize: a client that does not know the
// witness's size learns it from the 409 and sends the right proof.
func TestCosignFollowsTheWitnessSize(t *testing.T) {
	f := newFixture(t)
	tr := tree(9, honest)
	if _, err := f.add(t, 0, tr, 4); err != nil {
		t.Fatal(err)
	}
	cp := checkpoint(t, f.logS, tr, 9)
	sigs, err := Cosign(context.Background(), f.client, tr, cp, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := OpenCosigned(append(cp.Note, sigs...), f.logV, []note.Verifier{f.witV}); err != nil {
		t.Fatal(err)
	}
}

func TestRequestRoundTrip(t *testing.T) {
	tr := tree(5, honest)
	s, _ := logKeys(t, "l")
	proof, _ := tr.ConsistencyProof(2, 5)
	r := &Request{OldSize: 2, Proof: proof, Note: checkpoint(t, s, tr, 5).Note}
	back, err := ParseRequest(r.Marshal())
	if err != nil || back.OldSize != 2 || len(back.Proof) != len(proof) || string(back.Note) != string(r.Note) {
		t.Fatalf("%v %+v", err, back)
	}
	many := "old 1\n" + strings.Repeat("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n", 64) + "\nx\n"
	if _, err := ParseRequest([]byte(many)); !errors.Is(err, ErrRequest) {
		t.Errorf("64 proof lines: %v", err)
	}
}

func FuzzParseRequest(f *testing.F) {
	f.Add([]byte("old 0\n\nccos.test/log\n3\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n\n— x AAAA\n"))
	f.Add([]byte("old 12\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n\nx\n"))
	f.Fuzz(func(t *testing.T, body []byte) {
		r, err := ParseRequest(body)
		if err != nil {
			return
		}
		back, err := ParseRequest(r.Marshal())
		if err != nil || back.OldSize != r.OldSize || len(back.Proof) != len(r.Proof) || string(back.Note) != string(r.Note) {
			t.Fatalf("round trip: %v", err)
		}
	})
}

func FuzzParseBody(f *testing.F) {
	f.Add("o\n1\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n")
	f.Add("o\n1\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\next\n")
	f.Fuzz(func(t *testing.T, text string) {
		c, err := ParseBody(text)
		if err != nil {
			return
		}
		if !strings.HasPrefix(text, c.Body()) {
			t.Fatalf("body %q is not the start of %q", c.Body(), text)
		}
	})
}
