package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// runCCOSBounded is runCCOS for commands that used to hang: a run that
// does not end within a minute is reported (and killed) instead of holding
// the test binary until its own timeout.
func runCCOSBounded(t *testing.T, stdin string, args ...string) (string, string, int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, ccosBin, args...)
	cmd.Stdin = strings.NewReader(stdin)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	if ctx.Err() != nil {
		t.Fatalf("ccos %v did not end: %v", args, ctx.Err())
	}
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return out.String(), errb.String(), ee.ExitCode()
	}
	if err != nil {
		t.Fatalf("running ccos %v: %v", args, err)
	}
	return out.String(), errb.String(), 0
}

// TestInputsAreBounded: the commands that read a config or a plan refuse a
// named pipe (which used to hang) and a device such as /dev/zero (which used
// to be read until memory ran out), and an input over the bound, naming
// the problem; "-" still reads standard input.
func TestInputsAreBounded(t *testing.T) {
	dir := t.TempDir()
	fifo := filepath.Join(dir, "fifo.rtfs")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	huge := filepath.Join(dir, "huge.rtfs")
	if err := os.WriteFile(huge, bytes.Repeat([]byte(";; padding\n"), 500_000), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name string
		args []string
		want string
	}{
		{"config from a FIFO", []string{"config", "validate", fifo}, "is a named pipe (FIFO), not a regular file; give a regular file, or - to read standard input"},
		{"config from /dev/zero", []string{"config", "validate", "/dev/zero"}, "/dev/zero: it is a character device, not a regular file"},
		{"expand from /dev/zero", []string{"config", "expand", "/dev/zero"}, "character device"},
		{"plan from a FIFO", []string{"plan", "check", fifo}, "named pipe"},
		{"plan from /dev/zero", []string{"plan", "check", "/dev/zero"}, "character device"},
		{"run's config from /dev/zero", []string{"run", "--config", "/dev/zero", "../../examples/plans/hello.rtfs"}, "character device"},
		{"run's plan from a FIFO", []string{"run", fifo}, "named pipe"},
		{"parse from /dev/zero", []string{"parse", "/dev/zero"}, "character device"},
		{"approval from /dev/zero", []string{"plan", "check", "--approval", "/dev/zero", "../../examples/plans/hello.rtfs"}, "character device"},
		{"config over the bound", []string{"config", "validate", huge}, "5.2 MiB, over the limit of 4 MiB"},
		{"plan over the bound", []string{"plan", "check", huge}, "5.2 MiB, over the limit of"},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, errOut, code := runCCOSBounded(t, "", c.args...)
			if code != 1 || !strings.Contains(errOut, c.want) {
				t.Fatalf("code %d, stderr %q; want 1 and %q", code, errOut, c.want)
			}
		})
	}
	// Standard input is read with the same bound.
	_, errOut, code := runCCOSBounded(t, strings.Repeat(";; padding\n", 500_000), "config", "validate", "-")
	if code != 1 || !strings.Contains(errOut, "<stdin>: more than 4 MiB") {
		t.Fatalf("large stdin: %d %q", code, errOut)
	}
	out, errOut, code := runCCOSBounded(t, readExample(t), "config", "validate", "-")
	if code != 0 || !strings.Contains(out, "valid") {
		t.Fatalf("config from stdin: %d %q %q", code, out, errOut)
	}
}

// TestHugeConfigValidates: a 3 MB (agent.config ...) with 200,000 keys is
// validated (every key reported as unknown, the report capped) instead of
// keeping the validator busy for minutes. BenchmarkLoadManyKeys in config
// measures it.
func TestHugeConfigValidates(t *testing.T) {
	var b strings.Builder
	b.WriteString(`(agent.config :version "0.1" :agent-id "agent.big"`)
	for i := range 200_000 {
		fmt.Fprintf(&b, " :k%06d %d", i, i)
	}
	b.WriteString(")\n")
	path := writeTemp(t, "big.rtfs", b.String())
	_, errOut, code := runCCOSBounded(t, "", "config", "validate", path)
	if code != 1 || !strings.Contains(errOut, "UNKNOWN_KEY: unknown key :k000000 in the top-level map") {
		t.Fatalf("code %d, stderr starts %.300q", code, errOut)
	}
	if n := strings.Count(errOut, "\n"); n > 1000 {
		t.Errorf("%d diagnostic lines: the report should be capped", n)
	}
}
