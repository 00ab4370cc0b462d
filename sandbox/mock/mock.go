// Package mock is an in-process sandbox provider for unit tests: the guest
// runs as a goroutine of the host process, with no isolation at all. It is
// never chosen automatically, and ccos run refuses it for plans unless the
// user asks for it explicitly.
package mock

import (
	"context"
	"io"
	"net"
	"sync"
	"time"

	"github.com/ccos-project/ccos/sandbox"
)

// Provider runs Guest in a goroutine for each sandbox.
type Provider struct {
	// Guest serves the guest end of the control channel and returns an
	// exit status, like sandbox.GuestMain.
	Guest func(conn io.ReadWriteCloser) int
}

// Name returns "mock".
func (*Provider) Name() string { return "mock" }

// Available reports true: the mock needs nothing from the host. It
// isolates nothing either, which is why it is never picked by default.
func (p *Provider) Available() (bool, string) {
	if p.Guest == nil {
		return false, "no guest function is set"
	}
	return true, "in-process, no isolation (tests only)"
}

// Start runs the guest in a goroutine connected by an in-memory pipe.
func (p *Provider) Start(ctx context.Context, spec sandbox.Spec) (sandbox.Sandbox, error) {
	host, guest := net.Pipe()
	s := &box{host: host, guest: guest, done: make(chan struct{})}
	s.timer = time.AfterFunc(spec.Limits.WithDefaults().Deadline, func() { s.stop(sandbox.ExitDeadline) })
	go func() {
		defer close(s.done)
		s.status = p.Guest(guest)
		s.mu.Lock()
		s.timer.Stop()
		s.mu.Unlock()
	}()
	return s, nil
}

type box struct {
	host, guest net.Conn
	done        chan struct{}
	status      int
	once        sync.Once
	mu          sync.Mutex
	reason      sandbox.ExitReason
	timer       *time.Timer
}

func (b *box) Control() io.ReadWriteCloser { return b.host }

func (b *box) Wait() error {
	<-b.done
	b.mu.Lock()
	reason := b.reason
	b.mu.Unlock()
	if reason != "" {
		return &sandbox.ExitError{Reason: reason}
	}
	if b.status != 0 {
		return &sandbox.ExitError{Reason: sandbox.ExitStatus, Status: b.status}
	}
	return nil
}

func (b *box) Kill() error {
	b.stop(sandbox.ExitKilled)
	return nil
}

func (b *box) stop(reason sandbox.ExitReason) {
	b.once.Do(func() {
		b.mu.Lock()
		b.reason = reason
		b.mu.Unlock()
		b.host.Close()
		b.guest.Close()
	})
}

// Rearm restarts the deadline (see sandbox.Holdable).
func (b *box) Rearm(d time.Duration) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.reason != "" || !b.timer.Stop() {
		return false
	}
	b.timer = time.AfterFunc(d, func() { b.stop(sandbox.ExitDeadline) })
	return true
}

// Done is closed once the guest function has returned.
func (b *box) Done() <-chan struct{} { return b.done }

func (b *box) Log() []byte { return nil }
