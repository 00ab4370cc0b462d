// Command ccos-guest-wasm is the ccos guest agent for the wasm sandbox
// provider, built with GOOS=wasip1 GOARCH=wasm by `go generate
// ./sandbox/wasm`.
//
// The host links the module only to wasi_snapshot_preview1 and makes the
// module's standard input and output the control channel; standard error is
// the guest's diagnostic log. It takes no arguments and reads no
// environment.
package main

import (
	"os"

	"github.com/ccos-project/ccos/guest"
)

// stdio is the guest end of the control channel: the host writes to the
// module's standard input and reads its standard output.
type stdio struct{}

func (stdio) Read(p []byte) (int, error)  { return os.Stdin.Read(p) }
func (stdio) Write(p []byte) (int, error) { return os.Stdout.Write(p) }

// Close closes both directions so the host sees the session end even if
// the process lingers.
func (stdio) Close() error {
	errIn := os.Stdin.Close()
	if err := os.Stdout.Close(); err != nil {
		return err
	}
	return errIn
}

func main() {
	os.Exit(guest.Run(stdio{}))
}
