package wasm

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// Test guests, built for wasip1 by TestMain.
var (
	testGuest  string // testdata/testguest: the probes
	badImport  string // testdata/badimport: imports a function the host lacks
	testCache  string // compilation cache of the test provider
	testWasm   *Provider
	testGuests = map[string]*string{"testguest": &testGuest, "badimport": &badImport}
)

func TestMain(m *testing.M) {
	os.Exit(runTests(m))
}

func runTests(m *testing.M) int {
	dir, err := os.MkdirTemp("", "ccos-wasm-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	for name, path := range testGuests {
		*path = filepath.Join(dir, name+".wasm")
		if err := buildGuest("./testdata/"+name, *path); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
	}
	testCache = filepath.Join(dir, "cache")
	testWasm = New(Options{Source: FileModule(testGuest), CacheDir: testCache})
	defer testWasm.Close(context.Background())
	return m.Run()
}

// buildGuest compiles a test guest for wasip1 and records its digest the
// way `go generate` does for the real guest.
func buildGuest(pkg, out string) error {
	cmd := exec.Command("go", "build", "-o", out, pkg)
	cmd.Env = append(os.Environ(), "GOOS=wasip1", "GOARCH=wasm", "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("building %s for wasip1: %w\n%s", pkg, err, b)
	}
	wasm, err := os.ReadFile(out)
	if err != nil {
		return err
	}
	sum := sha256.Sum256(wasm)
	return os.WriteFile(out+".sha256", []byte(hex.EncodeToString(sum[:])+"  "+filepath.Base(out)+"\n"), 0o644)
}
