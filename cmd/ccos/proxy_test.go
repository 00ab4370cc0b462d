package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// proxyProc is a running `ccos proxy`.
type proxyProc struct {
	addr, metrics string
	mu            sync.Mutex
	logs          strings.Builder
}

func (p *proxyProc) log() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.logs.String()
}

// startProxy runs ccos proxy with args and waits for its listening lines.
func startProxy(t *testing.T, args ...string) *proxyProc {
	t.Helper()
	cmd := exec.Command(ccosBin, append([]string{"proxy", "--listen", "127.0.0.1:0", "--metrics", "127.0.0.1:0"}, args...)...)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	p := &proxyProc{}
	withControl := slices.Contains(args, "--control")
	ready, exited := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(exited)
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			line := sc.Text()
			p.mu.Lock()
			p.logs.WriteString(line + "\n")
			var rec struct{ Msg, Addr string }
			_ = json.Unmarshal([]byte(line), &rec)
			switch rec.Msg {
			case "ccos proxy listening":
				p.addr = rec.Addr
			case "ccos proxy metrics":
				p.metrics = rec.Addr
				if !withControl {
					close(ready)
				}
			case "ccos proxy control":
				// The control socket comes up after the metrics listener.
				close(ready)
			}
			p.mu.Unlock()
		}
	}()
	select {
	case <-ready:
	case <-exited:
		t.Fatalf("ccos proxy exited:\n%s", p.log())
	case <-time.After(20 * time.Second):
		t.Fatalf("ccos proxy did not start:\n%s", p.log())
	}
	return p
}

func TestProxyCommand(t *testing.T) {
	origin := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		fmt.Fprintf(w, "origin %s %s", r.Method, b)
	}))
	defer origin.Close()
	ou, _ := url.Parse(origin.URL)
	cfg := writeTemp(t, "agent.rtfs", `(agent.config :version "0.1" :agent-id "agent.proxy" :features [:network]
  :orchestrator {:dlp {:enabled true :policy :strict}}
  :capabilities {:http {:enabled true :egress {:allow-domains ["origin.example.com"]}}}
  :network {:enabled true :egress {:via :proxy :allow-domains ["origin.example.com"]}})`)
	ctl := filepath.Join(t.TempDir(), "control.sock")
	p := startProxy(t, "--config", cfg, "--allow-range", "127.0.0.0/8", "--resolve", "origin.example.com=127.0.0.1", "--methods", "GET,POST", "--control", "unix:"+ctl)
	pu, _ := url.Parse("http://" + p.addr)
	c := &http.Client{Transport: &http.Transport{Proxy: http.ProxyURL(pu)}, Timeout: 10 * time.Second}
	do := func(method, u, body string) (int, string) {
		t.Helper()
		req, _ := http.NewRequest(method, u, strings.NewReader(body))
		resp, err := c.Do(req)
		if err != nil {
			t.Fatalf("%s %s: %v", method, u, err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if status, body := do("POST", "http://origin.example.com:"+ou.Port()+"/", "hello"); status != 200 || body != "origin POST hello" {
		t.Errorf("allowed: %d %q", status, body)
	}
	if status, body := do("GET", "http://example.invalid:"+ou.Port()+"/", ""); status != 403 || !strings.Contains(body, "domain_not_allowed") {
		t.Errorf("denied domain: %d %q", status, body)
	}
	if status, _ := do("DELETE", "http://origin.example.com:"+ou.Port()+"/", ""); status != 403 {
		t.Errorf("denied method: %d", status)
	}
	if status, body := do("POST", "http://origin.example.com:"+ou.Port()+"/", "key AKIAQYLPMN5HHHFPZAM2"); status != 403 || !strings.Contains(body, "aws-access-token") {
		t.Errorf("DLP: %d %q", status, body)
	}
	// The host programs a step through the control socket: only GET now.
	// The proxy may announce its listeners before the control socket.
	for end := time.Now().Add(10 * time.Second); time.Now().Before(end); time.Sleep(20 * time.Millisecond) {
		if _, err := os.Stat(ctl); err == nil {
			break
		}
	}
	cc := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "unix", ctl)
	}}}
	req, _ := http.NewRequest("PUT", "http://ccos/v1/agents/agent.proxy/step", strings.NewReader(`{"step":"read","domains":["origin.example.com"],"methods":["GET"]}`))
	if resp, err := cc.Do(req); err != nil || resp.StatusCode != 204 {
		t.Fatalf("programming a step: %v %v", resp, err)
	}
	if fi, err := os.Stat(ctl); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("control socket mode: %v %v", fi.Mode(), err)
	}
	if status, body := do("POST", "http://origin.example.com:"+ou.Port()+"/", "hello"); status != 403 || !strings.Contains(body, "step_method_not_allowed") {
		t.Errorf("POST during a GET-only step: %d %q", status, body)
	}
	resp, err := http.Get("http://" + p.metrics + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	m, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(m), `ccos_egress_decisions_total{action="deny",agent="agent.proxy",rule="dlp"} 1`) {
		t.Errorf("metrics:\n%s", m)
	}
	if n := strings.Count(p.log(), `"msg":"egress decision"`); n != 5 {
		t.Errorf("%d decision lines, want 5:\n%s", n, p.log())
	}
}

func TestProxyCommandErrors(t *testing.T) {
	// The network is on only with the :http capability (config.Config.Egress).
	cfg := writeTemp(t, "agent.rtfs", `(agent.config :version "0.1" :agent-id "a" :features [:network]
  :capabilities {:http {:enabled true :egress {:allow-domains ["api.example.com"]}}}
  :network {:enabled true :egress {:via :proxy :allow-domains ["api.example.com"] :mtls true}})`)
	for _, c := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"proxy", "--listen", "127.0.0.1:0"}, 2, "config"},
		{[]string{"proxy", "--config", cfg, "--listen", "127.0.0.1:0"}, 2, "--client-cert"},
		{[]string{"proxy", "--config", cfg, "--listen", "127.0.0.1:0", "--mode", "loose"}, 2, "enforce or report"},
		{[]string{"proxy", "--config", cfg, "--listen", "127.0.0.1:0", "--control", "127.0.0.1:0"}, 2, "unix:/path"},
		{[]string{"proxy", "--config", writeTemp(t, "bad.rtfs", "(agent.config :version \"9\")"), "--listen", "127.0.0.1:0"}, 1, "not a valid agent config"},
	} {
		_, stderr, code := runCCOS(t, "", c.args...)
		if code != c.code || !strings.Contains(stderr, c.want) {
			t.Errorf("%v: exit %d, stderr %q", c.args, code, stderr)
		}
	}
}
