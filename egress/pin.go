package egress

import (
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
)

// ErrInvalidPin is wrapped by every error about a malformed TLS pin.
var ErrInvalidPin = errors.New("invalid TLS pin")

// ErrPinMismatch is returned when no certificate of an origin's chain has a
// pinned public key.
var ErrPinMismatch = errors.New("TLS pin mismatch")

// Pin is the SHA-256 digest of a certificate's SubjectPublicKeyInfo, written
// "sha256/<standard base64>" as in HPKP and most pinning tools.
type Pin [sha256.Size]byte

// ParsePin parses "sha256/<base64 of 32 bytes>".
func ParsePin(s string) (Pin, error) {
	alg, b64, ok := strings.Cut(s, "/")
	if !ok || alg != "sha256" {
		return Pin{}, fmt.Errorf("%w: %q: want \"sha256/<base64>\"", ErrInvalidPin, s)
	}
	if strings.ContainsAny(b64, "\r\n") {
		// The decoder skips line breaks; a pin is one line.
		return Pin{}, fmt.Errorf("%w: %q has a line break", ErrInvalidPin, s)
	}
	raw, err := base64.StdEncoding.Strict().DecodeString(b64)
	if err != nil {
		return Pin{}, fmt.Errorf("%w: %q: %v", ErrInvalidPin, s, err)
	}
	if len(raw) != sha256.Size {
		return Pin{}, fmt.Errorf("%w: %q: digest has %d bytes, want %d", ErrInvalidPin, s, len(raw), sha256.Size)
	}
	var p Pin
	copy(p[:], raw)
	return p, nil
}

// PinOf returns the pin of a certificate's public key.
func PinOf(c *x509.Certificate) Pin { return sha256.Sum256(c.RawSubjectPublicKeyInfo) }

// String returns the pin in its "sha256/<base64>" form.
func (p Pin) String() string { return "sha256/" + base64.StdEncoding.EncodeToString(p[:]) }

// verifyPins returns a tls.Config.VerifyConnection function that accepts a
// connection when a certificate the peer presented (leaf or intermediate),
// or of a verified chain, has one of the pins.
func verifyPins(pins []Pin) func(tls.ConnectionState) error {
	return func(cs tls.ConnectionState) error {
		check := func(c *x509.Certificate) bool {
			got := PinOf(c)
			for _, p := range pins {
				if p == got {
					return true
				}
			}
			return false
		}
		for _, c := range cs.PeerCertificates {
			if check(c) {
				return nil
			}
		}
		for _, chain := range cs.VerifiedChains {
			for _, c := range chain {
				if check(c) {
					return nil
				}
			}
		}
		return fmt.Errorf("%w: %s presented no pinned key", ErrPinMismatch, cs.ServerName)
	}
}
