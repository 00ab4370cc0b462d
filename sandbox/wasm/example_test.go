package wasm_test

import (
	"context"
	"errors"
	"fmt"
	"log"

	"github.com/ccos-project/ccos/sandbox"
	"github.com/ccos-project/ccos/sandbox/wasm"
)

// The host starts the guest with a wasm provider, talks to it over the
// control channel and learns how it ended from Wait.
func Example() {
	sb, err := wasm.New(wasm.Options{}).Start(context.Background(), sandbox.Spec{
		ID:     "run-1",
		Limits: sandbox.Limits{MemoryBytes: 128 << 20},
	})
	if err != nil {
		// Without `go generate ./sandbox/wasm` this says how to build the
		// guest module.
		log.Fatal(err)
	}
	defer sb.Kill()
	conn := sb.Control() // speak the control protocol (package control) here
	conn.Close()
	var exit *sandbox.ExitError
	if err := sb.Wait(); errors.As(err, &exit) {
		fmt.Println(exit.Reason, exit.Detail)
		fmt.Printf("%s\n", sb.Log())
	}
}
