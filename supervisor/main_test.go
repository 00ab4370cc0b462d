package supervisor_test

import (
	"os"
	"testing"

	"github.com/ccos-project/ccos/guest"
	"github.com/ccos-project/ccos/sandbox"
	"github.com/ccos-project/ccos/sandbox/process"
)

// TestMain makes this test binary the sandbox guest when the process
// provider starts it.
func TestMain(m *testing.M) {
	sandbox.GuestMain = guest.Run
	process.InitIfChild()
	os.Exit(m.Run())
}
