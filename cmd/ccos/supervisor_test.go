package main

import (
	"bytes"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// The supervisor serves plans from a warm pool of process sandboxes,
// reports its health and stops cleanly on SIGTERM, removing its socket.
func TestSupervisorServesPlans(t *testing.T) {
	dir := t.TempDir()
	sock := filepath.Join(dir, "sup.sock")
	chainFile := filepath.Join(dir, "chain.log")
	cmd := exec.Command(ccosBin, "supervisor", "--socket", sock, "--provider", "process", "--pool", "1", "--chain", chainFile)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	var out, errOut string
	var code int
	for i := 0; i < 100; i++ {
		out, errOut, code = runCCOS(t, "", "supervisor", "health", "--socket", sock)
		if code == 0 {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if code != 0 || !strings.Contains(out, `"status": "ok"`) || !strings.Contains(out, `"provider": "process"`) {
		t.Fatalf("health: %d %s %s\nsupervisor log:\n%s", code, out, errOut, stderr.String())
	}
	plan := writeTemp(t, "p.rtfs", `(plan "sum" :body (step "add" (call :ccos.math.add 40 2)))`)
	for i := 0; i < 2; i++ {
		out, errOut, code = runCCOS(t, "", "supervisor", "submit", plan, "--socket", sock)
		if code != 0 || !strings.Contains(out, `"value": "42"`) {
			t.Fatalf("submit %d: %d %s %s", i, code, out, errOut)
		}
	}
	if !strings.Contains(out, `"admission_cache_hit": true`) {
		t.Errorf("the second submission was admitted again: %s", out)
	}
	bad := writeTemp(t, "bad.rtfs", `(plan "net" :body (step "f" (call :ccos.network.http-fetch "https://example.com")))`)
	if out, _, code = runCCOS(t, "", "supervisor", "submit", bad, "--socket", sock); code != 1 || !strings.Contains(out, "not-admitted") {
		t.Errorf("unadmitted plan: %d %s", code, out)
	}
	// A second supervisor on the same socket is refused.
	if _, errOut, code = runCCOS(t, "", "supervisor", "--socket", sock, "--provider", "process"); code != 1 || !strings.Contains(errOut, "already listening") {
		t.Errorf("second supervisor: %d %s", code, errOut)
	}
	cmd.Process.Signal(syscall.SIGTERM)
	if err := cmd.Wait(); err != nil {
		t.Fatalf("supervisor exit: %v\n%s", err, stderr.String())
	}
	if _, _, code = runCCOS(t, "", "supervisor", "health", "--socket", sock); code == 0 {
		t.Error("health answered after stop")
	}
	// No --chain-key: the chain is linked but not signed.
	if out, errOut, code = runCCOS(t, "", "chain", "verify", chainFile, "--allow-unsigned-tail"); code != 0 {
		t.Errorf("chain verify: %s %s", out, errOut)
	}
}
