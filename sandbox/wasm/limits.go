package wasm

import (
	"sync/atomic"

	"github.com/tetratelabs/wazero/experimental"
)

// memoryLimit enforces Limits.MemoryBytes for one sandbox. wazero's own
// page limit is a runtime-wide setting (one runtime, and one compiled copy
// of the module, per distinct limit), so the per-sandbox limit is applied
// where the guest's linear memory grows: memory.grow past the limit gets
// the -1 the WebAssembly spec allows, and the refusal is recorded so that
// Wait can report ExitMemory rather than guess from the guest's last words.
type memoryLimit struct {
	limit     uint64
	refused   atomic.Bool
	requested atomic.Uint64
}

// Allocate implements experimental.MemoryAllocator. Where the host can
// reserve address space (reserveMemory), the whole limit is reserved up
// front and pages are committed as the guest touches them, so growing
// never copies and the memory goes back to the host when the guest ends
// rather than when the host's garbage collector runs.
func (m *memoryLimit) Allocate(_, _ uint64) experimental.LinearMemory {
	l := &linearMemory{lim: m}
	if region, err := reserveMemory(m.limit); err == nil {
		l.region = region
	}
	return l
}

// linearMemory backs one module's memory; wazero calls it from the guest's
// goroutine only.
type linearMemory struct {
	lim *memoryLimit
	buf []byte
	// region is the reserved address space, nil when growing copies.
	region []byte
}

// Reallocate implements experimental.LinearMemory.
func (l *linearMemory) Reallocate(size uint64) []byte {
	if size > l.lim.limit {
		l.lim.requested.Store(size)
		l.lim.refused.Store(true)
		return nil
	}
	if l.region != nil {
		l.buf = l.region[:size]
		return l.buf
	}
	if size <= uint64(cap(l.buf)) {
		l.buf = l.buf[:size]
		return l.buf
	}
	// Amortise copying like append would, but never reserve past the limit.
	capacity := min(max(size, 2*uint64(cap(l.buf))), l.lim.limit)
	grown := make([]byte, size, capacity)
	copy(grown, l.buf)
	l.buf = grown
	return l.buf
}

// Free implements experimental.LinearMemory; wazero calls it when the
// module is closed and never touches the memory again.
func (l *linearMemory) Free() {
	if l.region != nil {
		releaseMemory(l.region)
	}
	l.buf, l.region = nil, nil
}
