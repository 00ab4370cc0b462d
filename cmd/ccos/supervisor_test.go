package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/ccos-project/ccos/supervisor"
	"github.com/ccos-project/ccos/supervisor/client"
)

// The supervisor serves plans from a warm pool of process sandboxes,
// reports its health and stops cleanly on SIGTERM, removing its socket.
func TestSupervisorServesPlans(t *testing.T) {
	dir := t.TempDir()
	sock := filepath.Join(dir, "sup.sock")
	chainFile := filepath.Join(dir, "chain.log")
	cmd := exec.Command(ccosBin, "supervisor", "--socket", sock, "--state", filepath.Join(dir, "state"), "--provider", "process", "--pool", "1", "--chain", chainFile)
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
		out, errOut, code = runCCOS(t, "", "supervisor", "submit", plan, "--socket", sock, "--wait", "--json")
		if code != 0 || !strings.Contains(out, `"value": "42"`) || !strings.Contains(out, `"status": "succeeded"`) {
			t.Fatalf("submit %d: %d %s %s", i, code, out, errOut)
		}
	}
	bad := writeTemp(t, "bad.rtfs", `(plan "net" :body (step "f" (call :ccos.network.http-fetch "https://example.com")))`)
	if _, errOut, code = runCCOS(t, "", "supervisor", "submit", bad, "--socket", sock); code != 1 || !strings.Contains(errOut, "ISOLATION_REQUIRED") {
		t.Errorf("unadmitted plan: %d %s", code, errOut)
	}
	// A second supervisor on the same socket is refused.
	if _, errOut, code = runCCOS(t, "", "supervisor", "--socket", sock, "--state", filepath.Join(dir, "state2"), "--provider", "process"); code != 1 || !strings.Contains(errOut, "already listening") {
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

// The supervisor is killed with SIGKILL at random points while it runs
// side-effecting plans (each POSTs once to a loopback origin through the
// egress proxy), and started again, 20 times. No accepted run is lost, no
// POST is ever sent twice, and a run whose POST may have been sent but was
// not recorded as done ends in_doubt, saying so.
func TestSupervisorSIGKILL(t *testing.T) {
	var mu sync.Mutex
	posts := map[string]int{}
	origin := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		posts[string(b)]++
		mu.Unlock()
		io.WriteString(w, "ok")
	}))
	defer origin.Close()
	_, port, _ := net.SplitHostPort(origin.Listener.Addr().String())
	dir := t.TempDir()
	cfg := writeTemp(t, "net.rtfs", `(-> (profile:networked "agent.kill" ["origin.test"])
	  (assoc-in [:network :egress :mtls] false)
	  (assoc-in [:capabilities :http :egress :mtls] false))`)
	sock := filepath.Join(dir, "s.sock")
	args := []string{"supervisor", "--config", cfg, "--socket", sock, "--state", filepath.Join(dir, "state"), "--provider", "process",
		"--pool", "1", "--security-level", "full", "--egress-resolve", "origin.test=127.0.0.1", "--egress-allow-range", "127.0.0.1/32"}
	var logs bytes.Buffer
	start := func() *exec.Cmd {
		cmd := exec.Command(ccosBin, args...)
		cmd.Stderr = &logs
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		c := client.Unix(sock)
		for i := 0; i < 300; i++ {
			if _, err := c.Health(context.Background()); err == nil {
				return cmd
			}
			time.Sleep(20 * time.Millisecond)
		}
		cmd.Process.Kill()
		t.Fatalf("the supervisor did not start:\n%s", logs.String())
		return nil
	}
	planOf := func(id string) string {
		return fmt.Sprintf(`(plan "post" :body [
		  (step "post" [:effects [[:network {:domains ["origin.test"] :methods [:POST]}]]]
		    (get (call :ccos.network.http-fetch "http://origin.test:%s/p" {:method "POST" :body %q}) :body))
		  (step "after" (loop [i 0] (if (< i 20000) (recur (inc i)) i)))])`, port, id)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	var accepted []string
	n := 0
	for round := 0; round < 20; round++ {
		cmd := start()
		c := client.Unix(sock)
		var wg sync.WaitGroup
		var amu sync.Mutex
		for i := 0; i < 4; i++ {
			n++
			id := fmt.Sprintf("call-%d", n)
			wg.Add(1)
			go func() {
				defer wg.Done()
				r, err := c.Submit(context.Background(), "agent.kill", supervisor.Submission{Plan: planOf(id)})
				if err == nil {
					amu.Lock()
					accepted = append(accepted, r.ID)
					amu.Unlock()
				}
			}()
		}
		time.Sleep(time.Duration(rng.IntN(400)) * time.Millisecond)
		cmd.Process.Kill()
		cmd.Wait()
		wg.Wait()
	}
	// A last supervisor finishes everything that was accepted.
	cmd := start()
	defer func() {
		cmd.Process.Signal(syscall.SIGTERM)
		cmd.Wait()
	}()
	c := client.Unix(sock)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	counts := map[supervisor.Status]int{}
	for _, id := range accepted {
		r, err := c.Wait(ctx, id)
		if err != nil {
			t.Fatalf("accepted run %s: %v\n%s", id, err, logs.String())
		}
		counts[r.Status]++
		switch r.Status {
		case supervisor.StatusSucceeded:
		case supervisor.StatusInDoubt:
			if len(r.InDoubt) == 0 {
				t.Errorf("run %s is in doubt and names no call", id)
			}
		default:
			t.Errorf("run %s: %s %s %+v", id, r.Status, r.Failure, r.Error)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	for body, k := range posts {
		if k > 1 {
			t.Errorf("%s was POSTed %d times", body, k)
		}
	}
	if len(accepted) < 20 {
		t.Errorf("only %d runs were accepted in 20 rounds", len(accepted))
	}
	t.Logf("%d runs accepted: %v; %d distinct POSTs", len(accepted), counts, len(posts))
}
