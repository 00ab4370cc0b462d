//go:build linux

package gvisor

import (
	"bufio"
	"context"
	"fmt"
	"time"

	"github.com/ccos-project/ccos/sandbox"
)

// Start a guest in gVisor, talk to it over the control channel (runsc's
// standard input and output), and wait for its end. The guest here is the
// static test guest, which answers "ping" with "pong"; the registered
// provider runs the ccos binary itself as "/ccos guest".
func Example() {
	p := &Provider{Binary: hostileBinary, Raw: true}
	sb, err := p.Start(context.Background(), sandbox.Spec{
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
