package sandbox

import "io"

// GuestMain is what a sandboxed child runs once its provider has set it up:
// it serves the control connection and returns the exit status. It runs
// inside the sandbox, with every restriction already applied, so nothing it
// does is trusted by the host. cmd/ccos sets it to the guest agent; tests set
// their own. A provider whose child finds it nil ends the child with a setup
// failure rather than running nothing.
var GuestMain func(conn io.ReadWriteCloser) int
