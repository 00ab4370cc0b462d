//go:build linux

package process

import (
	"strings"
	"testing"

	"github.com/ccos-project/ccos/sandbox"
)

func TestBoundedLog(t *testing.T) {
	l := &sandbox.LogBuffer{Max: 10}
	for _, w := range []string{"hello ", "world, ", "and more"} {
		if n, err := l.Write([]byte(w)); n != len(w) || err != nil {
			t.Fatalf("Write(%q) = %d, %v", w, n, err)
		}
	}
	if got := string(l.Bytes()); got != "hello worl" {
		t.Fatalf("kept %q, want %q", got, "hello worl")
	}
}

func TestCgroupName(t *testing.T) {
	n := cgroupName("run/../../etc 42")
	if strings.ContainsAny(n, "/ ") || !strings.HasPrefix(n, "ccos-run_.._.._etc_42-") {
		t.Fatalf("cgroupName = %q", n)
	}
}
