// Command genmodule builds the ccos guest for wasip1 and records its digest.
//
// It is run by `go generate ./sandbox/wasm` (from the sandbox/wasm
// directory) and writes module/guest.wasm and module/guest.wasm.sha256
// (package internal/embedgen).
package main

import (
	"fmt"
	"os"

	"github.com/ccos-project/ccos/internal/embedgen"
)

func main() {
	err := embedgen.Build("genmodule", "github.com/ccos-project/ccos/cmd/ccos-guest-wasm", "module/guest.wasm",
		[]string{"GOOS=wasip1", "GOARCH=wasm", "CGO_ENABLED=0"}, "-trimpath")
	if err != nil {
		fmt.Fprintln(os.Stderr, "genmodule:", err)
		os.Exit(1)
	}
}
