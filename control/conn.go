package control

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sync"
)

// ErrProtocol is wrapped by every error that means the peer broke the
// protocol; such an error ends the session.
var ErrProtocol = errors.New("control protocol error")

// ErrFrameTooLarge is wrapped by the error for a frame over the limit.
var ErrFrameTooLarge = errors.New("frame too large")

// Side says which end of the connection this is; each side may send only
// its own message types.
type Side int

// The two ends of a control connection.
const (
	HostSide Side = iota
	GuestSide
)

func (s Side) String() string {
	if s == HostSide {
		return "host"
	}
	return "guest"
}

// Message is one decoded message.
type Message struct {
	// ID is the sender's message number.
	ID uint64
	// Re is the id of the request this message answers (0 if none).
	Re uint64
	// Type is the message type, one of the Type constants.
	Type string
	// Body is a pointer to the body struct of Type (e.g. *StepBegin).
	Body any
}

type envelope struct {
	ID   uint64          `json:"id"`
	Re   uint64          `json:"re,omitempty"`
	Type string          `json:"type"`
	Body json.RawMessage `json:"body"`
}

type kind struct {
	newBody func() any
	from    Side
	// request is set for messages that must be answered.
	request bool
	// reply is set for messages that answer a request.
	reply bool
}

var kinds = map[string]kind{
	TypeHello:     {func() any { return new(Hello) }, GuestSide, false, false},
	TypeWelcome:   {func() any { return new(Welcome) }, HostSide, false, false},
	TypeRun:       {func() any { return new(Run) }, HostSide, false, false},
	TypeStepBegin: {func() any { return new(StepBegin) }, GuestSide, true, false},
	TypeStepRetry: {func() any { return new(StepRetry) }, GuestSide, true, false},
	TypeStepEnd:   {func() any { return new(StepEnd) }, GuestSide, true, false},
	TypeCall:      {func() any { return new(Call) }, GuestSide, true, false},
	TypeOutput:    {func() any { return new(Output) }, GuestSide, false, false},
	TypeEvents:    {func() any { return new(Events) }, GuestSide, true, false},
	TypeDone:      {func() any { return new(Done) }, GuestSide, false, false},
	TypeOK:        {func() any { return new(OK) }, HostSide, false, true},
	TypeResult:    {func() any { return new(Result) }, HostSide, false, true},
	TypeError:     {func() any { return new(Error) }, HostSide, false, false},
}

// TypeOf returns the message type of a body value (e.g. TypeCall for
// *Call), or "" for a value that is no message body.
func TypeOf(body any) string {
	switch body.(type) {
	case *Hello:
		return TypeHello
	case *Welcome:
		return TypeWelcome
	case *Run:
		return TypeRun
	case *StepBegin:
		return TypeStepBegin
	case *StepRetry:
		return TypeStepRetry
	case *StepEnd:
		return TypeStepEnd
	case *Call:
		return TypeCall
	case *Output:
		return TypeOutput
	case *Events:
		return TypeEvents
	case *Done:
		return TypeDone
	case *OK:
		return TypeOK
	case *Result:
		return TypeResult
	case *Error:
		return TypeError
	}
	return ""
}

// Conn is one end of a control connection. Send and Recv may be used from
// different goroutines; each is serialised on its own.
type Conn struct {
	side     Side
	maxFrame int

	rmu     sync.Mutex
	r       *bufio.Reader
	lastIn  uint64
	pending map[uint64]bool // ids of our requests not yet answered

	wmu     sync.Mutex
	w       io.Writer
	lastOut uint64

	c io.Closer
}

// NewConn wraps rw as the given side of a control connection. maxFrame
// bounds incoming and outgoing frames (DefaultMaxFrame if 0).
func NewConn(rw io.ReadWriter, side Side, maxFrame int) *Conn {
	if maxFrame <= 0 {
		maxFrame = DefaultMaxFrame
	}
	c := &Conn{side: side, maxFrame: maxFrame, r: bufio.NewReader(rw), w: rw, pending: map[uint64]bool{}}
	if cl, ok := rw.(io.Closer); ok {
		c.c = cl
	}
	return c
}

// Close closes the underlying connection, if it can be closed.
func (c *Conn) Close() error {
	if c.c != nil {
		return c.c.Close()
	}
	return nil
}

// Send sends a message whose body is a pointer to one of the body structs;
// re is the id of the request it answers, or 0. It returns the id given to
// the message.
func (c *Conn) Send(body any, re uint64) (uint64, error) {
	typ := TypeOf(body)
	if typ == "" {
		return 0, fmt.Errorf("control: cannot send %T: not a message body", body)
	}
	k := kinds[typ]
	if k.from != c.side {
		return 0, fmt.Errorf("control: the %s may not send %s", c.side, typ)
	}
	raw, err := json.Marshal(body)
	if err != nil {
		return 0, fmt.Errorf("control: encoding %s: %w", typ, err)
	}
	c.wmu.Lock()
	defer c.wmu.Unlock()
	id := c.lastOut + 1
	payload, err := json.Marshal(envelope{ID: id, Re: re, Type: typ, Body: raw})
	if err != nil {
		return 0, fmt.Errorf("control: encoding envelope: %w", err)
	}
	if len(payload) > c.maxFrame {
		return 0, fmt.Errorf("control: %s message of %d bytes: %w (limit %d)", typ, len(payload), ErrFrameTooLarge, c.maxFrame)
	}
	if k.request {
		c.rmu.Lock()
		c.pending[id] = true
		c.rmu.Unlock()
	}
	if err := writeFrame(c.w, payload); err != nil {
		return 0, err
	}
	c.lastOut = id
	return id, nil
}

// Request sends a request and is meant to be followed by Recv of its reply.
// It is Send with re = 0.
func (c *Conn) Request(body any) (uint64, error) { return c.Send(body, 0) }

// Recv reads and strictly decodes the next message. Any error wrapping
// ErrProtocol means the peer broke the protocol and the session must end;
// io.EOF means the peer closed the connection between messages.
func (c *Conn) Recv() (*Message, error) {
	c.rmu.Lock()
	defer c.rmu.Unlock()
	payload, err := readFrame(c.r, c.maxFrame)
	if err != nil {
		return nil, err
	}
	m, err := decode(payload)
	if err != nil {
		return nil, err
	}
	k := kinds[m.Type]
	if k.from == c.side {
		return nil, protoErr("the %s sent %s, which only the %s may send", otherSide(c.side), m.Type, c.side)
	}
	if m.ID != c.lastIn+1 {
		return nil, protoErr("message id %d out of sequence (expected %d)", m.ID, c.lastIn+1)
	}
	if k.reply && m.Re == 0 {
		return nil, protoErr("%s without the id of the request it answers", m.Type)
	}
	if m.Re != 0 {
		if !c.pending[m.Re] {
			return nil, protoErr("%s answers request %d, which is not awaiting an answer", m.Type, m.Re)
		}
		delete(c.pending, m.Re)
	}
	c.lastIn = m.ID
	return m, nil
}

func otherSide(s Side) Side {
	if s == HostSide {
		return GuestSide
	}
	return HostSide
}

func protoErr(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrProtocol, fmt.Sprintf(format, args...))
}

// decode parses one payload strictly.
func decode(payload []byte) (*Message, error) {
	var env envelope
	if err := strictUnmarshal(payload, &env); err != nil {
		return nil, protoErr("bad envelope: %v", err)
	}
	if env.ID == 0 {
		return nil, protoErr("message without an id")
	}
	k, ok := kinds[env.Type]
	if !ok {
		return nil, protoErr("unknown message type %q", env.Type)
	}
	if len(env.Body) == 0 || bytes.Equal(env.Body, []byte("null")) {
		return nil, protoErr("%s without a body", env.Type)
	}
	body := k.newBody()
	if err := strictUnmarshal(env.Body, body); err != nil {
		return nil, protoErr("bad %s body: %v", env.Type, err)
	}
	if err := validate(env.Type, body); err != nil {
		return nil, protoErr("bad %s body: %v", env.Type, err)
	}
	return &Message{ID: env.ID, Re: env.Re, Type: env.Type, Body: body}, nil
}

// strictUnmarshal decodes one JSON object into v, refusing unknown fields,
// and anything after the object.
func strictUnmarshal(data []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if dec.More() {
		return errors.New("data after the JSON object")
	}
	if _, err := dec.Token(); err != io.EOF {
		return errors.New("data after the JSON object")
	}
	return nil
}

// validate checks the required fields of a body.
func validate(typ string, body any) error {
	switch b := body.(type) {
	case *Hello:
		if b.Protocol <= 0 {
			return errors.New("protocol version missing")
		}
		if len(b.Measurements) > 8 {
			return errors.New("more than 8 measurements")
		}
		for k, v := range b.Measurements {
			if k == "" || len(k) > 32 || len(v) > 80 {
				return errors.New("malformed measurement")
			}
		}
	case *Welcome:
		if b.Protocol <= 0 || b.Session == "" {
			return errors.New("protocol version or session missing")
		}
	case *Run:
		if b.Plan == "" {
			return errors.New("empty plan")
		}
	case *StepBegin:
		if b.Name == "" {
			return errors.New("step name missing")
		}
	case *StepEnd:
		if b.Name == "" {
			return errors.New("step name missing")
		}
	case *StepRetry:
		if b.Name == "" || b.Attempt <= 0 {
			return errors.New("step name or attempt missing")
		}
	case *Call:
		if b.Capability == "" {
			return errors.New("capability missing")
		}
		if (b.Key == "") != (b.Ordinal == 0) {
			return errors.New("an idempotency key needs its ordinal, and an ordinal its key")
		}
	case *Done:
		if (b.Value == nil) == (b.Error == nil) {
			return errors.New("done needs exactly one of value and error")
		}
	case *Error:
		if b.Message == "" {
			return errors.New("message missing")
		}
	case *Events:
		if len(b.Items) == 0 {
			return errors.New("no events")
		}
		if len(b.Items) > MaxEventItems {
			return fmt.Errorf("%d events, more than the %d of a batch", len(b.Items), MaxEventItems)
		}
		for i, it := range b.Items {
			if len(it.Payload) > MaxEventPayload {
				return fmt.Errorf("event %d: a payload of %d bytes, more than %d", i, len(it.Payload), MaxEventPayload)
			}
			if it.Seq == 0 || (i > 0 && it.Seq != b.Items[i-1].Seq+1) {
				return fmt.Errorf("event %d: sequence numbers must start at 1 and increase by one", i)
			}
			if it.Type == "" {
				return fmt.Errorf("event %d: type missing", i)
			}
		}
	}
	return nil
}

func writeFrame(w io.Writer, payload []byte) error {
	buf := make([]byte, 4+len(payload))
	binary.BigEndian.PutUint32(buf, uint32(len(payload)))
	copy(buf[4:], payload)
	if _, err := w.Write(buf); err != nil {
		return fmt.Errorf("control: writing frame: %w", err)
	}
	return nil
}

// readFrame reads one frame. A clean close before a frame is io.EOF; a
// close inside one, or a length out of bounds, is a protocol error.
func readFrame(r *bufio.Reader, max int) ([]byte, error) {
	var hdr [4]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		if err == io.EOF {
			return nil, io.EOF
		}
		return nil, protoErr("connection closed inside a frame header: %v", err)
	}
	n := binary.BigEndian.Uint32(hdr[:])
	if n < 2 {
		return nil, protoErr("frame of %d bytes is too short for a message", n)
	}
	if uint64(n) > uint64(max) {
		return nil, fmt.Errorf("%w: %w: %d bytes (limit %d)", ErrProtocol, ErrFrameTooLarge, n, max)
	}
	payload := make([]byte, n)
	if _, err := io.ReadFull(r, payload); err != nil {
		return nil, protoErr("connection closed inside a %d-byte frame: %v", n, err)
	}
	return payload, nil
}
