package main

import (
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ccos-project/ccos/supervisor"
	"github.com/ccos-project/ccos/supervisor/client"
)

// ccos supervisor serves the web console on its socket, and with
// --chain-key its chain verification checks checkpoint signatures.
func TestSupervisorConsole(t *testing.T) {
	dir := t.TempDir()
	sock := filepath.Join(dir, "sup.sock")
	key := filepath.Join(dir, "chain.key")
	if _, stderr, code := runCCOS(t, "", "chain", "keygen", "ccos.test/console", "--out", key); code != 0 {
		t.Fatalf("keygen: %d %s", code, stderr)
	}
	cmd := exec.Command(ccosBin, "supervisor", "--socket", sock, "--state", filepath.Join(dir, "state"), "--provider", "process", "--pool", "0",
		"--chain", filepath.Join(dir, "chain.log"), "--chain-key", key)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	c := client.Unix(sock)
	ctx := context.Background()
	var err error
	for i := 0; i < 100; i++ {
		if _, err = c.Health(ctx); err == nil {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil {
		t.Fatalf("health: %v\n%s", err, stderr.String())
	}
	r, err := c.Submit(ctx, "agent.default", supervisor.Submission{Plan: `(step "s" (call :ccos.math.add 1 2))`})
	if err == nil {
		r, err = c.Wait(ctx, r.ID)
	}
	if err != nil || r.Status != supervisor.StatusSucceeded || r.Checkpoint == "" {
		t.Fatalf("run: %v %+v", err, r)
	}
	v, err := c.VerifyChain(ctx, "agent.default")
	if err != nil || !v.OK || !v.SignaturesChecked || v.Checkpoints != 1 {
		t.Errorf("verify: %v %+v", err, v)
	}
	p, err := c.ProveEvent(ctx, "agent.default", 0)
	if err != nil || !p.Verified || !p.SignatureChecked || p.Event.Session != r.ID {
		t.Errorf("proof: %v %+v", err, p)
	}
	hc := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "unix", sock)
	}}}
	resp, err := hc.Get("http://supervisor/ui/")
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(page), "ccos console") {
		t.Errorf("GET /ui/: %d %s", resp.StatusCode, page)
	}
	cmd.Process.Signal(syscall.SIGTERM)
	cmd.Wait()
}
