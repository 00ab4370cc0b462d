package engine

import (
	"fmt"
	"testing"
)

// FuzzParsePlace: a place that reads prints back as itself; nothing
// panics.
func FuzzParsePlace(f *testing.F) {
	for _, s := range []string{"plan.rtfs:3:13", "C:\\x:1:2", "a:b:c", ":1:2", "f:1:", "f::1", "/tmp/p.rtfs:10:200", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		p, ok := ParsePlace(s)
		if !ok {
			return
		}
		if p.File == "" || p.Line < 0 || p.Col < 0 {
			t.Fatalf("%q: %+v", s, p)
		}
		if back := fmt.Sprintf("%s:%d:%d", p.File, p.Line, p.Col); back != s {
			if q, ok := ParsePlace(back); !ok || q != p {
				t.Fatalf("%q -> %+v -> %q -> %+v", s, p, back, q)
			}
		}
	})
}

func TestParsePlace(t *testing.T) {
	for s, want := range map[string]Place{"plan.rtfs:3:13": {"plan.rtfs", 3, 13}, "a:b:1:2": {"a:b", 1, 2}} {
		if p, ok := ParsePlace(s); !ok || p != want {
			t.Errorf("%q: %+v %v", s, p, ok)
		}
	}
	for _, s := range []string{"", "x", "f:1", ":1:2", "f:a:2"} {
		if p, ok := ParsePlace(s); ok {
			t.Errorf("%q parsed as %+v", s, p)
		}
	}
}
