package chain

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"time"
	"unicode/utf8"

	"github.com/ccos-project/ccos/rtfs"
)

// Type is the kind of an event; only the Type constants are valid.
type Type string

// The event types. The set is closed: decoding rejects any other type.
const (
	TypePlanAdmitted     Type = "plan.admitted"
	TypePlanRejected     Type = "plan.rejected"
	TypePlanFinished     Type = "plan.finished"
	TypeAttestation      Type = "attestation"
	TypeStepStarted      Type = "step.started"
	TypeStepFinished     Type = "step.finished"
	TypeCapabilityCall   Type = "capability.call"
	TypeCapabilityResult Type = "capability.result"
	TypeProxyDecision    Type = "proxy.decision"
	TypeGuestEvent       Type = "guest.event"
	TypeSandboxLifecycle Type = "sandbox.lifecycle"
	TypeCheckpoint       Type = "checkpoint"
)

var knownTypes = map[Type]bool{
	TypePlanAdmitted: true, TypePlanRejected: true, TypePlanFinished: true,
	TypeAttestation: true, TypeStepStarted: true, TypeStepFinished: true,
	TypeCapabilityCall: true, TypeCapabilityResult: true, TypeProxyDecision: true,
	TypeGuestEvent: true, TypeSandboxLifecycle: true, TypeCheckpoint: true,
}

// Valid reports whether t is one of the Type constants.
func (t Type) Valid() bool { return knownTypes[t] }

// Origin says who asserts an event: the host records facts it observed; an
// event with OriginGuest records what the guest claims, which the host does
// not vouch for.
type Origin uint8

// The origins.
const (
	OriginHost  Origin = 1
	OriginGuest Origin = 2
)

// String returns "host" or "guest".
func (o Origin) String() string {
	switch o {
	case OriginHost:
		return "host"
	case OriginGuest:
		return "guest"
	}
	return fmt.Sprintf("origin(%d)", uint8(o))
}

// HashSize is the size of an event hash (SHA-256).
const HashSize = sha256.Size

// Hash is the SHA-256 hash of an event's canonical encoding.
type Hash [HashSize]byte

// Limits of the encoding.
const (
	MaxTypeLen   = 64
	MaxIDLen     = 256
	MaxPayload   = 1 << 20
	MaxEventSize = 4 + 1 + 8 + 8 + 1 + HashSize + 7*4 + MaxTypeLen + 5*MaxIDLen + MaxPayload
)

const (
	eventMagic   = "CCEV"
	eventVersion = 1
	fixedLen     = 4 + 1 + 8 + 8 + 1 + HashSize
)

// Event is one entry of the causal chain.
type Event struct {
	Seq     uint64    // position in the chain, from 0 (set by the Recorder)
	Parent  Hash      // hash of the previous event; zero for Seq 0 (set by the Recorder)
	Time    time.Time // host time (set by the Recorder when zero); encoded as UTC nanoseconds
	Origin  Origin    // OriginHost, or OriginGuest for the guest's claims (host when zero in Recorder.Append)
	Type    Type
	ID      string // unique event id (the Recorder generates one when empty)
	Session string
	Plan    string
	Intent  string
	Step    string
	Payload rtfs.Value // encoded as rtfs.Print; nil is the RTFS nil
}

// The decoding errors. Decode wraps them in a *DecodeError.
var (
	ErrTruncated           = errors.New("input ends inside the event")
	ErrMagic               = errors.New("bad magic (not a ccos chain event)")
	ErrVersion             = errors.New("unsupported event version")
	ErrOrigin              = errors.New("unknown origin")
	ErrUnknownType         = errors.New("unknown event type")
	ErrFieldTooLong        = errors.New("field too long")
	ErrInvalidText         = errors.New("invalid UTF-8 or control character")
	ErrEmptyID             = errors.New("empty event id")
	ErrPayloadSyntax       = errors.New("payload is not one RTFS form")
	ErrPayloadNotCanonical = errors.New("payload is not in canonical RTFS form")
	ErrTrailingData        = errors.New("data after the payload")
	ErrEventTooLarge       = errors.New("event larger than MaxEventSize")
)

// DecodeError is a malformed event: Field names where decoding stopped and
// Err is one of the Err* sentinels.
type DecodeError struct {
	Field string
	Err   error
}

func (e *DecodeError) Error() string { return "chain: event " + e.Field + ": " + e.Err.Error() }
func (e *DecodeError) Unwrap() error { return e.Err }

// Encode returns the canonical encoding of e. It fails with a *DecodeError
// when e could not be decoded back (unknown type, bad origin, over-long or
// invalid field), so that nothing undecodable is ever written.
func Encode(e *Event) ([]byte, error) {
	payload := "nil"
	if e.Payload != nil {
		payload = rtfs.Print(e.Payload)
	}
	if err := checkFields(e, payload); err != nil {
		return nil, err
	}
	n := fixedLen + 7*4 + len(e.Type) + len(e.ID) + len(e.Session) + len(e.Plan) + len(e.Intent) + len(e.Step) + len(payload)
	b := make([]byte, 0, n)
	b = append(b, eventMagic...)
	b = append(b, eventVersion)
	b = binary.BigEndian.AppendUint64(b, e.Seq)
	b = binary.BigEndian.AppendUint64(b, uint64(e.Time.UnixNano()))
	b = append(b, byte(e.Origin))
	b = append(b, e.Parent[:]...)
	for _, s := range []string{string(e.Type), e.ID, e.Session, e.Plan, e.Intent, e.Step, payload} {
		b = binary.BigEndian.AppendUint32(b, uint32(len(s)))
		b = append(b, s...)
	}
	return b, nil
}

func checkFields(e *Event, payload string) error {
	if e.Origin != OriginHost && e.Origin != OriginGuest {
		return &DecodeError{"origin", ErrOrigin}
	}
	if err := checkName("type", string(e.Type), MaxTypeLen); err != nil {
		return err
	}
	if !e.Type.Valid() {
		return &DecodeError{"type", fmt.Errorf("%w %q", ErrUnknownType, e.Type)}
	}
	if e.ID == "" {
		return &DecodeError{"id", ErrEmptyID}
	}
	for _, f := range []struct{ name, v string }{{"id", e.ID}, {"session", e.Session}, {"plan", e.Plan}, {"intent", e.Intent}, {"step", e.Step}} {
		if err := checkName(f.name, f.v, MaxIDLen); err != nil {
			return err
		}
	}
	if len(payload) > MaxPayload {
		return &DecodeError{"payload", ErrFieldTooLong}
	}
	if !utf8.ValidString(payload) {
		return &DecodeError{"payload", ErrInvalidText}
	}
	return nil
}

func checkName(field, s string, max int) error {
	if len(s) > max {
		return &DecodeError{field, ErrFieldTooLong}
	}
	if !utf8.ValidString(s) {
		return &DecodeError{field, ErrInvalidText}
	}
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] == 0x7f {
			return &DecodeError{field, ErrInvalidText}
		}
	}
	return nil
}

// Decode parses a canonical encoding strictly (see the package comment).
// Encode(Decode(b)) == b for every b that decodes.
func Decode(b []byte) (*Event, error) {
	if len(b) > MaxEventSize {
		return nil, &DecodeError{"event", ErrEventTooLarge}
	}
	if len(b) < 4 {
		return nil, &DecodeError{"magic", ErrTruncated}
	}
	if string(b[:4]) != eventMagic {
		return nil, &DecodeError{"magic", ErrMagic}
	}
	if len(b) < fixedLen {
		return nil, &DecodeError{"header", ErrTruncated}
	}
	if b[4] != eventVersion {
		return nil, &DecodeError{"version", fmt.Errorf("%w %d", ErrVersion, b[4])}
	}
	e := &Event{
		Seq:    binary.BigEndian.Uint64(b[5:]),
		Time:   time.Unix(0, int64(binary.BigEndian.Uint64(b[13:]))).UTC(),
		Origin: Origin(b[21]),
	}
	if e.Origin != OriginHost && e.Origin != OriginGuest {
		return nil, &DecodeError{"origin", ErrOrigin}
	}
	copy(e.Parent[:], b[22:fixedLen])
	rest := b[fixedLen:]
	next := func(field string, max int) (string, error) {
		if len(rest) < 4 {
			return "", &DecodeError{field, ErrTruncated}
		}
		n := binary.BigEndian.Uint32(rest)
		if n > uint32(max) {
			return "", &DecodeError{field, ErrFieldTooLong}
		}
		if uint32(len(rest)-4) < n {
			return "", &DecodeError{field, ErrTruncated}
		}
		s := string(rest[4 : 4+n])
		rest = rest[4+n:]
		return s, nil
	}
	var err error
	var typ string
	if typ, err = next("type", MaxTypeLen); err != nil {
		return nil, err
	}
	if err := checkName("type", typ, MaxTypeLen); err != nil {
		return nil, err
	}
	e.Type = Type(typ)
	if !e.Type.Valid() {
		return nil, &DecodeError{"type", fmt.Errorf("%w %q", ErrUnknownType, typ)}
	}
	for _, f := range []struct {
		name string
		dst  *string
	}{{"id", &e.ID}, {"session", &e.Session}, {"plan", &e.Plan}, {"intent", &e.Intent}, {"step", &e.Step}} {
		if *f.dst, err = next(f.name, MaxIDLen); err != nil {
			return nil, err
		}
		if err := checkName(f.name, *f.dst, MaxIDLen); err != nil {
			return nil, err
		}
	}
	if e.ID == "" {
		return nil, &DecodeError{"id", ErrEmptyID}
	}
	payload, err := next("payload", MaxPayload)
	if err != nil {
		return nil, err
	}
	if len(rest) != 0 {
		return nil, &DecodeError{"payload", ErrTrailingData}
	}
	if e.Payload, err = parsePayload(payload); err != nil {
		return nil, err
	}
	return e, nil
}

func parsePayload(text string) (rtfs.Value, error) {
	if !utf8.ValidString(text) {
		return nil, &DecodeError{"payload", ErrInvalidText}
	}
	src, err := rtfs.Read([]byte(text), "payload", rtfs.ReadOptions{MaxErrors: 1})
	if err != nil || len(src.Forms) != 1 || len(src.Comments) != 0 {
		return nil, &DecodeError{"payload", ErrPayloadSyntax}
	}
	if rtfs.Print(src.Forms[0]) != text {
		return nil, &DecodeError{"payload", ErrPayloadNotCanonical}
	}
	return src.Forms[0], nil
}

// HashOf returns the event hash of a canonical encoding: SHA-256 of it.
func HashOf(encoded []byte) Hash { return sha256.Sum256(encoded) }

// String returns the hash in lower-case hexadecimal.
func (h Hash) String() string { return fmt.Sprintf("%x", h[:]) }

// IsZero reports whether h is all zero bytes (the parent of event 0).
func (h Hash) IsZero() bool { return h == Hash{} }

// newID returns a random UUID (version 4) as text.
func newID() string {
	var u [16]byte
	if _, err := rand.Read(u[:]); err != nil {
		panic("chain: crypto/rand failed: " + err.Error())
	}
	u[6] = u[6]&0x0f | 0x40
	u[8] = u[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", u[0:4], u[4:6], u[6:8], u[8:10], u[10:])
}
