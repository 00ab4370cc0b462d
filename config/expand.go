package config

import (
	"strings"

	"github.com/ccos-project/ccos/rtfs"
)

// lineWidth is where Canonical breaks a map over several lines.
const lineWidth = 80

// Canonical prints a complete config map as an (agent.config ...) form:
// one top-level key per line, nested maps broken over lines when they do
// not fit, everything else in rtfs.Print's canonical spelling. Reading the
// output and loading it gives the same config.
func Canonical(m *rtfs.Map) string {
	var b strings.Builder
	b.WriteString("(agent.config")
	for i, k := range m.Keys() {
		b.WriteString("\n  ")
		key := rtfs.Print(k)
		b.WriteString(key)
		b.WriteByte(' ')
		writePretty(&b, m.Vals()[i], 2+len(key)+1)
	}
	b.WriteString(")\n")
	return b.String()
}

// writePretty writes v starting at column col.
func writePretty(b *strings.Builder, v rtfs.Value, col int) {
	flat := rtfs.Print(v)
	m, isMap := v.(*rtfs.Map)
	if !isMap || m.Len() == 0 || col+len(flat) <= lineWidth {
		b.WriteString(flat)
		return
	}
	b.WriteByte('{')
	for i, k := range m.Keys() {
		if i > 0 {
			b.WriteByte('\n')
			b.WriteString(strings.Repeat(" ", col+1))
		}
		key := rtfs.Print(k)
		b.WriteString(key)
		b.WriteByte(' ')
		writePretty(b, m.Vals()[i], col+1+len(key)+1)
	}
	b.WriteByte('}')
}
