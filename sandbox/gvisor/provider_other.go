//go:build !linux

package gvisor

import (
	"context"
	"fmt"

	"github.com/ccos-project/ccos/sandbox"
)

const notLinux = "gVisor (runsc) runs on Linux only"

// Available reports that gVisor needs Linux.
func (*Provider) Available() (bool, string) { return false, notLinux }

// Start fails: gVisor needs Linux.
func (*Provider) Start(context.Context, sandbox.Spec) (sandbox.Sandbox, error) {
	return nil, fmt.Errorf("%w: %s: %s", sandbox.ErrUnavailable, Name, notLinux)
}
