package control

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"strings"
	"testing"
)

// pair returns a connected host and guest.
func pair(t *testing.T) (*Conn, *Conn) {
	t.Helper()
	a, b := net.Pipe()
	t.Cleanup(func() { a.Close(); b.Close() })
	return NewConn(a, HostSide, 0), NewConn(b, GuestSide, 0)
}

func TestSession(t *testing.T) {
	host, guest := pair(t)
	errc := make(chan error, 1)
	go func() {
		if _, err := guest.Send(&Hello{Protocol: ProtocolVersion}, 0); err != nil {
			errc <- err
			return
		}
		m, err := guest.Recv()
		if err != nil || m.Type != TypeWelcome || m.Body.(*Welcome).Session != "s1" {
			errc <- errors.New("bad welcome")
			return
		}
		id, err := guest.Request(&Call{Capability: "ccos.echo", Args: []string{`"hi"`}})
		if err != nil {
			errc <- err
			return
		}
		m, err = guest.Recv()
		if err != nil || m.Type != TypeResult || m.Re != id || m.Body.(*Result).Value != `"hi"` {
			errc <- errors.New("bad result")
			return
		}
		v := "42"
		_, err = guest.Send(&Done{Value: &v}, 0)
		errc <- err
	}()
	m, err := host.Recv()
	if err != nil || m.Type != TypeHello || m.ID != 1 {
		t.Fatalf("hello: %+v %v", m, err)
	}
	if _, err := host.Send(&Welcome{Protocol: 1, Session: "s1"}, 0); err != nil {
		t.Fatal(err)
	}
	m, err = host.Recv()
	if err != nil || m.Type != TypeCall || m.ID != 2 {
		t.Fatalf("call: %+v %v", m, err)
	}
	if _, err := host.Send(&Result{Value: m.Body.(*Call).Args[0]}, m.ID); err != nil {
		t.Fatal(err)
	}
	m, err = host.Recv()
	if err != nil || m.Type != TypeDone || *m.Body.(*Done).Value != "42" {
		t.Fatalf("done: %+v %v", m, err)
	}
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
}

// frame builds the wire bytes of one frame holding payload.
func frame(payload string) []byte {
	b := make([]byte, 4+len(payload))
	binary.BigEndian.PutUint32(b, uint32(len(payload)))
	copy(b[4:], payload)
	return b
}

// recvFrom decodes wire bytes as the host would.
func recvFrom(wire []byte, max int) (*Message, error) {
	c := NewConn(struct {
		io.Reader
		io.Writer
	}{bytes.NewReader(wire), io.Discard}, HostSide, max)
	return c.Recv()
}

func TestStrictDecoding(t *testing.T) {
	long := strings.Repeat("x", 200)
	tests := []struct {
		name string
		wire []byte
		max  int
		want string
	}{
		{"unknown field in body", frame(`{"id":1,"type":"hello","body":{"protocol":1,"exec":"sh"}}`), 0, `unknown field "exec"`},
		{"unknown envelope field", frame(`{"id":1,"type":"hello","body":{"protocol":1},"cmd":1}`), 0, `unknown field "cmd"`},
		{"unknown type", frame(`{"id":1,"type":"exec","body":{}}`), 0, `unknown message type "exec"`},
		{"no body", frame(`{"id":1,"type":"hello"}`), 0, "hello without a body"},
		{"null body", frame(`{"id":1,"type":"hello","body":null}`), 0, "hello without a body"},
		{"trailing data", frame(`{"id":1,"type":"hello","body":{"protocol":1}} {}`), 0, "data after the JSON object"},
		{"not json", frame(`hello there`), 0, "bad envelope"},
		{"wrong field type", frame(`{"id":1,"type":"hello","body":{"protocol":"1"}}`), 0, "bad hello body"},
		{"missing required", frame(`{"id":1,"type":"hello","body":{}}`), 0, "protocol version missing"},
		{"no id", frame(`{"type":"hello","body":{"protocol":1}}`), 0, "message without an id"},
		{"out of sequence", frame(`{"id":5,"type":"hello","body":{"protocol":1}}`), 0, "message id 5 out of sequence"},
		{"host-only type from guest", frame(`{"id":1,"type":"run","body":{"plan":"1"}}`), 0, "the guest sent run, which only the host may send"},
		{"reply to nothing", frame(`{"id":1,"re":9,"type":"done","body":{"value":"1"}}`), 0, "answers request 9, which is not awaiting an answer"},
		{"done with both", frame(`{"id":1,"type":"done","body":{"value":"1","error":{"type":"E","message":"m"}}}`), 0, "exactly one of value and error"},
		{"oversize frame", frame(`{"id":1,"type":"output","body":{"seq":1,"text":"` + long + `"}}`), 100, "frame too large"},
		{"huge length header", []byte{0xff, 0xff, 0xff, 0xff, '{'}, 0, "frame too large"},
		{"short frame", frame(`{`), 0, "too short"},
		{"truncated frame", frame(`{"id":1,"type":"hello","body":{"protocol":1}}`)[:20], 0, "closed inside a"},
		{"truncated header", []byte{0, 0}, 0, "closed inside a frame header"},
		{"key without ordinal", frame(`{"id":1,"type":"call","body":{"capability":"c","args":[],"key":"k1:00"}}`), 0, "an idempotency key needs its ordinal"},
		{"ordinal without key", frame(`{"id":1,"type":"call","body":{"capability":"c","args":[],"ordinal":2}}`), 0, "an ordinal its key"},
		{"unknown call field", frame(`{"id":1,"type":"call","body":{"capability":"c","args":[],"attempt":2}}`), 0, `unknown field "attempt"`},
		{"retry without attempt", frame(`{"id":1,"type":"step.retry","body":{"name":"s"}}`), 0, "step name or attempt missing"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := recvFrom(tc.wire, tc.max)
			if err == nil || !errors.Is(err, ErrProtocol) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("got %v, want a protocol error containing %q", err, tc.want)
			}
		})
	}
}

func TestCleanEOF(t *testing.T) {
	if _, err := recvFrom(nil, 0); err != io.EOF {
		t.Errorf("empty stream: %v, want io.EOF", err)
	}
}

func TestSendChecks(t *testing.T) {
	var buf bytes.Buffer
	guest := NewConn(&buf, GuestSide, 64)
	if _, err := guest.Send(&Run{Plan: "1"}, 0); err == nil || !strings.Contains(err.Error(), "the guest may not send run") {
		t.Errorf("guest sending run: %v", err)
	}
	if _, err := guest.Send("text", 0); err == nil {
		t.Error("sending a non-message succeeded")
	}
	if _, err := guest.Send(&Output{Seq: 1, Text: strings.Repeat("x", 100)}, 0); !errors.Is(err, ErrFrameTooLarge) {
		t.Errorf("oversize send: %v", err)
	}
	if buf.Len() != 0 {
		t.Errorf("refused sends wrote %d bytes", buf.Len())
	}
}

// A reply is accepted once: a second answer to the same request is refused.
func TestReplyOnce(t *testing.T) {
	var wire bytes.Buffer
	guest := NewConn(struct {
		io.Reader
		io.Writer
	}{strings.NewReader(""), &wire}, GuestSide, 0)
	id, err := guest.Request(&StepBegin{Name: "s"})
	if err != nil {
		t.Fatal(err)
	}
	var in bytes.Buffer
	host := NewConn(&in, HostSide, 0)
	host.Send(&OK{}, id)
	host.Send(&OK{}, id)
	g := NewConn(struct {
		io.Reader
		io.Writer
	}{bufio.NewReader(&in), io.Discard}, GuestSide, 0)
	g.pending[id] = true
	if _, err := g.Recv(); err != nil {
		t.Fatalf("first reply: %v", err)
	}
	if _, err := g.Recv(); err == nil || !strings.Contains(err.Error(), "not awaiting an answer") {
		t.Errorf("second reply: %v", err)
	}
}

// FuzzDecode feeds arbitrary bytes to a host-side connection: it must
// return messages or errors, never panic, and every accepted message must
// re-encode.
func FuzzDecode(f *testing.F) {
	for _, s := range []string{
		`{"id":1,"type":"hello","body":{"protocol":1}}`,
		`{"id":1,"type":"call","body":{"capability":"ccos.echo","args":["1"]}}`,
		`{"id":1,"type":"step.begin","body":{"name":"a"}}`,
		`{"id":1,"type":"done","body":{"error":{"type":"E","message":"m","stack":["a"]}}}`,
		`{"id":1,"type":"output","body":{"seq":1,"text":"x"}}`,
		`{"id":1,"type":"call","body":{"capability":"ccos.io.write-file","args":["\"f\"","\"x\""],"key":"k1:00112233445566778899aabbccddeeff","ordinal":1}}`,
		`{"id":1,"type":"step.retry","body":{"name":"a","attempt":1,"error":"transient"}}`,
	} {
		f.Add(frame(s))
		f.Add(append(frame(s), frame(strings.Replace(s, `"id":1`, `"id":2`, 1))...))
	}
	f.Fuzz(func(t *testing.T, wire []byte) {
		c := NewConn(struct {
			io.Reader
			io.Writer
		}{bytes.NewReader(wire), io.Discard}, HostSide, 1<<16)
		for i := 0; i < 16; i++ {
			m, err := c.Recv()
			if err != nil {
				if err != io.EOF && !errors.Is(err, ErrProtocol) {
					t.Fatalf("error that is neither EOF nor a protocol error: %v", err)
				}
				return
			}
			if TypeOf(m.Body) != m.Type {
				t.Fatalf("body %T for type %s", m.Body, m.Type)
			}
		}
	})
}

// Idempotency keys depend on the plan, the step and the ordinal only, and
// each of them changes the key.
func TestCallKey(t *testing.T) {
	k := CallKey("sha256:ab", "s", 1)
	if k != CallKey("sha256:ab", "s", 1) || !strings.HasPrefix(k, "k1:") || len(k) != 3+32 {
		t.Fatalf("key %q", k)
	}
	seen := map[string]bool{k: true}
	for _, other := range []string{CallKey("sha256:ac", "s", 1), CallKey("sha256:ab", "t", 1), CallKey("sha256:ab", "s", 2),
		// Length-prefixed parts: moving a boundary changes the key.
		CallKey("sha256:a", "bs", 1), CallKey("sha256:ab", "s1", 0)} {
		if seen[other] {
			t.Errorf("key collision: %s", other)
		}
		seen[other] = true
	}
}
