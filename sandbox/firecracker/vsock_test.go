package firecracker_test

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ccos-project/ccos/sandbox/firecracker"
)

// fakeVsock is the host end of a Firecracker vsock device: it reads the
// CONNECT line and answers with reply, then writes after.
func fakeVsock(t *testing.T, reply, after string) string {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "v.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			line, err := bufio.NewReader(c).ReadString('\n')
			if err != nil || line != "CONNECT 1024\n" {
				t.Errorf("peer read %q, %v; want \"CONNECT 1024\\n\"", line, err)
			}
			io.WriteString(c, reply+after)
			c.Close()
		}
	}()
	return sock
}

func TestHandshake(t *testing.T) {
	tests := []struct {
		name, reply string
		port        uint32
		wantErr     string
	}{
		{"ok", "OK 1073741824\n", 1073741824, ""},
		{"nobody listening", "", 0, "nothing listens on guest port 1024"},
		{"refused", "ERR no\n", 0, `got "ERR no\n"`},
		{"bad port", "OK x\n", 0, "port in"},
		{"port out of range", "OK 4294967296\n", 0, "port in"},
		{"endless line", "OK 111111111111111111111", 0, "too long"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			after := "guest-bytes"
			if tt.reply == "" {
				after = ""
			}
			sock := fakeVsock(t, tt.reply, after)
			conn, err := net.Dial("unix", sock)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			port, err := firecracker.Handshake(conn, 1024)
			if tt.wantErr != "" {
				if !errors.Is(err, firecracker.ErrHandshake) || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil || port != tt.port {
				t.Fatalf("Handshake = %d, %v", port, err)
			}
			// Nothing after the acknowledgement was consumed.
			rest, _ := io.ReadAll(conn)
			if string(rest) != "guest-bytes" {
				t.Fatalf("stream after the handshake = %q", rest)
			}
		})
	}
}

func TestDialVsockWaitsForTheSocket(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "v.sock")
	go func() {
		time.Sleep(50 * time.Millisecond)
		ln, err := net.Listen("unix", sock)
		if err != nil {
			t.Error(err)
			return
		}
		c, err := ln.Accept()
		if err != nil {
			t.Error(err)
			return
		}
		bufio.NewReader(c).ReadString('\n')
		io.WriteString(c, "OK 5\n")
		t.Cleanup(func() { c.Close(); ln.Close() })
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	conn, err := firecracker.DialVsock(ctx, sock, 1024)
	if err != nil {
		t.Fatal(err)
	}
	conn.Close()
}

func TestDialVsockGivesUp(t *testing.T) {
	sock := fakeVsock(t, "", "") // the guest never listens
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	_, err := firecracker.DialVsock(ctx, sock, 1024)
	if !errors.Is(err, context.DeadlineExceeded) || !errors.Is(err, firecracker.ErrHandshake) {
		t.Fatalf("err = %v, want the deadline and the last handshake error", err)
	}
}

// FuzzHandshake feeds arbitrary acknowledgements to the handshake parser:
// it must never panic, accept only "OK <uint32>\n", and never read past
// the first newline.
func FuzzHandshake(f *testing.F) {
	for _, s := range []string{"OK 1073741824\n", "OK 1\nrest", "ERR\n", "", "OK \n", "OK 99999999999\n"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, reply string) {
		rw := &scripted{in: strings.NewReader(reply)}
		port, err := firecracker.Handshake(rw, 1024)
		if rw.out.String() != "CONNECT 1024\n" {
			t.Fatalf("sent %q", rw.out.String())
		}
		if err != nil {
			return
		}
		line, _, _ := strings.Cut(reply, "\n")
		if line != "OK "+strconv.FormatUint(uint64(port), 10) && !strings.HasPrefix(line, "OK ") {
			t.Fatalf("accepted %q as port %d", line, port)
		}
		rest, _ := io.ReadAll(rw.in)
		if string(rest) != reply[len(line)+1:] {
			t.Fatalf("consumed past the acknowledgement: rest %q", rest)
		}
	})
}

// scripted is a connection whose peer's bytes are fixed.
type scripted struct {
	in  *strings.Reader
	out strings.Builder
}

func (s *scripted) Read(p []byte) (int, error)  { return s.in.Read(p) }
func (s *scripted) Write(p []byte) (int, error) { return s.out.Write(p) }
