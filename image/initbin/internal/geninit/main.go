// Command geninit builds the microVM guest's /init and records its digest.
//
// It is run by `go generate ./image/initbin` (from the image/initbin
// directory) and writes bin/ccos-init, a static linux/amd64 build of
// ./cmd/ccos-init, and bin/ccos-init.sha256 in sha256sum format. The build
// flags make it reproducible: -trimpath drops the build directory,
// -buildid= the build ID, -s -w the symbol tables. Both files are written
// to a temporary name and renamed into place, the digest last, so that a
// reader never pairs a new binary with an old digest or sees a partial
// file: an interrupted run leaves a binary whose digest does not match,
// which package initbin refuses.
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
	initPkg    = "github.com/ccos-project/ccos/cmd/ccos-init"
	binaryFile = "bin/ccos-init"
	digestFile = binaryFile + ".sha256"
)

func main() {
	if err := generate(); err != nil {
		fmt.Fprintln(os.Stderr, "geninit:", err)
		os.Exit(1)
	}
}

func generate() error {
	tmp := binaryFile + ".tmp"
	cmd := exec.Command("go", "build", "-trimpath", "-ldflags=-s -w -buildid=", "-o", tmp, initPkg)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH=amd64")
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("building %s for linux/amd64: %w", initPkg, err)
	}
	bin, err := os.ReadFile(tmp)
	if err != nil {
		return fmt.Errorf("reading the built binary: %w", err)
	}
	sum := sha256.Sum256(bin)
	line := hex.EncodeToString(sum[:]) + "  " + filepath.Base(binaryFile) + "\n"
	if err := os.Rename(tmp, binaryFile); err != nil {
		return fmt.Errorf("installing the binary: %w", err)
	}
	if err := writeAtomic(digestFile, []byte(line)); err != nil {
		return fmt.Errorf("recording the digest: %w", err)
	}
	fmt.Fprintf(os.Stderr, "geninit: %s (%d bytes) sha256 %x\n", binaryFile, len(bin), sum)
	return nil
}

func writeAtomic(path string, data []byte) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}
