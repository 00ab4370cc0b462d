//go:build linux

package process_test

import (
	"bufio"
	"context"
	"fmt"
	"time"

	"github.com/ccos-project/ccos/sandbox"
	"github.com/ccos-project/ccos/sandbox/process"
)

// Start a guest in a process sandbox, talk to it over the control
// connection, and wait for its end. The guest here is this package's test
// guest, which answers "ping" with "pong"; in ccos it is the guest agent.
func Example() {
	sb, err := (&process.Provider{}).Start(context.Background(), sandbox.Spec{
		ID:     "example",
		Limits: sandbox.Limits{MemoryBytes: 128 << 20, PIDs: 32, Deadline: 10 * time.Second},
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer sb.Control().Close()
	fmt.Fprintln(sb.Control(), "ping")
	reply, _ := bufio.NewReader(sb.Control()).ReadString('\n')
	fmt.Print(reply)
	fmt.Println(sb.Wait())
	// Output:
	// pong
	// <nil>
}
