// Command ccos runs AI-agent plans written in RTFS inside strong isolation,
// governed by an agent configuration that is itself RTFS.
//
// Each subcommand lives in its own file and registers itself on rootCmd in
// an init function.
package main

import (
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/ccos-project/ccos/internal/terminal"
	"github.com/ccos-project/ccos/sandbox/process"
	"github.com/spf13/cobra"
)

// Exit codes of the CLI contract.
const (
	exitOK       = 0
	exitRejected = 1
	exitUsage    = 2
)

// exitError carries an exit code out of a command; its message, if any, has
// already been printed (or is printed by main).
type exitError struct {
	code int
	msg  string
}

func (e *exitError) Error() string { return e.msg }

// rejected returns an error that makes ccos exit 1 after printing msg (if
// not empty) to stderr.
func rejected(msg string) error { return &exitError{code: exitRejected, msg: msg} }

var rootCmd = &cobra.Command{
	Use:           "ccos",
	Short:         "Run AI-agent plans written in RTFS inside strong isolation",
	SilenceUsage:  true,
	SilenceErrors: true,
}

func main() {
	// A sandbox child of the process provider is this same binary: it sets
	// itself up and runs the guest agent (sandbox.GuestMain, set in
	// guest.go), and never returns here.
	process.InitIfChild()
	rootCmd.SetFlagErrorFunc(func(c *cobra.Command, err error) error {
		return &exitError{code: exitUsage, msg: err.Error() + "\n" + c.UsageString()}
	})
	// Everything a command prints goes through one escaping writer per
	// stream: a plan, a guest or a config cannot send a terminal control
	// sequence to the operator's terminal. --json documents pass through
	// unchanged in value (internal/terminal).
	stdout, stderr := terminal.NewWriter(os.Stdout), terminal.NewWriter(os.Stderr)
	rootCmd.SetOut(stdout)
	rootCmd.SetErr(stderr)
	os.Exit(execute(stderr, func() {
		stdout.Flush()
		stderr.Flush()
	}))
}

// execute runs the command and returns the exit code, after printing the
// error, if any, to stderr and flushing.
func execute(stderr io.Writer, flush func()) int {
	defer flush()
	err := rootCmd.Execute()
	if err == nil {
		return exitOK
	}
	var ee *exitError
	if errors.As(err, &ee) {
		if ee.msg != "" {
			fmt.Fprintln(stderr, ee.msg)
		}
		return ee.code
	}
	// cobra's own errors (unknown command, wrong argument count) are usage
	// errors.
	fmt.Fprintln(stderr, "ccos:", err)
	return exitUsage
}
