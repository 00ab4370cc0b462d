package firecracker

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"time"
)

// ErrHandshake is wrapped by every failed vsock handshake.
var ErrHandshake = errors.New("vsock handshake failed")

// maxAckLine bounds the "OK <port>\n" line: "OK " and a 32-bit port.
const maxAckLine = len("OK 4294967295\n")

// Handshake performs the host side of Firecracker's host-initiated vsock
// connection on conn, a connection to the vsock device's uds_path: it sends
// "CONNECT <port>\n" and reads "OK <host port>\n", returning the host-side
// port Firecracker assigned. It reads byte by byte, so that nothing the
// guest sends after the acknowledgement is consumed.
func Handshake(conn io.ReadWriter, port uint32) (uint32, error) {
	if _, err := fmt.Fprintf(conn, "CONNECT %d\n", port); err != nil {
		return 0, fmt.Errorf("%w: sending CONNECT %d: %w", ErrHandshake, port, err)
	}
	var line []byte
	b := make([]byte, 1)
	for {
		n, err := conn.Read(b)
		if n == 1 {
			line = append(line, b[0])
			if b[0] == '\n' {
				break
			}
			if len(line) >= maxAckLine {
				return 0, fmt.Errorf("%w: acknowledgement %q is too long", ErrHandshake, line)
			}
		}
		if errors.Is(err, io.EOF) {
			return 0, fmt.Errorf("%w: connection closed after CONNECT %d (read %q): nothing listens on guest port %d yet", ErrHandshake, port, line, port)
		}
		if err != nil {
			return 0, fmt.Errorf("%w: reading the acknowledgement: %w", ErrHandshake, err)
		}
	}
	rest, ok := strings.CutPrefix(strings.TrimSuffix(string(line), "\n"), "OK ")
	if !ok {
		return 0, fmt.Errorf("%w: got %q, want \"OK <port>\\n\"", ErrHandshake, line)
	}
	hostPort, err := strconv.ParseUint(rest, 10, 32)
	if err != nil {
		return 0, fmt.Errorf("%w: port in %q: %w", ErrHandshake, line, err)
	}
	return uint32(hostPort), nil
}

// DialVsock connects to guest port through the vsock device's Unix socket
// at udsPath, retrying (the socket appears when the VM starts, and the
// guest listens only once it has booted) until ctx ends.
func DialVsock(ctx context.Context, udsPath string, port uint32) (net.Conn, error) {
	delay := 10 * time.Millisecond
	for {
		conn, err := dialOnce(ctx, udsPath, port)
		if err == nil {
			return conn, nil
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("vsock %s port %d: %w (last error: %w)", udsPath, port, ctx.Err(), err)
		case <-time.After(delay):
		}
		if delay < 200*time.Millisecond {
			delay *= 2
		}
	}
}

func dialOnce(ctx context.Context, udsPath string, port uint32) (net.Conn, error) {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "unix", udsPath)
	if err != nil {
		return nil, err
	}
	if dl, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(dl)
	}
	if _, err := Handshake(conn, port); err != nil {
		conn.Close()
		return nil, err
	}
	_ = conn.SetDeadline(time.Time{})
	return conn, nil
}
