//go:build linux

package process_test

import (
	"bufio"
	"context"
	"fmt"
	"time"

	"github.com/ccos-project/ccos/sandbox"
	_ "github.com/ccos-project/ccos/sandbox/process" // registers "process"
)

// Start a guest through the registry, talk to it over the control
// connection, and wait for its end. The guest here is this package's test
// guest, which answers "ping" with "pong"; in ccos it is the guest agent.
func Example() {
	sb, err := sandbox.Start(context.Background(), "process", sandbox.Spec{
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
