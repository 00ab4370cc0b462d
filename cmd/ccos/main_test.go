package main

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// ccosBin is the ccos binary built once for the CLI tests.
var ccosBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "ccos-cli-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	ccosBin = filepath.Join(dir, "ccos")
	// The binary embeds the guest compiled for wasip1: build it from the
	// current guest source, so that the tests never run a stale guest.
	gen := exec.Command("go", "generate", "../../sandbox/wasm")
	gen.Stderr = os.Stderr
	if err := gen.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "go generate ./sandbox/wasm:", err)
		os.Exit(1)
	}
	// It also embeds the microVM guest's /init for `ccos image build`.
	gen = exec.Command("go", "generate", "../../image/initbin")
	gen.Stderr = os.Stderr
	if err := gen.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "go generate ./image/initbin:", err)
		os.Exit(1)
	}
	// Static, as deployed: the gvisor provider runs this binary as the guest.
	build := exec.Command("go", "build", "-o", ccosBin, ".")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	build.Stderr = os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building ccos:", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// runCCOS runs the built ccos with args and stdin, returning its standard
// output, standard error and exit code.
func runCCOS(t *testing.T, stdin string, args ...string) (string, string, int) {
	t.Helper()
	cmd := exec.Command(ccosBin, args...)
	cmd.Stdin = strings.NewReader(stdin)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("running ccos %v: %v", args, err)
	}
	return out.String(), errb.String(), code
}

// writeTemp writes content to a file in a test directory and returns its path.
func writeTemp(t *testing.T, name, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}
