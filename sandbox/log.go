package sandbox

import (
	"bytes"
	"sync"
)

// LogBuffer keeps the first Max bytes written to it and counts the rest.
// Writes always succeed, so a guest flooding its diagnostic output keeps
// its pipe drained (it never blocks on it) and costs the host a counter,
// not memory.
type LogBuffer struct {
	Max int64

	mu      sync.Mutex
	buf     []byte
	dropped int64
}

// Write implements io.Writer.
func (l *LogBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	keep := min(int64(len(p)), max(l.Max-int64(len(l.buf)), 0))
	l.buf = append(l.buf, p[:keep]...)
	l.dropped += int64(len(p)) - keep
	return len(p), nil
}

// Bytes returns a copy of what was kept.
func (l *LogBuffer) Bytes() []byte {
	l.mu.Lock()
	defer l.mu.Unlock()
	return bytes.Clone(l.buf)
}

// Dropped returns how many bytes were written past Max.
func (l *LogBuffer) Dropped() int64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.dropped
}
