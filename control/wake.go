package control

// # Wake-up of a snapshot clone
//
// A microVM that is a snapshot template, or a clone restored from one,
// speaks a short exchange on the raw control channel before the session
// above (and the link that carries it) starts:
//
//	guest → host   ready  'S'
//	host  → guest  wake   'W' version=1 entropy[32] machine-id[16] n hostname[n]
//
// The template guest, booted and warmed up, writes ready and waits; the host
// then saves the VM. A clone restored from it resumes in that wait and reads
// wake: fixed 51 bytes and the hostname, n (1 to 63) bytes of lower-case
// letters, digits and inner hyphens (one DNS label). The guest mixes the
// entropy into its kernel's pool and reseeds the generator before anything
// else runs, and takes the machine id and hostname as its own, so that no
// two clones share random numbers or an identity. Anything else (another
// first byte, another version, a bad hostname, a short message) is a
// WakeError and the guest powers off.

import (
	"bytes"
	"errors"
	"fmt"
	"io"
)

// Wake-up bytes and sizes.
const (
	// WakeReady is the template guest's byte: it is warmed up and waits.
	WakeReady = 'S'
	// wakeTag starts the host's wake message.
	wakeTag = 'W'
	// WakeVersion is the version of the wake message.
	WakeVersion = 1
	// WakeEntropy is the number of random bytes a wake carries.
	WakeEntropy = 32
	// maxHostname is the longest hostname a wake carries (one DNS label).
	maxHostname = 63
	// wakeFixed is the length of the wake message before the hostname.
	wakeFixed = 2 + WakeEntropy + 16 + 1
)

// Wake is the host's wake-up of a restored clone.
type Wake struct {
	// Entropy seeds the clone's kernel generator.
	Entropy [WakeEntropy]byte
	// MachineID is the clone's /etc/machine-id (as 32 hex digits there).
	MachineID [16]byte
	// Hostname is the clone's hostname: one DNS label.
	Hostname string
}

// WakeError is a malformed wake-up exchange.
type WakeError struct {
	// Problem says what was wrong.
	Problem string
}

func (e *WakeError) Error() string { return "snapshot wake-up: " + e.Problem }

// CheckHostname reports whether h can be a clone's hostname: 1 to 63
// lower-case letters, digits and hyphens, not starting or ending with a
// hyphen.
func CheckHostname(h string) error {
	if len(h) == 0 || len(h) > maxHostname {
		return &WakeError{Problem: fmt.Sprintf("hostname of %d bytes (want 1 to %d)", len(h), maxHostname)}
	}
	for i := 0; i < len(h); i++ {
		c := h[i]
		ok := c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' && i > 0 && i < len(h)-1
		if !ok {
			return &WakeError{Problem: fmt.Sprintf("hostname %q: byte %d (%q) is not a lower-case letter, digit or inner hyphen", h, i, c)}
		}
	}
	return nil
}

// MarshalBinary encodes w as the wake message.
func (w *Wake) MarshalBinary() ([]byte, error) {
	if err := CheckHostname(w.Hostname); err != nil {
		return nil, err
	}
	b := make([]byte, 0, wakeFixed+len(w.Hostname))
	b = append(b, wakeTag, WakeVersion)
	b = append(b, w.Entropy[:]...)
	b = append(b, w.MachineID[:]...)
	b = append(b, byte(len(w.Hostname)))
	return append(b, w.Hostname...), nil
}

// WriteWake writes w to the guest in one write.
func WriteWake(c io.Writer, w *Wake) error {
	b, err := w.MarshalBinary()
	if err != nil {
		return err
	}
	_, err = c.Write(b)
	return err
}

// ReadWake reads a wake message. read is the raw channel's read, which
// may return 0 bytes and io.EOF while no host is connected (a
// virtio-serial port before the clone's host attaches); ReadWake keeps
// reading through those, calling idle in between, and ends only with a
// whole message or another error. With a nil idle, a read of nothing
// ends it: the message was short.
func ReadWake(read func([]byte) (int, error), idle func()) (*Wake, error) {
	head := make([]byte, wakeFixed)
	if err := readFull(read, idle, head); err != nil {
		return nil, err
	}
	if head[0] != wakeTag {
		return nil, &WakeError{Problem: fmt.Sprintf("the host sent %q, not a wake message", head[0])}
	}
	if head[1] != WakeVersion {
		return nil, &WakeError{Problem: fmt.Sprintf("wake version %d (this guest speaks %d)", head[1], WakeVersion)}
	}
	n := int(head[wakeFixed-1])
	if n == 0 || n > maxHostname {
		return nil, &WakeError{Problem: fmt.Sprintf("hostname length %d (want 1 to %d)", n, maxHostname)}
	}
	name := make([]byte, n)
	if err := readFull(read, idle, name); err != nil {
		return nil, err
	}
	w := &Wake{Hostname: string(name)}
	copy(w.Entropy[:], head[2:2+WakeEntropy])
	copy(w.MachineID[:], head[2+WakeEntropy:])
	if err := CheckHostname(w.Hostname); err != nil {
		return nil, err
	}
	return w, nil
}

// UnmarshalWake decodes one whole wake message; extra bytes are an error.
func UnmarshalWake(b []byte) (*Wake, error) {
	r := bytes.NewReader(b)
	w, err := ReadWake(r.Read, nil)
	if err != nil {
		return nil, err
	}
	if r.Len() != 0 {
		return nil, &WakeError{Problem: fmt.Sprintf("%d bytes after the wake message", r.Len())}
	}
	return w, nil
}

// readFull fills buf; a read of nothing with io.EOF (or no error) is a
// channel without a host yet, for which it idles, unless idle is nil.
func readFull(read func([]byte) (int, error), idle func(), buf []byte) error {
	for got := 0; got < len(buf); {
		n, err := read(buf[got:])
		got += n
		if n > 0 {
			continue
		}
		if err != nil && !errors.Is(err, io.EOF) {
			return fmt.Errorf("snapshot wake-up: %w", err)
		}
		if idle == nil {
			return &WakeError{Problem: fmt.Sprintf("message ends after %d of %d bytes", got, len(buf))}
		}
		idle()
	}
	return nil
}
