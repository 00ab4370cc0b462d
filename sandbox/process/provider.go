package process

// Name is the provider's name on the command line and in ccos doctor.
const Name = "process"

// Provider starts process sandboxes. Its zero value is ready to use; the
// run engine builds one per agent (there is no global instance).
type Provider struct {
	// failStep, when set (tests only), makes the child fail at the named
	// setup step so that setup-failure reporting can be tested.
	failStep string
}

// Name returns "process".
func (*Provider) Name() string { return Name }
