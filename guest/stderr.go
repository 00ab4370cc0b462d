package guest

import "os"

// stderr writes to the process's standard error at the time of the call.
type stderr struct{}

func (stderr) Write(p []byte) (int, error) { return os.Stderr.Write(p) }
