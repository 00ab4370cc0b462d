package witness

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/ccos-project/ccos/chain"
	"golang.org/x/mod/sumdb/note"
)

// Client asks one witness for cosignatures (add-checkpoint).
type Client struct {
	// URL is the witness's submission prefix (".../add-checkpoint" is
	// appended).
	URL  string
	HTTP *http.Client // http.DefaultClient if nil
}

// StatusError is a refusal from a witness other than a size conflict.
type StatusError struct {
	Code int
	Body string
}

func (e *StatusError) Error() string {
	return fmt.Sprintf("witness answered %d: %s", e.Code, strings.TrimSpace(e.Body))
}

// AddCheckpoint sends one request and returns the cosignature lines. A
// size conflict is a *ConflictError carrying the witness's size.
func (c *Client) AddCheckpoint(ctx context.Context, req *Request) ([]byte, error) {
	hc := c.HTTP
	if hc == nil {
		hc = http.DefaultClient
	}
	hr, err := http.NewRequestWithContext(ctx, http.MethodPost, strings.TrimSuffix(c.URL, "/")+"/add-checkpoint", bytes.NewReader(req.Marshal()))
	if err != nil {
		return nil, err
	}
	resp, err := hc.Do(hr)
	if err != nil {
		return nil, fmt.Errorf("witness %s: %w", c.URL, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, MaxBody))
	if err != nil {
		return nil, fmt.Errorf("witness %s: %w", c.URL, err)
	}
	switch {
	case resp.StatusCode == http.StatusConflict && resp.Header.Get("Content-Type") == "text/x.tlog.size":
		size, err := parseSize(body)
		if err != nil {
			return nil, err
		}
		return nil, &ConflictError{Size: size}
	case resp.StatusCode != http.StatusOK:
		return nil, &StatusError{resp.StatusCode, string(body)}
	}
	return body, nil
}

// Cosign asks a witness to cosign checkpoint cp of the chain whose tree is
// tree, starting from last, the size the caller believes the witness
// cosigned last. If the witness knows another size it cannot be older
// than a prefix of tree, and the request is sent again once from that
// size. It returns the witness's cosignature lines.
func Cosign(ctx context.Context, c *Client, tree *chain.Tree, cp *chain.Checkpoint, last uint64) ([]byte, error) {
	for try := 0; ; try++ {
		if last > cp.Size {
			return nil, fmt.Errorf("witness %s has cosigned size %d, larger than this checkpoint's %d", c.URL, last, cp.Size)
		}
		var proof [][]byte
		if last > 0 {
			var err error
			if proof, err = tree.ConsistencyProof(last, cp.Size); err != nil {
				return nil, err
			}
		}
		sigs, err := c.AddCheckpoint(ctx, &Request{OldSize: last, Proof: proof, Note: cp.Note})
		var ce *ConflictError
		if errors.As(err, &ce) && try == 0 {
			last = ce.Size
			continue
		}
		return sigs, err
	}
}

// ErrMissingCosignature is wrapped when a required witness did not cosign
// a checkpoint.
var ErrMissingCosignature = errors.New("no valid cosignature of witness")

// OpenCosigned opens a checkpoint note that carries the log's signature
// and witnesses' cosignatures: the log key must verify it (as
// chain.OpenCheckpoint) and every witness in witnesses must have a valid
// cosignature on it.
func OpenCosigned(msg []byte, logKey note.Verifier, witnesses []note.Verifier) (*chain.Checkpoint, error) {
	c, err := chain.OpenCheckpoint(msg, logKey)
	if err != nil {
		return nil, err
	}
	known := append([]note.Verifier{logKey}, witnesses...)
	n, err := note.Open(msg, note.VerifierList(known...))
	if err != nil {
		return nil, fmt.Errorf("witness: %w", err)
	}
	for _, w := range witnesses {
		found := false
		for _, s := range n.Sigs {
			if s.Name == w.Name() && s.Hash == w.KeyHash() {
				found = true
			}
		}
		if !found {
			return nil, fmt.Errorf("%w %s", ErrMissingCosignature, w.Name())
		}
	}
	return c, nil
}
