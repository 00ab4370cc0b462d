package control

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"
)

func sampleWake() *Wake {
	w := &Wake{Hostname: "ccos-3f2a"}
	for i := range w.Entropy {
		w.Entropy[i] = byte(i)
	}
	for i := range w.MachineID {
		w.MachineID[i] = byte(0xa0 + i)
	}
	return w
}

func TestWakeRoundTrip(t *testing.T) {
	w := sampleWake()
	var buf bytes.Buffer
	if err := WriteWake(&buf, w); err != nil {
		t.Fatal(err)
	}
	if buf.Len() != wakeFixed+len(w.Hostname) || buf.Bytes()[0] != 'W' || buf.Bytes()[1] != WakeVersion {
		t.Fatalf("encoding % x", buf.Bytes())
	}
	got, err := UnmarshalWake(buf.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	if *got != *w {
		t.Fatalf("got %+v, want %+v", got, w)
	}
}

// A guest whose host is not connected yet reads nothing (EOF) for a while:
// ReadWake waits through that and reads the message in pieces.
func TestReadWakeWaitsForTheHost(t *testing.T) {
	msg, _ := sampleWake().MarshalBinary()
	reads, idles := 0, 0
	read := func(p []byte) (int, error) {
		reads++
		if reads <= 3 || len(msg) == 0 {
			return 0, io.EOF
		}
		n := copy(p[:min(len(p), 7)], msg)
		msg = msg[n:]
		return n, nil
	}
	w, err := ReadWake(read, func() { idles++ })
	if err != nil {
		t.Fatal(err)
	}
	if w.Hostname != "ccos-3f2a" || idles != 3 {
		t.Fatalf("hostname %q, idled %d times", w.Hostname, idles)
	}
	broken := errors.New("port closed")
	if _, err := ReadWake(func([]byte) (int, error) { return 0, broken }, func() {}); !errors.Is(err, broken) {
		t.Fatalf("read error: %v", err)
	}
}

func TestWakeRefusesMalformed(t *testing.T) {
	good, _ := sampleWake().MarshalBinary()
	mod := func(f func(b []byte) []byte) []byte { return f(append([]byte(nil), good...)) }
	for _, c := range []struct {
		name string
		in   []byte
		want string
	}{
		{"empty", nil, "ends after 0"},
		{"old go byte", mod(func(b []byte) []byte { b[0] = 'G'; return b }), "not a wake message"},
		{"version", mod(func(b []byte) []byte { b[1] = 2; return b }), "wake version 2"},
		{"short", good[:20], "ends after 20"},
		{"no hostname", mod(func(b []byte) []byte { b[wakeFixed-1] = 0; return b[:wakeFixed] }), "hostname length 0"},
		{"hostname too long", mod(func(b []byte) []byte { b[wakeFixed-1] = 64; return b }), "hostname length 64"},
		{"hostname cut", good[:len(good)-2], "ends after"},
		{"upper case", mod(func(b []byte) []byte { b[wakeFixed] = 'C'; return b }), "not a lower-case letter"},
		{"leading hyphen", mod(func(b []byte) []byte { b[wakeFixed] = '-'; return b }), "inner hyphen"},
		{"slash", mod(func(b []byte) []byte { b[wakeFixed+2] = '/'; return b }), "not a lower-case"},
		{"trailing bytes", append(append([]byte(nil), good...), 'x'), "1 bytes after"},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := UnmarshalWake(c.in)
			var we *WakeError
			if !errors.As(err, &we) || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("err = %v, want a WakeError with %q", err, c.want)
			}
		})
	}
	if _, err := (&Wake{Hostname: "Bad"}).MarshalBinary(); err == nil {
		t.Error("a bad hostname was encoded")
	}
}

func FuzzUnmarshalWake(f *testing.F) {
	good, _ := sampleWake().MarshalBinary()
	f.Add(good)
	f.Add(good[:10])
	f.Add([]byte{'W', 1})
	f.Fuzz(func(t *testing.T, b []byte) {
		w, err := UnmarshalWake(b)
		if err != nil {
			return
		}
		again, err := w.MarshalBinary()
		if err != nil || !bytes.Equal(again, b) {
			t.Fatalf("decoded %+v does not encode back to the input: %v", w, err)
		}
	})
}
