//go:build !linux

package process

import (
	"context"
	"fmt"
	"runtime"

	"github.com/ccos-project/ccos/sandbox"
)

// InitIfChild returns at once: a process sandbox child only exists on Linux.
func InitIfChild() {}

// Available reports that the provider needs Linux.
func (*Provider) Available() (bool, string) {
	return false, "not Linux (process sandboxes need Linux namespaces; this is " + runtime.GOOS + ")"
}

// Start fails: the provider needs Linux.
func (p *Provider) Start(context.Context, sandbox.Spec) (sandbox.Sandbox, error) {
	_, reason := p.Available()
	return nil, fmt.Errorf("%w: %s: %s", sandbox.ErrUnavailable, Name, reason)
}
