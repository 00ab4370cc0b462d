package main

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// A plan fetches from an allowlisted origin through the egress proxy, the
// decision is in the causal chain, and the proxy's refusals reach the plan
// as errors: a domain outside the step's ACL, a name that resolves to a
// refused address, a secret in the body, a method the step did not declare.
func TestRunFetchThroughEgressProxy(t *testing.T) {
	var hits []string
	origin := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		hits = append(hits, r.Method+" "+r.Host+r.URL.Path+" "+string(b))
		w.Header().Set("Content-Type", "text/plain")
		io.WriteString(w, "hello from the origin")
	}))
	defer origin.Close()
	_, port, _ := net.SplitHostPort(origin.Listener.Addr().String())
	cfg := writeTemp(t, "net.rtfs", `(-> (profile:networked "agent.fetch" ["origin.test" "other.test"])
	  (assoc-in [:network :egress :mtls] false)
	  (assoc-in [:capabilities :http :egress :mtls] false)
	  (assoc-in [:orchestrator :dlp] {:enabled true :policy :strict}))`)
	step := func(body string) string {
		return writeTemp(t, "p.rtfs", `(plan "fetch" :body (step "get" [:effects [[:network {:domains ["origin.test"] :methods [:GET]}]]] `+body+`))`)
	}
	dir := t.TempDir()
	chainFile := dir + "/chain"
	base := []string{"run", "--config", cfg, "--provider", "process", "--security-level", "full", "--chain", chainFile,
		"--egress-resolve", "origin.test=127.0.0.1", "--egress-resolve", "other.test=127.0.0.1"}
	withRange := append(append([]string(nil), base...), "--egress-allow-range", "127.0.0.1/32")

	url := fmt.Sprintf("http://origin.test:%s/data", port)
	out, errOut, code := runCCOS(t, "", append(withRange, step(`(get (call :ccos.network.http-fetch "`+url+`") :body)`))...)
	if code != 0 || strings.TrimSpace(out) != `"hello from the origin"` {
		t.Fatalf("allowed fetch: exit %d, %q, %s", code, out, errOut)
	}
	if len(hits) != 1 || !strings.HasPrefix(hits[0], "GET origin.test:"+port+"/data") {
		t.Errorf("the origin saw %v", hits)
	}
	shown, _, _ := runCCOS(t, "", "chain", "show", chainFile)
	if !strings.Contains(shown, "proxy.decision") || !strings.Contains(shown, ":action :allow") {
		t.Errorf("no allow decision in the chain:\n%s", shown)
	}

	for _, tc := range []struct {
		name, body string
		args       []string
		want       string
	}{
		{"domain outside the step's ACL", `(call :ccos.network.http-fetch "` + fmt.Sprintf("http://other.test:%s/", port) + `")`, withRange, "other.test"},
		{"allowlisted name resolving to loopback", `(call :ccos.network.http-fetch "` + url + `")`, base, "loopback"},
		{"secret in the body", `(call :ccos.network.http-fetch "` + url + `" {:method "GET" :body "{\"key\": \"AKIAQYLPMN5HHHFPZAM2\"}"})`, withRange, "aws-access-token"},
		{"method the step did not declare", `(call :ccos.network.http-fetch "` + url + `" {:method "DELETE"})`, withRange, "DELETE"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := len(hits)
			_, errOut, code := runCCOS(t, "", append(tc.args, step(tc.body))...)
			if code != 1 || !strings.Contains(errOut, "egress") || !strings.Contains(errOut, tc.want) {
				t.Errorf("exit %d, stderr %s", code, errOut)
			}
			if len(hits) != before {
				t.Errorf("the origin was reached: %v", hits[before:])
			}
		})
	}
	shown, _, _ = runCCOS(t, "", "chain", "show", chainFile)
	if n := strings.Count(shown, ":action :deny"); n != 4 {
		t.Errorf("%d deny decisions in the chain, want 4:\n%s", n, shown)
	}
}

// Without a network in the config, http-fetch is refused at admission, and
// even a dynamic call finds no way out.
func TestRunFetchWithoutNetwork(t *testing.T) {
	p := writeTemp(t, "p.rtfs", `(plan "f" :body (step "get" (call :ccos.network.http-fetch "http://example.com/")))`)
	if _, errOut, code := runCCOS(t, "", "run", "--provider", "process", p); code != 1 || !strings.Contains(errOut, "not admitted") {
		t.Errorf("exit %d: %s", code, errOut)
	}
}
