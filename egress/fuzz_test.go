package egress

import (
	"errors"
	"net/netip"
	"strconv"
	"strings"
	"testing"

	"github.com/ccos-project/ccos/domain"
)

// The seeds are in testdata/fuzz/<target>/; f.Add adds a few more here.

func FuzzSplitHostPort(f *testing.F) {
	for _, s := range []string{"example.com", "example.com:443", "[::1]:80", "Bücher.EXAMPLE.:8080", "1.2.3.4:0", "a:b:c", "[fe80::1%eth0]:1", "0x7f.1", "xn--bcher-kva.example"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		host, port, err := SplitHostPort(s, 443)
		if err != nil {
			if !errors.Is(err, domain.ErrInvalidHost) {
				t.Fatalf("error %v does not wrap ErrInvalidHost", err)
			}
			return
		}
		if port < 1 || port > 65535 {
			t.Fatalf("port %d", port)
		}
		again, err := domain.Normalize(host)
		if err != nil || again != host {
			t.Fatalf("domain.Normalize(%q) = %q, %v: not idempotent", host, again, err)
		}
		h2, p2, err := SplitHostPort(hostPort(host, port, "x"), 1)
		if err != nil || h2 != host || p2 != port {
			t.Fatalf("round trip of %q:%d: %q %d %v", host, port, h2, p2, err)
		}
		if a, err := netip.ParseAddr(host); err == nil && a.Zone() != "" {
			t.Fatalf("zone accepted: %q", host)
		}
	})
}

func FuzzParsePin(f *testing.F) {
	for _, s := range []string{
		"sha256/47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=",
		"sha256/47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU",
		"sha1/AAAA", "sha256/", "sha256/====", "SHA256/47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		p, err := ParsePin(s)
		if err != nil {
			if !errors.Is(err, ErrInvalidPin) {
				t.Fatalf("error %v does not wrap ErrInvalidPin", err)
			}
			return
		}
		if p.String() != s {
			t.Fatalf("ParsePin(%q).String() = %q", s, p.String())
		}
	})
}

func FuzzScan(f *testing.F) {
	for _, s := range []string{"jane@example.org", "4111 1111 1111 1111", "GB82 WEST 1234 5698 7654 32", "+44 20 7946 0958", "token " + githubPAT, privateKey, strconv.Itoa(1 << 40)} {
		f.Add(s)
	}
	s, err := newScanner(DLPConfig{Action: DLPRedact, Secrets: true, PII: true, Patterns: map[string]string{"x": `x{3,}`}})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, text string) {
		fs := s.scan(text)
		for _, fd := range fs {
			if fd.Start >= 0 && (fd.Start > fd.End || fd.End > len(text)) {
				t.Fatalf("finding %+v outside the text of %d bytes", fd, len(text))
			}
		}
		out, ok := redact(text, fs)
		if ok && len(fs) > 0 && !strings.Contains(out, "[REDACTED:") {
			t.Fatalf("redacted %q to %q", text, out)
		}
	})
}
