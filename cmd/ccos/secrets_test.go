package main

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// A secret bound to one domain: the origin receives it on that domain
// only, from a plan that never held it; a plan that tries to read it,
// make an origin echo it, or send it elsewhere fails; it is in no output,
// error, chain event or decision log.
func TestRunSecrets(t *testing.T) {
	const secret = "s3cr3t-7d1e9b0c4a2f"
	t.Setenv("CCOS_TEST_API_TOKEN", secret)
	var mu sync.Mutex
	got := map[string][]string{}
	origin := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		host, _, _ := strings.Cut(r.Host, ":")
		mu.Lock()
		got[host] = append(got[host], r.Header.Get("Authorization"))
		mu.Unlock()
		if r.URL.Path == "/echo" {
			io.WriteString(w, "you sent: "+r.Header.Get("Authorization"))
			return
		}
		io.WriteString(w, "hello")
	}))
	defer origin.Close()
	received := func(host string) []string {
		mu.Lock()
		defer mu.Unlock()
		return append([]string(nil), got[host]...)
	}
	_, port, _ := net.SplitHostPort(origin.Listener.Addr().String())
	cfg := writeTemp(t, "net.rtfs", `(-> (profile:networked "agent.secret" ["api.test" "other.test"])
	  (assoc-in [:network :egress :mtls] false)
	  (assoc-in [:capabilities :http :egress :mtls] false)
	  (assoc :secrets [{:name "api" :domain "api.test" :header "Authorization" :prefix "Bearer " :env "CCOS_TEST_API_TOKEN"}]))`)
	dir := t.TempDir()
	chainFile, egressLog := filepath.Join(dir, "chain"), filepath.Join(dir, "egress.log")
	base := []string{"run", "--config", cfg, "--provider", "process", "--security-level", "full", "--chain", chainFile,
		"--egress-log", egressLog, "--egress-resolve", "api.test=127.0.0.1", "--egress-resolve", "other.test=127.0.0.1",
		"--egress-allow-range", "127.0.0.1/32"}
	plan := func(body string) string {
		return writeTemp(t, "p.rtfs", `(plan "p" :body (step "call" [:effects [[:network {:domains ["api.test" "other.test"] :methods [:GET :POST]}]]] `+body+`))`)
	}
	fetch := func(host, path, opts string) string {
		return fmt.Sprintf(`(call :ccos.network.http-fetch "http://%s:%s%s"%s)`, host, port, path, opts)
	}
	// Plans that never hold the secret record into chainFile; those that
	// hold it (the test writes it in them, as if it had leaked) into
	// another chain, and their output is not checked.
	var everything strings.Builder
	run := func(body string) (string, string, int) {
		out, errOut, code := runCCOS(t, "", append(base, plan(body))...)
		everything.WriteString(out + errOut)
		return out, errOut, code
	}
	leakChain := filepath.Join(dir, "leak.chain")
	runLeak := func(body string) (string, string, int) {
		args := append([]string(nil), base...)
		args = append(args, "--chain", leakChain, plan(body))
		return runCCOS(t, "", args...)
	}

	out, errOut, code := run(`(get ` + fetch("api.test", "/", "") + ` :body)`)
	if code != 0 || strings.TrimSpace(out) != `"hello"` {
		t.Fatalf("allowed: exit %d %q %s", code, out, errOut)
	}
	if r := received("api.test"); len(r) != 1 || r[0] != "Bearer "+secret {
		t.Errorf("api.test received %q", r)
	}
	if _, errOut, code := run(fetch("other.test", "/", "")); code != 0 {
		t.Fatalf("other domain: exit %d %s", code, errOut)
	}
	if r := received("other.test"); len(r) != 1 || r[0] != "" {
		t.Errorf("other.test received %q", r)
	}

	if out, errOut, code := run(`(get ` + fetch("api.test", "/echo", "") + ` :body)`); code != 1 || !strings.Contains(errOut, "secret_echo") {
		t.Errorf("echoed back by the origin: exit %d\n%s\n%s", code, out, errOut)
	}
	for _, tc := range []struct{ name, body, want string }{
		{"sent to another domain", fetch("other.test", "/", ` {:method "POST" :body "`+secret+`"}`), "secret_leak"},
		{"sent in a header to another domain", fetch("other.test", "/", ` {:headers {"x-token" "`+secret+`"}}`), "secret_leak"},
		{"sent in the URL", fetch("api.test", "/?k="+secret, ""), "secret_leak"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := len(received("other.test"))
			out, errOut, code := runLeak(tc.body)
			if code != 1 || !strings.Contains(errOut, tc.want) {
				t.Errorf("exit %d\n%s\n%s", code, out, errOut)
			}
			if tc.want == "secret_leak" && len(received("other.test")) != before {
				t.Errorf("the leaking request reached the origin")
			}
		})
	}
	// Reading it: get-env reads only what :capabilities :env names, and a
	// config that names a secret's variable there is refused.
	getEnv := writeTemp(t, "getenv.rtfs", `(step "read" (call :ccos.system.get-env "CCOS_TEST_API_TOKEN"))`)
	if _, errOut, code := runCCOS(t, "", append(base, getEnv)...); code != 1 || !strings.Contains(errOut, "ENV_NOT_CONFIGURED") {
		t.Errorf("get-env: exit %d %s", code, errOut)
	}
	readable := writeTemp(t, "readable.rtfs", `(-> (profile:networked "agent.secret" ["api.test"])
	  (assoc-in [:capabilities :env] {:enabled true :vars ["CCOS_TEST_API_TOKEN"]})
	  (assoc :secrets [{:name "api" :domain "api.test" :header "Authorization" :env "CCOS_TEST_API_TOKEN"}]))`)
	if _, errOut, code := runCCOS(t, "", "run", "--config", readable, plan(`1`)); code != 1 || !strings.Contains(errOut, "SECRET_READABLE") {
		t.Errorf("config letting plans read the secret: exit %d %s", code, errOut)
	}
	// An unset variable is an error naming it, at load.
	unset := writeTemp(t, "unset.rtfs", `(-> (profile:networked "agent.secret" ["api.test"])
	  (assoc :secrets [{:name "api" :domain "api.test" :header "Authorization" :env "CCOS_TEST_UNSET_TOKEN"}]))`)
	if _, errOut, code := runCCOS(t, "", "run", "--config", unset, plan(`1`)); code != 1 || !strings.Contains(errOut, "CCOS_TEST_UNSET_TOKEN is not set") {
		t.Errorf("unset secret: exit %d %s", code, errOut)
	}

	shown, _, _ := runCCOS(t, "", "chain", "show", chainFile)
	if !strings.Contains(shown, `:secrets ["api"]`) {
		t.Errorf("no decision in the chain names the injected secret:\n%s", shown)
	}
	raw, _ := os.ReadFile(chainFile)
	logText, _ := os.ReadFile(egressLog)
	for what, text := range map[string]string{"chain": string(raw) + shown, "egress log": string(logText), "output": everything.String()} {
		if strings.Contains(text, secret) {
			t.Errorf("the %s holds the secret", what)
		}
	}
}
