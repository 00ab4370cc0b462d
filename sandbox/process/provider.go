package process

import "github.com/ccos-project/ccos/sandbox"

// Name is the provider's name in the sandbox registry and on the command line.
const Name = "process"

// Provider starts process sandboxes. Its zero value is ready to use; the
// registered instance is the one sandbox.Lookup("process") returns.
type Provider struct {
	// failStep, when set (tests only), makes the child fail at the named
	// setup step so that setup-failure reporting can be tested.
	failStep string
}

func init() { sandbox.Register(&Provider{}) }

// Name returns "process".
func (*Provider) Name() string { return Name }
