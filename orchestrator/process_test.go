package orchestrator

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ccos-project/ccos/capability"
	"github.com/ccos-project/ccos/rtfs"
	"github.com/ccos-project/ccos/sandbox"
	"github.com/ccos-project/ccos/sandbox/process"
)

// runInProcess runs src in the process sandbox, with attack (if not empty)
// telling the guest how to misbehave.
func runInProcess(t *testing.T, src, attack string) (*Report, error) {
	t.Helper()
	prov := &process.Provider{}
	if ok, why := prov.Available(); !ok {
		t.Fatalf("the process provider must run on this machine: %s", why)
	}
	dir := t.TempDir()
	if attack != "" {
		if err := os.WriteFile(filepath.Join(dir, "attack"), []byte(attack), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	caps := capability.Builtins(nil)
	p, a := admit(t, src, caps)
	return Run(context.Background(), Request{
		Plan: p, Admission: a, Provider: prov, Caps: caps,
		Spec: sandbox.Spec{CapabilitiesDir: dir, Limits: sandbox.Limits{Deadline: 60 * time.Second}},
	})
}

// Hostile guests inside a real process sandbox: each breaks the protocol
// and is contained with a clear error; the next run works.
func TestHostileGuestsInProcessSandbox(t *testing.T) {
	tests := []struct{ attack, want string }{
		{"oversize", "frame too large"},
		{"exec", `unknown message type "exec"`},
		{"garbage", "bad envelope"},
		{"unadmitted", `step "exfiltrate", which was not admitted`},
		{"exit", "closed the control channel before reporting a result"},
	}
	for _, tc := range tests {
		t.Run(tc.attack, func(t *testing.T) {
			_, err := runInProcess(t, `(step "s" 1)`, tc.attack)
			if !errors.Is(err, ErrGuest) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("got %v, want a guest failure containing %q", err, tc.want)
			}
		})
	}
	// 64 MiB of output (4 under the race detector): the host keeps 1 MiB, says it cut the rest, and
	// still gets the value.
	rep, err := runInProcess(t, `(step "s" 1)`, "flood")
	if err != nil {
		t.Fatal(err)
	}
	if !rep.Truncated || len(rep.Output) != 1<<20 || rtfs.Print(rep.Value) != ":flooded" {
		t.Errorf("flood: truncated %v, kept %d bytes, value %v", rep.Truncated, len(rep.Output), rep.Value)
	}
	rep, err = runInProcess(t, `(step "s" (call :ccos.math.add 40 2))`, "")
	if err != nil || rtfs.Print(rep.Value) != "42" {
		t.Errorf("normal run after the attacks: %v %v", rep, err)
	}
}

// A step that declares a time limit is stopped by the host when it runs
// past it, whatever the guest does.
func TestStepTimeLimit(t *testing.T) {
	_, err := runInProcess(t, `(step "spin" [:resources {:max_time_ms 200}] (loop [i 0] (recur (inc i))))`, "")
	if !errors.Is(err, ErrStepTimeout) || !strings.Contains(err.Error(), `step "spin" exceeded its time limit of 200 ms`) {
		t.Fatalf("got %v", err)
	}
	rep, err := runInProcess(t, `(step "quick" [:resources {:max_time_ms 5000}] (call :ccos.echo 1))`, "")
	if err != nil || rtfs.Print(rep.Value) != "1" {
		t.Errorf("step within its limit: %v %v", rep, err)
	}
}
