// Package link makes a control channel survive the loss of its transport:
// a Conn is one reliable, ordered byte stream carried over a succession of
// transport connections (a Unix socket that QEMU reconnects, a vsock
// stream, a pipe), so the control protocol above it neither loses nor
// duplicates a byte when the transport breaks and comes back.
//
// Every byte written is numbered by its offset in the stream and kept until
// the peer acknowledges it. On the wire a Conn sends frames:
//
//	type   1 byte   'D' data, 'A' acknowledgement, 'R' resume, 'F' end of
//	                stream (offset: its length)
//	offset 8 bytes  big endian: stream offset of the first data byte
//	                (R: the offset the sender has received up to)
//	ack    8 bytes  big endian: the offset the sender has received up to
//	length 4 bytes  big endian: data length (0 for A and R), at most MaxFrame
//	data
//
// After a transport is attached, each side first sends R with what it has
// received; each then drops what the peer has and re-sends the rest, and
// ignores data it already has. Unacknowledged bytes are bounded by
// Window: a writer that gets that far ahead blocks until the peer
// acknowledges (back-pressure, never loss).
//
// A Conn does not know how to get a new transport: the owner calls Attach
// with each new one (the host when it accepts again, the guest when its
// port reopens). Read and Write block while no transport is attached.
package link

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"
)

// MaxFrame bounds the data of one frame.
const MaxFrame = 64 << 10

// Window is the default bound on unacknowledged bytes.
const Window = 4 << 20

const headerLen = 1 + 8 + 8 + 4

// Frame types.
const (
	frameData   = 'D'
	frameAck    = 'A'
	frameResume = 'R'
	frameFin    = 'F'
)

// ErrClosed is returned by a Conn after Close.
var ErrClosed = errors.New("link: closed")

// ErrProtocol is a frame that breaks the link rules (a bad type, an
// oversize frame, an acknowledgement of bytes never sent, data beyond what
// was received): the transport is dropped.
var ErrProtocol = errors.New("link: protocol error")

// Conn is one end of a link. Per attached transport it runs a reader
// goroutine (which only updates state, so it always drains the transport)
// and a sender goroutine (the only one that writes to it).
type Conn struct {
	window int

	mu   sync.Mutex
	cond *sync.Cond

	// Sending: unacked holds the bytes from sendBase (the peer's last
	// acknowledgement) to sendBase+len(unacked) (everything written).
	sendBase uint64
	unacked  []byte
	// sent is how far the current transport has been sent; hiSent how far
	// any transport has.
	sent, hiSent uint64

	// Receiving: recvd is the stream offset received so far; inbox holds
	// what Read has not taken yet; acked is the last acknowledgement sent.
	recvd uint64
	inbox []byte
	acked uint64

	t           io.ReadWriteCloser // current transport; nil when detached
	gen         int                // transport generation
	resumeDue   bool               // our resume frame is not sent yet
	peerResumed bool               // the peer's resume frame has arrived
	closed      bool
	lastError   error
	// fin: Close was called and the end of the stream is to be sent;
	// finSent: sent on the current transport. peerEOF: the peer's stream
	// ends at eofAt.
	fin, finSent bool
	finAcked     bool
	peerEOF      bool
	eofAt        uint64
	finAckDue    bool

	// Attaches counts the transports attached; Resent the bytes sent
	// again after a reattach; Dups the data bytes received twice and
	// dropped.
	Attaches int
	Resent   uint64
	Dups     uint64
}

// New returns a detached Conn with the given window (Window when <= 0).
func New(window int) *Conn {
	if window <= 0 {
		window = Window
	}
	c := &Conn{window: window}
	c.cond = sync.NewCond(&c.mu)
	return c
}

// Attach makes t the Conn's transport, replacing (and closing) the
// previous one. The first frame on it is the resume frame; data follows
// once the peer's resume says where to start. Attach returns at once.
func (c *Conn) Attach(t io.ReadWriteCloser) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		t.Close()
		return ErrClosed
	}
	if c.t != nil {
		c.t.Close()
	}
	c.gen++
	c.t = t
	c.Attaches++
	c.resumeDue, c.peerResumed, c.finSent = true, false, false
	c.sent = c.sendBase
	c.cond.Broadcast()
	go c.readLoop(c.gen, t)
	go c.sendLoop(c.gen, t)
	return nil
}

// DropTransport closes the current transport, as a broken connection
// would (for tests and for an owner that knows its transport is bad).
func (c *Conn) DropTransport() {
	c.mu.Lock()
	gen := c.gen
	c.mu.Unlock()
	c.drop(gen, errors.New("link: transport dropped"))
}

// Attached reports whether a transport is attached.
func (c *Conn) Attached() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t != nil
}

// WaitDetached blocks until the current transport fails (or the Conn is
// closed) and returns the transport's error.
func (c *Conn) WaitDetached() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	for c.t != nil && !c.closed {
		c.cond.Wait()
	}
	if c.closed {
		return ErrClosed
	}
	return c.lastError
}

// drop detaches transport generation gen after err.
func (c *Conn) drop(gen int, err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.gen != gen || c.t == nil {
		return
	}
	c.t.Close()
	c.t = nil
	c.lastError = err
	c.cond.Broadcast()
}

func writeFrame(w io.Writer, typ byte, off, ack uint64, data []byte) error {
	buf := make([]byte, headerLen, headerLen+len(data))
	buf[0] = typ
	binary.BigEndian.PutUint64(buf[1:9], off)
	binary.BigEndian.PutUint64(buf[9:17], ack)
	binary.BigEndian.PutUint32(buf[17:21], uint32(len(data)))
	_, err := w.Write(append(buf, data...))
	return err
}

// sendLoop is the only writer of one transport.
func (c *Conn) sendLoop(gen int, t io.ReadWriteCloser) {
	for {
		c.mu.Lock()
		for {
			if c.gen != gen || c.t == nil || c.closed {
				c.mu.Unlock()
				return
			}
			end := c.sendBase + uint64(len(c.unacked))
			ackDue := (c.recvd > c.acked && c.recvd-c.acked >= uint64(c.window/4)) || c.finAckDue
			finDue := c.fin && !c.finSent && c.peerResumed && c.sent >= end
			if c.resumeDue || (c.peerResumed && c.sent < end) || ackDue || finDue {
				break
			}
			c.cond.Wait()
		}
		var typ byte
		var off uint64
		var data []byte
		end := c.sendBase + uint64(len(c.unacked))
		switch {
		case c.resumeDue:
			typ, off, c.resumeDue = frameResume, c.recvd, false
		case c.peerResumed && c.sent < end:
			from := c.sent - c.sendBase
			n := min(uint64(len(c.unacked))-from, MaxFrame)
			typ, off, data = frameData, c.sent, append([]byte(nil), c.unacked[from:from+n]...)
			c.sent += n
			c.hiSent = max(c.hiSent, c.sent)
		case c.fin && !c.finSent && c.peerResumed:
			typ, off, c.finSent = frameFin, end, true
		default:
			typ, off = frameAck, c.recvd
			if c.finAckDue {
				// The acknowledgement of the end of the stream names the
				// offset just past it.
				off, c.finAckDue = c.eofAt+1, false
			}
		}
		ack := c.recvd
		c.acked = ack
		c.mu.Unlock()
		if err := writeFrame(t, typ, off, ack, data); err != nil {
			c.drop(gen, err)
			return
		}
	}
}

// readLoop reads the frames of one transport until it fails.
func (c *Conn) readLoop(gen int, t io.ReadWriteCloser) {
	r := bufio.NewReaderSize(t, 64<<10)
	var h [headerLen]byte
	for {
		if _, err := io.ReadFull(r, h[:]); err != nil {
			c.drop(gen, err)
			return
		}
		typ, off, ack, n := h[0], binary.BigEndian.Uint64(h[1:9]), binary.BigEndian.Uint64(h[9:17]), binary.BigEndian.Uint32(h[17:21])
		if n > MaxFrame || (typ != frameData && n != 0) {
			c.drop(gen, fmt.Errorf("%w: frame %q of %d bytes", ErrProtocol, typ, n))
			return
		}
		var data []byte
		if n > 0 {
			data = make([]byte, n)
			if _, err := io.ReadFull(r, data); err != nil {
				c.drop(gen, err)
				return
			}
		}
		if err := c.handle(gen, typ, off, ack, data); err != nil {
			c.drop(gen, err)
			return
		}
	}
}

// handle applies one frame; it never writes.
func (c *Conn) handle(gen int, typ byte, off, ack uint64, data []byte) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.gen != gen {
		return errors.New("link: transport replaced")
	}
	if err := c.ackLocked(ack); err != nil {
		return err
	}
	switch typ {
	case frameResume:
		// The peer has everything before off: send from there.
		if err := c.ackLocked(off); err != nil {
			return err
		}
		c.peerResumed = true
		c.sent = c.sendBase
		if c.hiSent > c.sendBase {
			c.Resent += c.hiSent - c.sendBase
		}
		c.cond.Broadcast()
		return nil
	case frameAck:
		if c.finSent && off == c.sendBase+uint64(len(c.unacked))+1 {
			c.finAcked = true
			c.cond.Broadcast()
		}
		return nil
	case frameFin:
		if off != c.recvd {
			return fmt.Errorf("%w: end of stream at offset %d, but %d received", ErrProtocol, off, c.recvd)
		}
		c.peerEOF, c.eofAt, c.finAckDue = true, off, true
		c.cond.Broadcast()
		return nil
	case frameData:
		if !c.peerResumed {
			return fmt.Errorf("%w: data before the resume frame", ErrProtocol)
		}
		if off > c.recvd {
			return fmt.Errorf("%w: data at offset %d, but only %d received", ErrProtocol, off, c.recvd)
		}
		skip := c.recvd - off
		if skip >= uint64(len(data)) {
			c.Dups += uint64(len(data))
			return nil
		}
		c.Dups += skip
		c.inbox = append(c.inbox, data[skip:]...)
		c.recvd += uint64(len(data)) - skip
		c.cond.Broadcast()
		return nil
	}
	return fmt.Errorf("%w: unknown frame type %q", ErrProtocol, typ)
}

// ackLocked drops what the peer has acknowledged.
func (c *Conn) ackLocked(ack uint64) error {
	end := c.sendBase + uint64(len(c.unacked))
	if ack > end {
		return fmt.Errorf("%w: acknowledgement of offset %d, but only %d sent", ErrProtocol, ack, end)
	}
	if ack > c.sendBase {
		c.unacked = c.unacked[ack-c.sendBase:]
		c.sendBase = ack
		if c.sent < c.sendBase {
			c.sent = c.sendBase
		}
		if len(c.unacked) == 0 {
			c.unacked = nil
		}
		c.cond.Broadcast()
	}
	return nil
}

// Write appends p to the stream and returns once it is buffered (the
// sender goroutine sends it). It blocks while the window is full of
// unacknowledged bytes.
func (c *Conn) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	written := 0
	for len(p) > 0 {
		for !c.closed && !c.fin && len(c.unacked) >= c.window {
			c.cond.Wait()
		}
		if c.closed || c.fin {
			return written, ErrClosed
		}
		n := min(len(p), c.window-len(c.unacked))
		c.unacked = append(c.unacked, p[:n]...)
		c.cond.Broadcast()
		p, written = p[n:], written+n
	}
	return written, nil
}

// Read reads from the stream, blocking while nothing has arrived.
func (c *Conn) Read(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for len(c.inbox) == 0 && !c.closed && !c.peerEOF {
		c.cond.Wait()
	}
	if len(c.inbox) == 0 {
		return 0, io.EOF
	}
	n := copy(p, c.inbox)
	c.inbox = c.inbox[n:]
	// Taking bytes out may owe the peer an acknowledgement sooner.
	c.cond.Broadcast()
	return n, nil
}

// Unacked returns how many written bytes the peer has not acknowledged.
func (c *Conn) Unacked() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.unacked)
}

// Close ends the stream: what was written is still delivered, then the
// peer reads EOF. Close waits (at most CloseWait) for the peer to
// acknowledge everything, across reattaches, then closes the transport;
// blocked calls return.
func (c *Conn) Close() error {
	c.mu.Lock()
	if c.closed || c.fin {
		c.mu.Unlock()
		return nil
	}
	c.fin = true
	c.cond.Broadcast()
	deadline := time.Now().Add(CloseWait)
	timer := time.AfterFunc(CloseWait, func() {
		c.mu.Lock()
		c.cond.Broadcast()
		c.mu.Unlock()
	})
	defer timer.Stop()
	// A peer that has ended its own stream and has all of ours has
	// nothing left to say; otherwise wait for its acknowledgement.
	for !c.finAcked && !(c.peerEOF && len(c.unacked) == 0) && time.Now().Before(deadline) {
		c.cond.Wait()
	}
	c.closed = true
	if c.t != nil {
		c.t.Close()
		c.t = nil
	}
	c.cond.Broadcast()
	c.mu.Unlock()
	return nil
}

// Abort ends the link at once, delivering nothing more.
func (c *Conn) Abort() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.closed, c.fin = true, true
	if c.t != nil {
		c.t.Close()
		c.t = nil
	}
	c.cond.Broadcast()
}

// CloseWait bounds how long Close waits for the peer to acknowledge the
// end of the stream.
var CloseWait = 5 * time.Second
