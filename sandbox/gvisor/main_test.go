//go:build linux

package gvisor

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/ccos-project/ccos/internal/testenv"
)

// Binaries built once for all tests: the real ccos (the guest agent) and
// the hostile test guest, both static (the sandbox's root holds nothing
// else).
var (
	ccosBinary    string
	hostileBinary string
)

func TestMain(m *testing.M) {
	os.Exit(runTests(m))
}

func runTests(m *testing.M) int {
	if _, err := exec.LookPath("runsc"); err != nil {
		// The one rule (internal/testenv): skip here, required under CI.
		return testenv.MainMissing("sandbox/gvisor", "runsc is not installed",
			fmt.Sprintf("install the Debian package %s (apt-get install %s; scripts/test does)", DebianPackage, DebianPackage))
	}
	dir, err := os.MkdirTemp("", "ccos-gvisor-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	ccosBinary = filepath.Join(dir, "ccos")
	hostileBinary = filepath.Join(dir, "hostile")
	for _, b := range []struct{ out, pkg string }{
		{ccosBinary, "github.com/ccos-project/ccos/cmd/ccos"},
		{hostileBinary, "./testdata/hostile"},
	} {
		cmd := exec.Command("go", "build", "-o", b.out, b.pkg)
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			fmt.Fprintf(os.Stderr, "building %s: %v\n%s", b.pkg, err, out)
			return 1
		}
	}
	return m.Run()
}
