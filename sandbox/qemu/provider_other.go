//go:build !linux

package qemu

import (
	"context"
	"fmt"

	"github.com/ccos-project/ccos/sandbox"
)

// Start fails: the qemu provider runs on Linux hosts only.
func (p *Provider) Start(context.Context, sandbox.Spec) (sandbox.Sandbox, error) {
	return nil, fmt.Errorf("%w: qemu: Linux hosts only", sandbox.ErrUnavailable)
}
