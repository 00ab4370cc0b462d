package testenv

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

func TestSharedFromEnvironment(t *testing.T) {
	d := t.TempDir()
	if err := os.MkdirAll(filepath.Join(d, "contracts"), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv(SharedEnv, d)
	if got, err := SharedDir(); err != nil || got != d {
		t.Fatalf("SharedDir = %q, %v", got, err)
	}
	if p := Shared(t, "contracts"); p != filepath.Join(d, "contracts") {
		t.Fatalf("Shared = %q", p)
	}
	if _, err := SharedPath("nothing-here"); err == nil || !strings.Contains(err.Error(), "nothing-here") {
		t.Fatalf("SharedPath of a missing file: %v", err)
	}
	t.Setenv(SharedEnv, filepath.Join(d, "absent"))
	if _, err := SharedDir(); err == nil || !strings.Contains(err.Error(), SharedEnv) {
		t.Fatalf("SharedDir with a bad %s: %v", SharedEnv, err)
	}
}

// helperEnv makes TestHelperMissing run (only in the child of TestMissing).
const helperEnv = "CCOS_TESTENV_HELPER"

func TestHelperMissing(t *testing.T) {
	if os.Getenv(helperEnv) == "" {
		t.Skip("run by TestMissing")
	}
	Tool(t, "ccos-no-such-tool", "install it")
	t.Log("not reached")
}

// TestMissing: a missing tool skips the test, or fails it under CI.
func TestMissing(t *testing.T) {
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		ci       string
		wantFail bool
		want     string
	}{
		{"", false, "SKIP"},
		{"1", true, "required under CI"},
	} {
		cmd := exec.Command(self, "-test.run=^TestHelperMissing$", "-test.v")
		cmd.Env = append(os.Environ(), helperEnv+"=1", "CI="+c.ci)
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		err := cmd.Run()
		if (err != nil) != c.wantFail || !strings.Contains(out.String(), c.want) ||
			!strings.Contains(out.String(), "ccos-no-such-tool is not installed") || !strings.Contains(out.String(), "install it") {
			t.Errorf("CI=%q: %v\n%s", c.ci, err, out.String())
		}
	}
}
