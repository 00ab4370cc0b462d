package receipt

import (
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/ccos-project/ccos/chain"
	"golang.org/x/mod/sumdb/note"
)

// MismatchError is a receipt fact that does not hold: Field is its JSON
// path in the statement (e.g. "predicate.steps[0].outcome"), Receipt what
// the receipt says and Want what the check found.
type MismatchError struct {
	Field   string
	Receipt string
	Want    string
}

func (e *MismatchError) Error() string {
	return fmt.Sprintf("receipt: %s: the receipt says %s, %s", e.Field, e.Receipt, e.Want)
}

// ErrProof is wrapped when the receipt's inclusion proof does not verify.
var ErrProof = errors.New("receipt: the inclusion proof does not verify against the checkpoint")

// Open checks a receipt without the chain: the envelope's signature by
// verifier (the chain's key), the statement's shape, its subjects against
// its predicate, the checkpoint's signature by the same key, and the
// inclusion proof of the run's last event against the checkpoint's root.
// It returns the statement.
func Open(envelope []byte, verifier note.Verifier) (*Statement, error) {
	payload, err := OpenEnvelope(envelope, verifier)
	if err != nil {
		return nil, err
	}
	st, err := ParseStatement(payload)
	if err != nil {
		return nil, err
	}
	if err := st.checkSubjects(); err != nil {
		return nil, err
	}
	if _, err := st.checkProof(verifier); err != nil {
		return nil, err
	}
	return st, nil
}

func (st *Statement) checkSubjects() error {
	r := st.Predicate.Run
	want := []Subject{{Name: SubjectPlan, Digest: map[string]string{"sha256": strings.TrimPrefix(r.PlanHash, "sha256:")}}}
	if r.ValueSHA256 != "" {
		want = append(want, Subject{Name: SubjectValue, Digest: map[string]string{"sha256": r.ValueSHA256}})
	}
	return firstDiff("subject", toJSON(st.Subject), toJSON(want), "the predicate's run gives %s")
}

// checkProof opens the checkpoint with verifier and checks the inclusion
// proof; it returns the checkpoint.
func (st *Statement) checkProof(verifier note.Verifier) (*chain.Checkpoint, error) {
	c := st.Predicate.Chain
	cp, err := chain.OpenCheckpoint([]byte(c.Checkpoint), verifier)
	if err != nil {
		return nil, fmt.Errorf("receipt: predicate.chain.checkpoint: %w", err)
	}
	if c.Events < 1 || c.FirstSeq > c.LastSeq || uint64(c.Events) > c.LastSeq-c.FirstSeq+1 {
		return nil, &MismatchError{"predicate.chain.events", fmt.Sprint(c.Events),
			fmt.Sprintf("which cannot be the number of events from %d to %d", c.FirstSeq, c.LastSeq)}
	}
	leaf, err := hexHash(c.LastLeafHash)
	if err != nil {
		return nil, fmt.Errorf("%w: last_leaf_hash: %w", ErrProof, err)
	}
	proof := make([][]byte, len(c.InclusionProof))
	for i, h := range c.InclusionProof {
		if proof[i], err = hexHash(h); err != nil {
			return nil, fmt.Errorf("%w: inclusion_proof[%d]: %w", ErrProof, i, err)
		}
	}
	if err := chain.VerifyInclusion(c.LastSeq, cp.Size, leaf, proof, cp.Root); err != nil {
		return nil, fmt.Errorf("%w (event %d, tree size %d): %w", ErrProof, c.LastSeq, cp.Size, err)
	}
	return cp, nil
}

func hexHash(s string) ([]byte, error) {
	b, err := hex.DecodeString(s)
	if err != nil || len(b) != chain.HashSize || hex.EncodeToString(b) != s {
		return nil, fmt.Errorf("%q is not 64 lower-case hex digits", s)
	}
	return b, nil
}

// Verify checks a receipt against the chain it claims to come from: Open,
// then the chain itself (chain.Load with verifier: hashes, parents and
// every checkpoint), the receipt's checkpoint against the chain's tree, and
// the statement rebuilt from the chain's events of the run against the
// receipt's, field by field. The first difference is a *MismatchError
// naming the field.
func Verify(envelope []byte, verifier note.Verifier, store chain.Store) (*Statement, error) {
	st, err := Open(envelope, verifier)
	if err != nil {
		return nil, err
	}
	events, tree, _, err := chain.Load(store, verifier)
	if err != nil {
		return nil, fmt.Errorf("receipt: the chain does not verify: %w", err)
	}
	cp, err := st.checkProof(verifier)
	if err != nil {
		return nil, err
	}
	if err := chain.CheckCheckpoint(tree, cp); err != nil {
		return nil, fmt.Errorf("receipt: predicate.chain.checkpoint is not a checkpoint of this chain: %w", err)
	}
	run := chain.RunEvents(events, st.Predicate.Run.Session, cp.Size)
	if len(run) == 0 {
		return nil, &MismatchError{"predicate.run.session", quote(st.Predicate.Run.Session), "the chain has no event of that run"}
	}
	last := run[len(run)-1].Seq
	proof, err := tree.InclusionProof(last, cp.Size)
	if err != nil {
		return nil, err
	}
	want, err := Build(run, cp, proof)
	if err != nil {
		return nil, err
	}
	if err := firstDiff("", toJSON(st), toJSON(want), "the chain gives %s"); err != nil {
		return nil, err
	}
	return st, nil
}

func quote(s string) string { b, _ := json.Marshal(s); return string(b) }

// toJSON turns v into the generic JSON tree it marshals to.
func toJSON(v any) any {
	b, err := json.Marshal(v)
	if err != nil {
		panic("receipt: " + err.Error())
	}
	var out any
	if err := json.Unmarshal(b, &out); err != nil {
		panic("receipt: " + err.Error())
	}
	return out
}

// firstDiff walks two JSON trees in a fixed order and reports the first
// place where they differ as a *MismatchError (want formats the expected
// value's description).
func firstDiff(path string, got, want any, format string) error {
	at := func(p string) string {
		if path == "" {
			return p
		}
		return path + "." + p
	}
	switch w := want.(type) {
	case map[string]any:
		g, ok := got.(map[string]any)
		if !ok {
			break
		}
		keys := map[string]bool{}
		for k := range w {
			keys[k] = true
		}
		for k := range g {
			keys[k] = true
		}
		names := make([]string, 0, len(keys))
		for k := range keys {
			names = append(names, k)
		}
		sort.Strings(names)
		for _, k := range names {
			gv, gok := g[k]
			wv, wok := w[k]
			switch {
			case !gok:
				return &MismatchError{at(k), "nothing", fmt.Sprintf(format, short(wv))}
			case !wok:
				return &MismatchError{at(k), short(gv), fmt.Sprintf(format, "nothing")}
			}
			if err := firstDiff(at(k), gv, wv, format); err != nil {
				return err
			}
		}
		return nil
	case []any:
		g, ok := got.([]any)
		if !ok {
			break
		}
		for i := 0; i < len(w) && i < len(g); i++ {
			if err := firstDiff(fmt.Sprintf("%s[%d]", path, i), g[i], w[i], format); err != nil {
				return err
			}
		}
		if len(g) != len(w) {
			return &MismatchError{path, fmt.Sprintf("%d entries", len(g)), fmt.Sprintf(format, fmt.Sprintf("%d entries", len(w)))}
		}
		return nil
	}
	if full(got) == full(want) {
		return nil
	}
	return &MismatchError{path, short(got), fmt.Sprintf(format, short(want))}
}

func full(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

// short is a value's JSON text, cut to a readable length.
func short(v any) string {
	s := full(v)
	if len(s) > 200 {
		s = s[:200] + "..."
	}
	return s
}
