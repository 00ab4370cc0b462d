package link

import (
	"bytes"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"io"
	mrand "math/rand/v2"
	"net"
	"sync"
	"testing"
	"time"
)

// pair attaches a fresh in-memory transport between a and b.
func pair(t *testing.T, a, b *Conn) (net.Conn, net.Conn) {
	t.Helper()
	x, y := net.Pipe()
	if err := a.Attach(x); err != nil {
		t.Fatal(err)
	}
	if err := b.Attach(y); err != nil {
		t.Fatal(err)
	}
	return x, y
}

func TestStreamBothWays(t *testing.T) {
	a, b := New(0), New(0)
	defer a.Abort()
	defer b.Abort()
	pair(t, a, b)
	go a.Write([]byte("hello from a"))
	buf := make([]byte, 12)
	if _, err := io.ReadFull(b, buf); err != nil || string(buf) != "hello from a" {
		t.Fatalf("%q %v", buf, err)
	}
	go b.Write([]byte("and back"))
	buf = make([]byte, 8)
	if _, err := io.ReadFull(a, buf); err != nil || string(buf) != "and back" {
		t.Fatalf("%q %v", buf, err)
	}
}

// cutter is a transport that breaks after a number of bytes written or
// read, in the middle of a frame if it falls there.
type cutter struct {
	net.Conn
	mu   sync.Mutex
	left int
}

func (c *cutter) take(n int) (int, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.left <= 0 {
		return 0, false
	}
	if n > c.left {
		n = c.left
	}
	c.left -= n
	return n, true
}

func (c *cutter) Write(p []byte) (int, error) {
	n, ok := c.take(len(p))
	if !ok {
		c.Conn.Close()
		return 0, errors.New("cut")
	}
	w, err := c.Conn.Write(p[:n])
	if err == nil && n < len(p) {
		c.Conn.Close()
		return w, errors.New("cut")
	}
	return w, err
}

// The transport breaks many times, mid-frame, in both directions, while
// both sides stream megabytes: each side receives the other's bytes
// exactly once and in order.
func TestReconnectLosesAndDuplicatesNothing(t *testing.T) {
	const size = 3 << 20
	a, b := New(256<<10), New(256<<10)
	defer a.Abort()
	defer b.Abort()
	srcA, srcB := make([]byte, size), make([]byte, size)
	rand.Read(srcA)
	rand.Read(srcB)
	var got [2][]byte
	var wg sync.WaitGroup
	for i, c := range []*Conn{a, b} {
		src := [][]byte{srcA, srcB}[i]
		wg.Add(2)
		go func() {
			defer wg.Done()
			for off := 0; off < len(src); {
				n := min(len(src)-off, 1+mrand.IntN(100<<10))
				if _, err := c.Write(src[off : off+n]); err != nil {
					t.Error(err)
					return
				}
				off += n
			}
		}()
		go func() {
			defer wg.Done()
			buf := make([]byte, size)
			if _, err := io.ReadFull(c, buf); err != nil {
				t.Error(err)
			}
			got[i] = buf
		}()
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	cuts := 0
	for {
		x, y := net.Pipe()
		ca := &cutter{Conn: x, left: 50<<10 + mrand.IntN(400<<10)}
		cb := &cutter{Conn: y, left: 50<<10 + mrand.IntN(400<<10)}
		a.Attach(ca)
		b.Attach(cb)
		ea, eb := make(chan error, 1), make(chan error, 1)
		go func() { ea <- a.WaitDetached() }()
		go func() { eb <- b.WaitDetached() }()
		select {
		case <-done:
			if !bytes.Equal(got[1], srcA) || !bytes.Equal(got[0], srcB) {
				t.Fatal("the streams differ from what was written")
			}
			if cuts < 3 {
				t.Fatalf("only %d cuts: the test did not exercise reconnection", cuts)
			}
			t.Logf("%d cuts; a resent %d, dropped %d duplicate bytes; b resent %d, dropped %d", cuts, a.Resent, a.Dups, b.Resent, b.Dups)
			return
		case <-ea:
			ea = nil
		case <-eb:
			eb = nil
		}
		cuts++
		x.Close()
		y.Close()
		if ea != nil {
			<-ea
		}
		if eb != nil {
			<-eb
		}
	}
}

// A writer that gets a window ahead of the peer's acknowledgements waits;
// nothing is dropped while no transport is attached.
func TestWindowBackPressureWhileDetached(t *testing.T) {
	a, b := New(1024), New(1024)
	defer a.Abort()
	defer b.Abort()
	wrote := make(chan error, 1)
	go func() {
		_, err := a.Write(make([]byte, 4096))
		wrote <- err
	}()
	for a.Unacked() < 1024 {
		select {
		case err := <-wrote:
			t.Fatalf("Write returned while detached with a full window: %v", err)
		default:
		}
	}
	pair(t, a, b)
	buf := make([]byte, 4096)
	if _, err := io.ReadFull(b, buf); err != nil {
		t.Fatal(err)
	}
	if err := <-wrote; err != nil {
		t.Fatal(err)
	}
}

func frame(typ byte, off, ack uint64, data []byte) []byte {
	var b bytes.Buffer
	writeFrame(&b, typ, off, ack, data)
	return b.Bytes()
}

// Frames that break the rules drop the transport (not the link): an
// acknowledgement of bytes never sent, data beyond what was received, data
// before the resume, an oversize or unknown frame.
func TestProtocolViolationsDropTheTransport(t *testing.T) {
	big := make([]byte, headerLen)
	big[0] = frameData
	binary.BigEndian.PutUint32(big[17:], MaxFrame+1)
	for name, in := range map[string][]byte{
		"ack beyond sent":    frame(frameResume, 0, 5, nil),
		"data beyond recvd":  append(frame(frameResume, 0, 0, nil), frame(frameData, 9, 0, []byte("x"))...),
		"data before resume": frame(frameData, 0, 0, []byte("x")),
		"oversize":           append(frame(frameResume, 0, 0, nil), big...),
		"unknown type":       frame('Z', 0, 0, nil),
	} {
		t.Run(name, func(t *testing.T) {
			c := New(0)
			defer c.Abort()
			x, y := net.Pipe()
			c.Attach(x)
			go io.Copy(io.Discard, y)
			go y.Write(in)
			err := c.WaitDetached()
			if !errors.Is(err, ErrProtocol) {
				t.Fatalf("err = %v", err)
			}
			y.Close()
		})
	}
}

func TestCloseUnblocks(t *testing.T) {
	defer func(d time.Duration) { CloseWait = d }(CloseWait)
	CloseWait = 10 * time.Millisecond
	c := New(16)
	errs := make(chan error, 2)
	go func() { _, err := c.Read(make([]byte, 1)); errs <- err }()
	go func() { _, err := c.Write(make([]byte, 64)); errs <- err }()
	c.Close()
	if err := <-errs; err == nil {
		t.Error("a blocked call returned no error")
	}
	if err := <-errs; err == nil {
		t.Error("a blocked call returned no error")
	}
	if err := c.Attach(nopConn{}); !errors.Is(err, ErrClosed) {
		t.Errorf("attach after close: %v", err)
	}
}

type nopConn struct{}

func (nopConn) Read([]byte) (int, error)    { return 0, io.EOF }
func (nopConn) Write(p []byte) (int, error) { return len(p), nil }
func (nopConn) Close() error                { return nil }

// Whatever a transport delivers, the link neither panics nor accepts
// bytes it should not.
func FuzzFrames(f *testing.F) {
	f.Add(frame(frameResume, 0, 0, nil))
	f.Add(append(frame(frameResume, 0, 0, nil), frame(frameData, 0, 0, []byte("hello"))...))
	f.Add(append(frame(frameResume, 0, 0, nil), append(frame(frameData, 0, 0, []byte("ab")), frame(frameData, 1, 0, []byte("bcd"))...)...))
	f.Add(frame(frameAck, 0, 1, nil))
	f.Fuzz(func(t *testing.T, in []byte) {
		c := New(64)
		defer c.Abort()
		x, y := net.Pipe()
		c.Attach(x)
		go io.Copy(io.Discard, y)
		y.Write(in)
		y.Close()
		c.WaitDetached()
		c.mu.Lock()
		defer c.mu.Unlock()
		if uint64(len(c.inbox)) != c.recvd {
			t.Fatalf("inbox %d bytes, recvd %d", len(c.inbox), c.recvd)
		}
	})
}

// Close delivers everything written, then the end of the stream: the
// peer reads it all, then EOF, even across a cut transport.
func TestCloseDeliversThenEOF(t *testing.T) {
	a, b := New(1024), New(1024)
	defer b.Abort()
	x, y := net.Pipe()
	a.Attach(&cutter{Conn: x, left: 3000})
	b.Attach(y)
	go func() {
		a.Write(bytes.Repeat([]byte("z"), 5000))
		a.Close()
	}()
	// Reattach after the cut.
	go func() {
		a.WaitDetached()
		b.WaitDetached()
		pair(t, a, b)
	}()
	got, err := io.ReadAll(b)
	if err != nil || len(got) != 5000 {
		t.Fatalf("read %d bytes, %v", len(got), err)
	}
}
