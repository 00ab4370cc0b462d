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
	go func() {
		defer close(s.done)
		s.status = p.Guest(guest)
	}()
	return s, nil
}

type box struct {
	host, guest net.Conn
	done        chan struct{}
	status      int
	once        sync.Once
	killed      bool
}

func (b *box) Control() io.ReadWriteCloser { return b.host }

func (b *box) Wait() error {
	<-b.done
	if b.killed {
		return &sandbox.ExitError{Reason: sandbox.ExitKilled}
	}
	if b.status != 0 {
		return &sandbox.ExitError{Reason: sandbox.ExitStatus, Status: b.status}
	}
	return nil
}

func (b *box) Kill() error {
	b.once.Do(func() {
		b.killed = true
		b.host.Close()
		b.guest.Close()
	})
	return nil
}

func (b *box) Log() []byte { return nil }
