package witness

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/ccos-project/ccos/chain"
)

// Limits of an add-checkpoint request.
const (
	MaxProofLines = 63
	MaxBody       = 1 << 20
)

// ErrRequest is wrapped by every malformed add-checkpoint request.
var ErrRequest = errors.New("witness: malformed add-checkpoint request")

// Request is a parsed add-checkpoint request body.
type Request struct {
	OldSize uint64
	Proof   [][]byte
	// Note is the signed checkpoint note, as sent.
	Note []byte
}

// ParseRequest parses an add-checkpoint body strictly: "old N" (decimal,
// no leading zeros), at most MaxProofLines lines of base64 32-byte
// hashes, an empty line, then the signed checkpoint. Every line ends in a
// newline. Signatures are not checked here.
func ParseRequest(body []byte) (*Request, error) {
	if len(body) > MaxBody {
		return nil, fmt.Errorf("%w: larger than %d bytes", ErrRequest, MaxBody)
	}
	line, rest, ok := bytes.Cut(body, []byte("\n"))
	if !ok {
		return nil, fmt.Errorf("%w: no old size line", ErrRequest)
	}
	num, found := strings.CutPrefix(string(line), "old ")
	old, err := strconv.ParseUint(num, 10, 64)
	if !found || err != nil || strconv.FormatUint(old, 10) != num {
		return nil, fmt.Errorf("%w: first line %q is not \"old <size>\"", ErrRequest, line)
	}
	r := &Request{OldSize: old}
	for {
		line, next, ok := bytes.Cut(rest, []byte("\n"))
		if !ok {
			return nil, fmt.Errorf("%w: no empty line before the checkpoint", ErrRequest)
		}
		rest = next
		if len(line) == 0 {
			break
		}
		if len(r.Proof) == MaxProofLines {
			return nil, fmt.Errorf("%w: more than %d proof lines", ErrRequest, MaxProofLines)
		}
		h, err := base64.StdEncoding.Strict().DecodeString(string(line))
		if err != nil || len(h) != chain.HashSize {
			return nil, fmt.Errorf("%w: proof line %d is not the base64 of a %d-byte hash", ErrRequest, len(r.Proof)+1, chain.HashSize)
		}
		r.Proof = append(r.Proof, h)
	}
	if len(rest) == 0 || rest[len(rest)-1] != '\n' {
		return nil, fmt.Errorf("%w: the checkpoint is missing or does not end in a newline", ErrRequest)
	}
	r.Note = rest
	return r, nil
}

// Marshal encodes the request body.
func (r *Request) Marshal() []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "old %d\n", r.OldSize)
	for _, h := range r.Proof {
		b.WriteString(base64.StdEncoding.EncodeToString(h))
		b.WriteByte('\n')
	}
	b.WriteByte('\n')
	b.Write(r.Note)
	return b.Bytes()
}

// ParseBody parses a C2SP checkpoint body: origin, size and root hash,
// then optional non-empty extension lines, each line ending in a newline.
func ParseBody(text string) (*chain.Checkpoint, error) {
	parts := strings.SplitAfterN(text, "\n", 4)
	if len(parts) < 3 {
		return nil, fmt.Errorf("%w: want at least 3 lines", chain.ErrCheckpointFormat)
	}
	c, err := chain.ParseCheckpointBody(parts[0] + parts[1] + parts[2])
	if err != nil {
		return nil, err
	}
	if len(parts) == 4 && parts[3] != "" {
		ext := parts[3]
		if !strings.HasSuffix(ext, "\n") {
			return nil, fmt.Errorf("%w: extension lines must end in a newline", chain.ErrCheckpointFormat)
		}
		for _, l := range strings.Split(strings.TrimSuffix(ext, "\n"), "\n") {
			if l == "" {
				return nil, fmt.Errorf("%w: empty extension line", chain.ErrCheckpointFormat)
			}
		}
	}
	return c, nil
}
