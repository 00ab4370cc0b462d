package main

import (
	"io"
	"os"

	"github.com/ccos-project/ccos/guest"
	"github.com/ccos-project/ccos/sandbox"
	"github.com/spf13/cobra"
)

func init() {
	// Every sandbox runs this same binary's guest agent (the engine builds
	// the providers: gvisor runs this binary as the guest, so ccos must be
	// built static, CGO_ENABLED=0; wasm embeds the guest module that go
	// generate ./sandbox/wasm builds).
	sandbox.GuestMain = guest.Run
	rootCmd.AddCommand(&cobra.Command{
		Use:    "guest",
		Short:  "Serve the guest side of the control protocol on standard input and output",
		Hidden: true,
		Args:   cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if code := guest.Run(stdio{}); code != 0 {
				return &exitError{code: code}
			}
			return nil
		},
	})
}

// stdio is the process's standard input and output as one connection.
type stdio struct{}

func (stdio) Read(p []byte) (int, error)  { return os.Stdin.Read(p) }
func (stdio) Write(p []byte) (int, error) { return os.Stdout.Write(p) }
func (stdio) Close() error {
	err := os.Stdout.Close()
	if cerr := os.Stdin.Close(); err == nil {
		err = cerr
	}
	return err
}

var _ io.ReadWriteCloser = stdio{}
