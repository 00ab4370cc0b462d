package gvisor

// Name is the provider's name on the command line and in ccos doctor.
const Name = "gvisor"

// DebianPackage is the Debian package that provides runsc.
const DebianPackage = "runsc"

// Provider starts gVisor sandboxes. Its zero value is ready to use; the
// run engine builds one per agent (there is no global instance).
type Provider struct {
	// Binary is the host path of the program run as /ccos in the sandbox
	// (with the argument "guest"); empty means this program
	// (os.Executable). It must be a static binary: nothing else is in the
	// sandbox's root.
	Binary string
	// Runsc is the runsc program to run; empty means "runsc" from PATH.
	Runsc string
	// Platform forces a runsc platform ("ptrace", "kvm", "systrap"); empty
	// means the one Available chooses.
	Platform string
	// Raw makes Start return as soon as runsc runs. Otherwise Start waits
	// for the guest's first bytes (the ccos agent's hello, kept for the
	// reader of Control), so that a started sandbox, and one a pool hands
	// out, is ready. Tests whose guest speaks first only when spoken to
	// set it.
	Raw bool
}

// Name returns "gvisor".
func (*Provider) Name() string { return Name }
