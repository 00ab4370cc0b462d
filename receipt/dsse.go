package receipt

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"

	"golang.org/x/mod/sumdb/note"
)

// PayloadType is the DSSE payload type of an in-toto statement.
const PayloadType = "application/vnd.in-toto+json"

// MaxEnvelope bounds the envelope OpenEnvelope accepts.
const MaxEnvelope = 16 << 20

// Envelope is a DSSE envelope (JSON encoding): a payload, its type, and
// signatures over PAE(payloadType, payload).
type Envelope struct {
	Payload     string      `json:"payload"`
	PayloadType string      `json:"payloadType"`
	Signatures  []Signature `json:"signatures"`
}

// Signature is one DSSE signature: the key id and base64 of the raw
// Ed25519 signature.
type Signature struct {
	KeyID string `json:"keyid"`
	Sig   string `json:"sig"`
}

// The envelope errors.
var (
	ErrEnvelope    = errors.New("receipt: malformed DSSE envelope")
	ErrPayloadType = errors.New("receipt: envelope payload type is not " + PayloadType)
	ErrSignature   = errors.New("receipt: no envelope signature verifies with the key")
)

// PAE is the DSSE pre-authentication encoding of a payload:
// "DSSEv1" SP LEN(type) SP type SP LEN(body) SP body, with each LEN the
// byte length in ASCII decimal. It is what the signatures sign.
func PAE(payloadType string, payload []byte) []byte {
	var b bytes.Buffer
	b.WriteString("DSSEv1 ")
	b.WriteString(strconv.Itoa(len(payloadType)))
	b.WriteByte(' ')
	b.WriteString(payloadType)
	b.WriteByte(' ')
	b.WriteString(strconv.Itoa(len(payload)))
	b.WriteByte(' ')
	b.Write(payload)
	return b.Bytes()
}

// KeyID is the key id receipts give a note key: its name, "+" and its
// 32-bit key hash in hexadecimal (the first two fields of the verifier
// key string).
func KeyID(name string, hash uint32) string { return fmt.Sprintf("%s+%08x", name, hash) }

// SignEnvelope signs payload as payloadType with an Ed25519 note signer
// (the chain's key) and returns the envelope's JSON.
func SignEnvelope(payloadType string, payload []byte, signer note.Signer) ([]byte, error) {
	sig, err := signer.Sign(PAE(payloadType, payload))
	if err != nil {
		return nil, fmt.Errorf("receipt: signing: %w", err)
	}
	env := Envelope{Payload: base64.StdEncoding.EncodeToString(payload), PayloadType: payloadType,
		Signatures: []Signature{{KeyID: KeyID(signer.Name(), signer.KeyHash()), Sig: base64.StdEncoding.EncodeToString(sig)}}}
	return json.MarshalIndent(env, "", "  ")
}

// ParseEnvelope decodes an envelope's JSON strictly (no unknown or
// missing fields, no trailing data, base64 that decodes) without checking
// signatures; it returns the envelope and its decoded payload.
func ParseEnvelope(data []byte) (*Envelope, []byte, error) {
	if len(data) > MaxEnvelope {
		return nil, nil, fmt.Errorf("%w: larger than %d bytes", ErrEnvelope, MaxEnvelope)
	}
	var env Envelope
	if err := decodeStrict(data, &env); err != nil {
		return nil, nil, fmt.Errorf("%w: %w", ErrEnvelope, err)
	}
	if env.PayloadType == "" {
		return nil, nil, fmt.Errorf("%w: no payloadType", ErrEnvelope)
	}
	payload, err := decodeBase64(env.Payload)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: payload: %w", ErrEnvelope, err)
	}
	if len(env.Signatures) == 0 {
		return nil, nil, fmt.Errorf("%w: no signatures", ErrEnvelope)
	}
	for i, s := range env.Signatures {
		if _, err := decodeBase64(s.Sig); err != nil {
			return nil, nil, fmt.Errorf("%w: signature %d: %w", ErrEnvelope, i+1, err)
		}
	}
	return &env, payload, nil
}

// OpenEnvelope parses an envelope, checks that its payload type is
// PayloadType and that at least one signature verifies with verifier over
// PAE(payloadType, payload), and returns the payload. Signatures by other
// keys are ignored.
func OpenEnvelope(data []byte, verifier note.Verifier) ([]byte, error) {
	env, payload, err := ParseEnvelope(data)
	if err != nil {
		return nil, err
	}
	if env.PayloadType != PayloadType {
		return nil, fmt.Errorf("%w: %q", ErrPayloadType, env.PayloadType)
	}
	msg := PAE(env.PayloadType, payload)
	for _, s := range env.Signatures {
		sig, _ := decodeBase64(s.Sig)
		if verifier.Verify(msg, sig) {
			return payload, nil
		}
	}
	return nil, fmt.Errorf("%w %s", ErrSignature, KeyID(verifier.Name(), verifier.KeyHash()))
}

// decodeBase64 accepts standard or URL-safe base64, padded or not, as the
// DSSE specification asks of readers.
func decodeBase64(s string) ([]byte, error) {
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.URLEncoding, base64.RawStdEncoding, base64.RawURLEncoding} {
		if b, err := enc.Strict().DecodeString(s); err == nil {
			return b, nil
		}
	}
	return nil, errors.New("not base64")
}

// decodeStrict decodes one JSON value into v: unknown fields, a second
// value or trailing bytes are errors.
func decodeStrict(data []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if _, err := dec.Token(); err != io.EOF {
		return errors.New("data after the JSON value")
	}
	return nil
}
