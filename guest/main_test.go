package guest

import (
	"os"
	"testing"
)

// TestMain gives the in-process guests of the tests a workdir of their
// own: the default, /work, is the sandboxes' workdir, and may exist on the
// host.
func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "ccos-guest-test-")
	if err != nil {
		panic(err)
	}
	Workdir = dir
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}
