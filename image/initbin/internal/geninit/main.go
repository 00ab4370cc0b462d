// Command geninit builds the microVM guest's /init and records its digest.
//
// It is run by `go generate ./image/initbin` (from the image/initbin
// directory) and writes bin/ccos-init, a static linux/amd64 build of
// ./cmd/ccos-init, and bin/ccos-init.sha256 (package internal/embedgen).
// The build flags make it reproducible: -trimpath drops the build
// directory, -buildid= the build ID, -s -w the symbol tables.
package main

import (
	"fmt"
	"os"

	"github.com/ccos-project/ccos/internal/embedgen"
)

func main() {
	err := embedgen.Build("geninit", "github.com/ccos-project/ccos/cmd/ccos-init", "bin/ccos-init",
		[]string{"CGO_ENABLED=0", "GOOS=linux", "GOARCH=amd64"}, "-trimpath", "-ldflags=-s -w -buildid=")
	if err != nil {
		fmt.Fprintln(os.Stderr, "geninit:", err)
		os.Exit(1)
	}
}
