// Package control implements the protocol between the ccos host and the
// guest agent inside a sandbox.
//
// # Framing
//
// A connection carries frames in both directions. A frame is a 4-byte
// big-endian unsigned length N followed by N bytes of payload. N must be at
// least 2 and at most the connection's frame limit (DefaultMaxFrame unless
// set); a frame outside those bounds is a protocol error and ends the
// session, and so does a connection that closes inside a frame.
//
// # Messages
//
// The payload is one JSON object, the envelope:
//
//	{"id": 7, "re": 3, "type": "step.begin", "body": {...}}
//
// id is the sender's message number, starting at 1 and increasing by one per
// message in each direction. re, present only in replies, is the id of the
// request answered. type names the message, and body holds its fields. Every
// object is decoded strictly: an unknown field, a missing required field, a
// field of the wrong type, an unknown type, a reply to a request that was
// never sent or was already answered, a message the sender's side may not
// send, or bytes after the object are protocol errors that end the session.
//
// RTFS values travel as their canonical text (rtfs.Print) in string fields;
// the receiver reads them with bounded depth and size and checks them
// before use.
//
// # Session
//
//	guest → host   hello      {"protocol": 1, "measurements": {"rootfs": "sha256:..."}}   measurements optional: at most 8, names of 1 to 32 bytes, values of at most 80
//	host  → guest  welcome    {"protocol": 1, "session": "..."}
//	host  → guest  run        {"plan": "...", "file": "...", "plan_hash": "sha256:...", "steps": [...], "grants": [...], "unstepped": [...], "limits": {...}}
//	guest → host   step.begin {"name": "..."}           request; reply ok or error
//	guest → host   step.retry {"name": "...", "attempt": 1, "error": "..."} request; reply ok or error
//	guest → host   step.end   {"name": "...", "ok": true} request; reply ok or error
//	guest → host   call       {"capability": "...", "args": ["..."], "key": "...", "ordinal": 1} request; reply result or error
//	guest → host   output     {"seq": 1, "text": "..."}  captured println output
//	guest → host   events     {"items": [{"seq": 1, "type": "...", "step": "...", "payload": "..."}]} request; reply ok
//	                          (at most MaxEventItems items, each payload at most MaxEventPayload bytes)
//	guest → host   done       {"value": "..."} or {"error": {"type", "message", "where", "hint", "stack"}}
//	host  → guest  ok | result {"value": "..."} | error {"message": "..."}
//
// # Idempotency keys
//
// Inside a step, every capability call has an ordinal: 1 for the first
// call of the step's current attempt, counting every call, and starting
// again at 1 when the step is retried. Its idempotency key is CallKey of
// the plan hash, the step name and the ordinal, so the same call of a
// retried step (or of the same step run again in a new sandbox) has the
// same key, whatever the time or the attempt. A call the guest yields
// inside a step carries both; the host derives the key itself from what it
// admitted and the ordinal, and a key that does not match is a protocol
// error.
//
// # Grants
//
// The run message gives each admitted step a grant: the capabilities the
// host's decision lets the step call. The guest runs a capability itself
// only if it is in the grant of the step in progress (or, outside steps,
// in unstepped); a dynamic step (one that declared its effects) yields any
// other call to the host, which decides it and says why it refuses. The
// host checks the guest's events against the grants: a capability.call
// event naming a capability not granted to its step is a protocol error.
//
// No message asks the host to run a command, open a file or reach the
// network on the guest's behalf except through a capability call, which the
// host checks against what it admitted for the current step.
package control

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"strconv"

	"github.com/ccos-project/ccos/rtfs"
)

// ProtocolVersion is the version both sides state in hello and welcome.
const ProtocolVersion = 1

// DefaultMaxFrame is the largest frame accepted unless a connection sets
// another limit.
const DefaultMaxFrame = 4 << 20

// MaxEventPayload bounds the payload text of one event item. A value too
// large to record in full is recorded by its summary (Summary), by the
// guest in its events as by the host in its own.
const MaxEventPayload = 64 << 10

// MaxEventItems bounds the items of one events message; together with
// MaxEventPayload it keeps a batch within a frame.
const MaxEventItems = 256

// Message types.
const (
	TypeHello     = "hello"
	TypeWelcome   = "welcome"
	TypeRun       = "run"
	TypeStepBegin = "step.begin"
	TypeStepRetry = "step.retry"
	TypeStepEnd   = "step.end"
	TypeCall      = "call"
	TypeOutput    = "output"
	TypeEvents    = "events"
	TypeDone      = "done"
	TypeOK        = "ok"
	TypeResult    = "result"
	TypeError     = "error"
)

// Hello is the guest's first message.
type Hello struct {
	Protocol int `json:"protocol"`
	// Measurements are the guest's own measurements of what it booted
	// from, by name ("rootfs": "sha256:<hex>"). They are claims: the host
	// compares them with its own measurements and records both.
	Measurements map[string]string `json:"measurements,omitempty"`
}

// Welcome is the host's answer to Hello.
type Welcome struct {
	Protocol int    `json:"protocol"`
	Session  string `json:"session"`
}

// RunLimits are the evaluation limits the host asks the guest to apply on
// top of the sandbox's own.
type RunLimits struct {
	Steps          int64 `json:"steps"`
	Depth          int   `json:"depth"`
	CollectionSize int   `json:"collection_size"`
	OutputBytes    int   `json:"output_bytes"`
	TimeoutMillis  int64 `json:"timeout_ms"`
}

// Grant is what one admitted step may call: the capabilities the host's
// decision allows it. Dynamic says the step declared its effects: the
// guest yields a call outside Capabilities to the host (which refuses it
// with its reason) rather than refuse it itself.
type Grant struct {
	Step         string   `json:"step"`
	Capabilities []string `json:"capabilities"`
	Dynamic      bool     `json:"dynamic"`
}

// Run hands the guest the plan to evaluate, the steps it may enter and
// what each may call, and the pure capabilities it may call outside steps.
type Run struct {
	Plan string `json:"plan"`
	File string `json:"file"`
	// PlanHash is the admitted plan's hash, from which the guest derives
	// idempotency keys.
	PlanHash  string    `json:"plan_hash"`
	Steps     []string  `json:"steps"`
	Grants    []Grant   `json:"grants"`
	Unstepped []string  `json:"unstepped"`
	Limits    RunLimits `json:"limits"`
}

// StepBegin asks to enter a step.
type StepBegin struct {
	Name string `json:"name"`
}

// StepRetry says that the step in progress failed (Error) and that its
// body runs again, for the Attempt-th time after the first.
type StepRetry struct {
	Name    string `json:"name"`
	Attempt int    `json:"attempt"`
	Error   string `json:"error,omitempty"`
}

// StepEnd reports that a step has ended.
type StepEnd struct {
	Name  string `json:"name"`
	OK    bool   `json:"ok"`
	Error string `json:"error,omitempty"`
}

// Call asks the host to run a capability; Args are canonical RTFS texts.
// Inside a step, Key is the call's idempotency key and Ordinal its ordinal
// within the step's attempt (both absent outside steps).
type Call struct {
	Capability string   `json:"capability"`
	Args       []string `json:"args"`
	Key        string   `json:"key,omitempty"`
	Ordinal    uint64   `json:"ordinal,omitempty"`
}

// CallKey is the idempotency key of the ordinal-th call of a step's
// attempt in the plan with the given hash: "k1:" and the hex of the first
// 16 bytes of a SHA-256 over the three, each length-prefixed.
func CallKey(planHash, step string, ordinal uint64) string {
	h := sha256.New()
	for _, part := range []string{"ccos idempotency key", planHash, step, strconv.FormatUint(ordinal, 10)} {
		var n [8]byte
		binary.BigEndian.PutUint64(n[:], uint64(len(part)))
		h.Write(n[:])
		h.Write([]byte(part))
	}
	return "k1:" + hex.EncodeToString(h.Sum(nil)[:16])
}

// Output carries text the plan printed, in order.
type Output struct {
	Seq  uint64 `json:"seq"`
	Text string `json:"text"`
}

// EventItem is one event the guest records about itself (a claim).
type EventItem struct {
	Seq     uint64 `json:"seq"`
	Type    string `json:"type"`
	Step    string `json:"step,omitempty"`
	Payload string `json:"payload"`
}

// Events carries the guest's buffered events, in sequence order from the
// first one not yet acknowledged; the host's ok acknowledges all of them as
// durably recorded. A batch sent again after a broken channel may repeat
// events the host already has: the host drops those by sequence number.
// A batch holds at most MaxEventItems items, each with a payload of at
// most MaxEventPayload bytes; more events go in several batches.
type Events struct {
	Items []EventItem `json:"items"`
}

// ErrorInfo describes an RTFS error.
type ErrorInfo struct {
	Type    string `json:"type"`
	Message string `json:"message"`
	Where   string `json:"where,omitempty"`
	// Hint is how to fix it, when the interpreter knows (a misspelt
	// function name: the nearest defined names).
	Hint  string   `json:"hint,omitempty"`
	Stack []string `json:"stack,omitempty"`
}

// Done ends the run with the plan's value (canonical RTFS) or its error.
type Done struct {
	Value *string    `json:"value,omitempty"`
	Error *ErrorInfo `json:"error,omitempty"`
}

// OK accepts a request.
type OK struct{}

// Result answers a call with its value (canonical RTFS).
type Result struct {
	Value string `json:"value"`
}

// Error refuses a request, or reports why the host is ending the session.
type Error struct {
	Message string `json:"message"`
}

// Summary is what an event records of a value whose canonical text is
// too large to record in full: {:truncated true :bytes N :sha256 "hex"},
// the text's length and SHA-256.
func Summary(text string) rtfs.Value {
	sum := sha256.Sum256([]byte(text))
	return rtfs.MapOf(rtfs.Keyword{Name: "truncated"}, rtfs.Bool{V: true}, rtfs.Keyword{Name: "bytes"}, rtfs.Int{V: int64(len(text))},
		rtfs.Keyword{Name: "sha256"}, rtfs.String{V: hex.EncodeToString(sum[:])})
}
