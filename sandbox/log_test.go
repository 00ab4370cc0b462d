package sandbox

import (
	"strings"
	"testing"
)

func TestLogBufferKeepsTheFirstMaxBytes(t *testing.T) {
	l := &LogBuffer{Max: 10}
	for _, s := range []string{"hello ", "world, ", "and more"} {
		if n, err := l.Write([]byte(s)); n != len(s) || err != nil {
			t.Fatalf("Write(%q) = %d, %v: writes must always succeed", s, n, err)
		}
	}
	if got := string(l.Bytes()); got != "hello worl" {
		t.Errorf("kept %q", got)
	}
	if d := l.Dropped(); d != int64(len("hello world, and more")-10) {
		t.Errorf("dropped %d", d)
	}
	l.Write([]byte(strings.Repeat("x", 1<<20)))
	if len(l.Bytes()) != 10 {
		t.Errorf("grew past Max: %d", len(l.Bytes()))
	}
}
