package domain

import (
	"errors"
	"strings"
	"testing"
)

func TestNormalize(t *testing.T) {
	for _, c := range []struct{ in, want, err string }{
		{"Example.COM", "example.com", ""},
		{"example.com.", "example.com", ""},
		{"bücher.example", "xn--bcher-kva.example", ""},
		{"BÜCHER.example", "xn--bcher-kva.example", ""},
		{"xn--bcher-kva.example", "xn--bcher-kva.example", ""},
		{"api_v2.example.com", "api_v2.example.com", ""}, // underscores: some API hosts have them
		{"[::1]", "::1", ""},
		{"127.0.0.1", "127.0.0.1", ""},
		{"0x7f.1", "", "numeric"},
		{"2130706433", "", "numeric"},
		{"a..b", "", "1 to 63"},
		{"", "", "empty"},
		{strings.Repeat("a", 64) + ".com", "", "1 to 63"},
		{"a b.com", "", ""},
	} {
		got, err := Normalize(c.in)
		if c.want != "" {
			if err != nil || got != c.want {
				t.Errorf("Normalize(%q) = %q, %v; want %q", c.in, got, err, c.want)
			}
			continue
		}
		if err == nil || !errors.Is(err, ErrInvalidHost) || !strings.Contains(err.Error(), c.err) {
			t.Errorf("Normalize(%q) = %q, %v; want an error with %q", c.in, got, err, c.err)
		}
	}
}

func TestCovers(t *testing.T) {
	allow := []string{"api.example.com", "*.svc.example.org", "Bücher.example"}
	for _, c := range []struct {
		d    string
		want bool
	}{
		{"api.example.com", true},
		{"API.Example.com.", true},
		{"other.example.com", false},
		{"example.com", false},
		{"a.svc.example.org", true},
		{"a.b.svc.example.org", true},
		{"*.a.svc.example.org", true}, // a narrower wildcard
		{"*.svc.example.org", true},   // the same wildcard
		{"svc.example.org", false},    // a wildcard covers strict subdomains only
		{"*.example.org", false},      // a wider wildcard
		{"xn--bcher-kva.example", true},
		{"bücher.example", true},
		{"not a domain", false},
		{"*", false},
	} {
		if got := Covered(c.d, allow); got != c.want {
			t.Errorf("Covered(%q) = %v, want %v", c.d, got, c.want)
		}
	}
	if Covered("a.com", []string{"*.com"}) {
		t.Error("a top-level wildcard covered something")
	}
	s, invalid := ParseSet([]string{"ok.example", "bad name", "*.x.*"})
	if len(invalid) != 2 || !s.Match("ok.example") {
		t.Errorf("ParseSet: %v invalid, match %v", invalid, s.Match("ok.example"))
	}
}

func FuzzParsePattern(f *testing.F) {
	for _, s := range []string{"example.com", "*.example.com", "*.com", "a.*.com", "*", "**.x.y", "*.BÜCHER.example.", "1.2.3.4", "*.1.2.3.4"} {
		f.Add(s, "a.example.com")
	}
	f.Fuzz(func(t *testing.T, s, host string) {
		p, err := ParsePattern(s)
		if err != nil {
			if !errors.Is(err, ErrInvalidPattern) {
				t.Fatalf("error %v does not wrap ErrInvalidPattern", err)
			}
			return
		}
		q, err := ParsePattern(p.String())
		if err != nil || q != p {
			t.Fatalf("round trip of %q: %+v %v", s, q, err)
		}
		if strings.Contains(p.Name, "*") {
			t.Fatalf("wildcard inside %q", p.Name)
		}
		if p.Match(p.Name) == p.Wildcard {
			t.Fatalf("%s matching its own name: %v", p, p.Match(p.Name))
		}
		if !p.Covers(p) {
			t.Fatalf("%s does not cover itself", p)
		}
		if h, err := Normalize(host); err == nil && p.Match(h) {
			if !strings.HasSuffix(h, p.Name) {
				t.Fatalf("%s matched %q", p, h)
			}
			if hp, err := ParsePattern(h); err == nil && !p.Covers(hp) {
				t.Fatalf("%s matches %q but does not cover it", p, h)
			}
		}
	})
}

// FuzzSetCovers: a Set decides exactly as its patterns one by one.
func FuzzSetCovers(f *testing.F) {
	f.Add("*.example.com", "a.example.com", "*.b.example.com")
	f.Add("example.com", "*.com", "example.com")
	f.Add("*.a.b", "a.b", "*.a.b")
	f.Fuzz(func(t *testing.T, a, b, q string) {
		var ps []Pattern
		for _, s := range []string{a, b} {
			if p, err := ParsePattern(s); err == nil {
				ps = append(ps, p)
			}
		}
		qp, err := ParsePattern(q)
		if err != nil {
			return
		}
		want := false
		for _, p := range ps {
			want = want || p.Covers(qp)
		}
		if got := NewSet(ps).Covers(qp); got != want {
			t.Fatalf("Set%v.Covers(%v) = %v, patterns one by one say %v", ps, qp, got, want)
		}
	})
}
