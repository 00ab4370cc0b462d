package chain

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/ccos-project/ccos/internal/atomicfile"
	"github.com/ccos-project/ccos/internal/input"
	"github.com/ccos-project/ccos/rtfs"
	"golang.org/x/mod/sumdb/note"
)

// Checkpoint is a signed statement of the tree: its origin, size and root,
// and the binding of the checkpoint event that records it.
type Checkpoint struct {
	Origin string
	Size   uint64
	Root   []byte
	// Event is EventBinding of the checkpoint event that carries this
	// checkpoint, so that the signature covers that event's own fields
	// (time, id, origin, parent...) as well as the tree before it. Zero
	// when the body has no binding line.
	Event Hash
	Note  []byte // the whole signed note (body and signature lines)
}

// eventLinePrefix starts the checkpoint body's extension line that binds
// the checkpoint event.
const eventLinePrefix = "ccos-event "

// The checkpoint errors.
var (
	ErrCheckpointFormat = errors.New("chain: malformed checkpoint body")
	ErrCheckpointOrigin = errors.New("chain: checkpoint origin is not the key name")
	ErrBadSignature     = errors.New("chain: checkpoint signature does not verify")
	ErrKeyFile          = errors.New("chain: malformed key file")
	ErrKeyName          = errors.New("chain: key name must be non-empty UTF-8 without spaces or '+'")
)

// Body returns the C2SP tlog-checkpoint body: origin, size and base64 root,
// one per line, then the extension line "ccos-event <base64 binding>" when
// the checkpoint binds its event.
func (c *Checkpoint) Body() string {
	body := c.Origin + "\n" + strconv.FormatUint(c.Size, 10) + "\n" + base64.StdEncoding.EncodeToString(c.Root) + "\n"
	if !c.Event.IsZero() {
		body += eventLinePrefix + base64.StdEncoding.EncodeToString(c.Event[:]) + "\n"
	}
	return body
}

// SignCheckpoint signs the checkpoint of a tree of the given size and root,
// binding the checkpoint event whose EventBinding is event (zero: none); the
// origin is the signer's name.
func SignCheckpoint(signer note.Signer, size uint64, root []byte, event Hash) (*Checkpoint, error) {
	c := &Checkpoint{Origin: signer.Name(), Size: size, Root: append([]byte(nil), root...), Event: event}
	msg, err := note.Sign(&note.Note{Text: c.Body()}, signer)
	if err != nil {
		return nil, fmt.Errorf("chain: signing checkpoint: %w", err)
	}
	c.Note = msg
	return c, nil
}

// OpenCheckpoint verifies a signed checkpoint note with verifier and parses
// its body strictly (ParseCheckpointBody). The origin must be the verifier's
// name.
func OpenCheckpoint(msg []byte, verifier note.Verifier) (*Checkpoint, error) {
	n, err := note.Open(msg, note.VerifierList(verifier))
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadSignature, err)
	}
	c, err := ParseCheckpointBody(n.Text)
	if err != nil {
		return nil, err
	}
	if c.Origin != verifier.Name() {
		return nil, fmt.Errorf("%w: %q, key %q", ErrCheckpointOrigin, c.Origin, verifier.Name())
	}
	c.Note = append([]byte(nil), msg...)
	return c, nil
}

// ParseCheckpointBody parses a checkpoint body without checking a
// signature, strictly: three lines (origin, decimal size without leading
// zeros, base64 of a 32-byte hash), and optionally the one extension line
// ccos writes, "ccos-event " and the base64 of a 32-byte event binding;
// any other extension line is rejected.
func ParseCheckpointBody(text string) (*Checkpoint, error) {
	lines := strings.Split(text, "\n")
	if len(lines) < 4 || len(lines) > 5 || lines[len(lines)-1] != "" {
		return nil, fmt.Errorf("%w: want 3 lines and an optional %q line", ErrCheckpointFormat, strings.TrimSpace(eventLinePrefix))
	}
	if lines[0] == "" {
		return nil, fmt.Errorf("%w: empty origin", ErrCheckpointFormat)
	}
	size, err := strconv.ParseUint(lines[1], 10, 64)
	if err != nil || strconv.FormatUint(size, 10) != lines[1] {
		return nil, fmt.Errorf("%w: bad size %q", ErrCheckpointFormat, lines[1])
	}
	root, err := base64.StdEncoding.Strict().DecodeString(lines[2])
	if err != nil || len(root) != HashSize {
		return nil, fmt.Errorf("%w: bad root hash", ErrCheckpointFormat)
	}
	c := &Checkpoint{Origin: lines[0], Size: size, Root: root}
	if len(lines) == 5 {
		b64, ok := strings.CutPrefix(lines[3], eventLinePrefix)
		ev, err := base64.StdEncoding.Strict().DecodeString(b64)
		if !ok || err != nil || len(ev) != HashSize {
			return nil, fmt.Errorf("%w: bad extension line %q", ErrCheckpointFormat, lines[3])
		}
		copy(c.Event[:], ev)
		if c.Event.IsZero() {
			return nil, fmt.Errorf("%w: zero event binding", ErrCheckpointFormat)
		}
	}
	return c, nil
}

// EventBinding returns what a checkpoint signs of the checkpoint event that
// carries it: SHA-256 of the event's canonical encoding with its payload
// (the signed note itself) replaced by nil. It covers every other field.
func EventBinding(e *Event) (Hash, error) {
	bare := *e
	bare.Payload = nil
	data, err := Encode(&bare)
	if err != nil {
		return Hash{}, err
	}
	return HashOf(data), nil
}

// GenerateKey returns a new Ed25519 note key pair named name: the signer
// string ("PRIVATE+KEY+name+hash+key") and the verifier string.
func GenerateKey(name string) (signer, verifier string, err error) {
	if name == "" || !utf8.ValidString(name) || strings.ContainsRune(name, '+') || strings.IndexFunc(name, unicode.IsSpace) >= 0 {
		return "", "", fmt.Errorf("%w: %q", ErrKeyName, name)
	}
	signer, verifier, err = note.GenerateKey(rand.Reader, name)
	if err != nil {
		return "", "", fmt.Errorf("chain: generating key %q: %w", name, err)
	}
	return signer, verifier, nil
}

// ParseSigner parses a signer key string (trailing white space allowed).
func ParseSigner(text string) (note.Signer, error) {
	s, err := note.NewSigner(strings.TrimRight(text, " \t\r\n"))
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrKeyFile, err)
	}
	return s, nil
}

// ParseVerifier parses a verifier key string (trailing white space
// allowed).
func ParseVerifier(text string) (note.Verifier, error) {
	v, err := note.NewVerifier(strings.TrimRight(text, " \t\r\n"))
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrKeyFile, err)
	}
	return v, nil
}

// ReadSignerFile reads a signer key file (a regular file of at most 1 MiB).
func ReadSignerFile(path string) (note.Signer, error) {
	b, err := input.ReadFile(path, input.MaxSmall)
	if err != nil {
		return nil, fmt.Errorf("chain: %w", err)
	}
	return ParseSigner(string(b))
}

// ReadVerifierFile reads a verifier key file (a regular file of at most 1
// MiB).
func ReadVerifierFile(path string) (note.Verifier, error) {
	b, err := input.ReadFile(path, input.MaxSmall)
	if err != nil {
		return nil, fmt.Errorf("chain: %w", err)
	}
	return ParseVerifier(string(b))
}

// VerifierOf returns the verifier string that belongs to a signer string.
func VerifierOf(signer string) (string, error) {
	return verifierFromSigner(strings.TrimRight(signer, " \t\r\n"))
}

// WriteKeyFile writes one key string to path with mode perm, atomically
// (atomicfile: a new temporary file, never a leftover or a planted link, so
// the key gets exactly perm).
func WriteKeyFile(path, key string, perm os.FileMode) error {
	if err := atomicfile.Write(path, append([]byte(key), '\n'), perm); err != nil {
		return fmt.Errorf("chain: %w", err)
	}
	return nil
}

// checkpointNote returns the signed note carried by a checkpoint event: its
// payload is an RTFS string.
func checkpointNote(e *Event) ([]byte, error) {
	s, ok := e.Payload.(rtfs.String)
	if !ok {
		return nil, fmt.Errorf("%w: checkpoint payload is not a string", ErrCheckpointFormat)
	}
	return []byte(s.V), nil
}

func verifierFromSigner(skey string) (string, error) {
	if _, err := note.NewSigner(skey); err != nil {
		return "", fmt.Errorf("%w: %w", ErrKeyFile, err)
	}
	// PRIVATE+KEY+<name>+<hash>+<base64(0x01 || seed)>; NewSigner accepted it.
	parts := strings.SplitN(skey, "+", 5)
	name, key := parts[2], parts[4]
	raw, err := base64.StdEncoding.DecodeString(key)
	if err != nil || len(raw) != 1+ed25519.SeedSize {
		return "", ErrKeyFile
	}
	pub := ed25519.NewKeyFromSeed(raw[1:]).Public().(ed25519.PublicKey)
	return note.NewEd25519VerifierKey(name, pub)
}
