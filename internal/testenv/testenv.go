// Package testenv is where tests find what lies outside the repository:
// the shared reference data (specifications, the RTFS conformance corpus,
// the Firecracker API definition) and host tools (runsc, QEMU, mksquashfs).
//
// One rule for both: when something is missing, the test skips with a
// message that names it and says how to get it; when the environment
// variable CI is set, the test fails instead, so that CI never passes by
// skipping. A fresh clone of the repository alone passes its tests (with
// skips that say why).
//
// The shared data is found through the environment variable CCOS_SHARED,
// or else in the directory "shared" beside the repository's root (the
// directory holding go.mod), that is ../shared from a checkout.
package testenv

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// SharedEnv names the environment variable that points at the shared
// reference data.
const SharedEnv = "CCOS_SHARED"

// CI reports whether the tests run under CI (the environment variable CI
// is set and not empty): missing data and tools then fail tests.
func CI() bool { return os.Getenv("CI") != "" }

// SharedDir returns the directory of the shared reference data: the value
// of CCOS_SHARED, or else "shared" beside the repository's root. The error
// says where it looked and how to provide it.
func SharedDir() (string, error) {
	if d := os.Getenv(SharedEnv); d != "" {
		if fi, err := os.Stat(d); err != nil || !fi.IsDir() {
			return "", fmt.Errorf("%s=%s is not a directory", SharedEnv, d)
		}
		return d, nil
	}
	root, err := repoRoot()
	if err != nil {
		return "", err
	}
	d := filepath.Join(filepath.Dir(root), "shared")
	if fi, err := os.Stat(d); err != nil || !fi.IsDir() {
		return "", fmt.Errorf("no shared reference data: %s does not exist and %s is not set", d, SharedEnv)
	}
	return d, nil
}

// repoRoot returns the nearest directory, from the working directory
// upwards, that holds go.mod.
func repoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("no go.mod above the working directory")
		}
		dir = parent
	}
}

// getShared is how to get the shared data, for skip messages.
const getShared = "set " + SharedEnv + " to a copy of the project's shared directory (specs, conformance, contracts), or place it as ../shared beside the checkout"

// SharedPath returns the path of rel (a file or directory inside the
// shared data), or "" and why it is not there.
func SharedPath(rel string) (string, error) {
	d, err := SharedDir()
	if err != nil {
		return "", err
	}
	p := filepath.Join(d, rel)
	if _, err := os.Stat(p); err != nil {
		return "", fmt.Errorf("%s is missing from the shared data: %w", rel, err)
	}
	return p, nil
}

// Shared returns the path of rel inside the shared data; when it is not
// there, it skips t (fails it under CI) saying how to get it.
func Shared(t testing.TB, rel string) string {
	t.Helper()
	p, err := SharedPath(rel)
	if err != nil {
		Missing(t, err.Error(), getShared)
	}
	return p
}

// Tool returns the path of the program name; when it is not installed,
// it skips t (fails it under CI) with how, which says how to install it
// (such as "apt-get install squashfs-tools; scripts/test does").
func Tool(t testing.TB, name, how string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		Missing(t, name+" is not installed", how)
	}
	return p
}

// Missing ends t because something it needs is missing: a skip that says
// what and how to get it, or a failure under CI.
func Missing(t testing.TB, what, how string) {
	t.Helper()
	if CI() {
		t.Fatalf("%s (required under CI): %s", what, how)
	}
	t.Skipf("%s: %s (CI=1 makes this a failure)", what, how)
}

// MainMissing is Missing for a TestMain that cannot run any test: it
// prints what is missing and how to get it, and returns the exit code: 1
// under CI, 0 (no test run) otherwise.
func MainMissing(pkg, what, how string) int {
	if CI() {
		fmt.Fprintf(os.Stderr, "%s: %s (required under CI): %s\n", pkg, what, how)
		return 1
	}
	fmt.Fprintf(os.Stderr, "%s: skipping every test: %s: %s (CI=1 makes this a failure)\n", pkg, what, how)
	return 0
}
