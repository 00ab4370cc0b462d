// Package embedgen builds a Go program for embedding into ccos (the wasm
// guest module, the microVM /init) and records its digest beside it, for
// the go:generate commands of sandbox/wasm and image/initbin.
//
// The output and its digest (sha256sum format) are written to temporary
// names and renamed into place, the digest last, so that a reader never
// pairs a new artefact with an old digest or sees a partial file: an
// interrupted run leaves an artefact whose digest does not match, which the
// embedding package refuses.
package embedgen

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"

	"github.com/ccos-project/ccos/internal/atomicfile"
)

// Build runs `go build ARGS... -o OUT PKG` with env added to the
// environment, then installs OUT and OUT.sha256. name prefixes the
// progress line on standard error.
func Build(name, pkg, out string, env []string, args ...string) error {
	tmpDir, err := os.MkdirTemp("", "embedgen-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmpDir)
	built := filepath.Join(tmpDir, filepath.Base(out))
	cmdArgs := append(append([]string{"build"}, args...), "-o", built, pkg)
	cmd := exec.Command("go", cmdArgs...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("building %s (%v): %w", pkg, env, err)
	}
	data, err := os.ReadFile(built)
	if err != nil {
		return fmt.Errorf("reading the build: %w", err)
	}
	sum := sha256.Sum256(data)
	line := hex.EncodeToString(sum[:]) + "  " + filepath.Base(out) + "\n"
	if err := atomicfile.Write(out, data, 0o644); err != nil {
		return fmt.Errorf("installing %s: %w", out, err)
	}
	if err := atomicfile.Write(out+".sha256", []byte(line), 0o644); err != nil {
		return fmt.Errorf("recording the digest: %w", err)
	}
	fmt.Fprintf(os.Stderr, "%s: %s (%d bytes) sha256 %x\n", name, out, len(data), sum)
	return nil
}
