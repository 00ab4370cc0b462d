// Command genmodule builds the ccos guest for wasip1 and records its digest.
//
// It is run by `go generate ./sandbox/wasm` (from the sandbox/wasm
// directory) and writes module/guest.wasm and module/guest.wasm.sha256, the
// latter in sha256sum format. Both files are written to a temporary name
// and renamed into place, the digest last, so that a reader never pairs a
// new module with an old digest or sees a partial file: an interrupted run
// leaves a module whose digest does not match, which the provider refuses.
package main

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
)

const (
	guestPkg   = "github.com/ccos-project/ccos/cmd/ccos-guest-wasm"
	moduleFile = "module/guest.wasm"
	digestFile = moduleFile + ".sha256"
)

func main() {
	if err := generate(); err != nil {
		fmt.Fprintln(os.Stderr, "genmodule:", err)
		os.Exit(1)
	}
}

func generate() error {
	tmp := moduleFile + ".tmp"
	cmd := exec.Command("go", "build", "-trimpath", "-o", tmp, guestPkg)
	cmd.Env = append(os.Environ(), "GOOS=wasip1", "GOARCH=wasm", "CGO_ENABLED=0")
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("building %s for wasip1: %w", guestPkg, err)
	}
	wasm, err := os.ReadFile(tmp)
	if err != nil {
		return fmt.Errorf("reading the built module: %w", err)
	}
	sum := sha256.Sum256(wasm)
	line := hex.EncodeToString(sum[:]) + "  " + filepath.Base(moduleFile) + "\n"
	if err := os.Rename(tmp, moduleFile); err != nil {
		return fmt.Errorf("installing the module: %w", err)
	}
	if err := writeAtomic(digestFile, []byte(line)); err != nil {
		return fmt.Errorf("recording the digest: %w", err)
	}
	fmt.Fprintf(os.Stderr, "genmodule: %s (%d bytes) sha256 %x\n", moduleFile, len(wasm), sum)
	return nil
}

func writeAtomic(path string, data []byte) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}
