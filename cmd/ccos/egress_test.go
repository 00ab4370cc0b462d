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
		// Computed URLs and methods: admission cannot read them, the
		// step's grant refuses them.
		{"domain outside the step's ACL", `(call :ccos.network.http-fetch (str "` + fmt.Sprintf("http://other.test:%s/", port) + `"))`, withRange, "other.test"},
		{"allowlisted name resolving to loopback", `(call :ccos.network.http-fetch "` + url + `")`, base, "loopback"},
		{"secret in the body", `(call :ccos.network.http-fetch "` + url + `" {:method "GET" :body "{\"key\": \"AKIAQYLPMN5HHHFPZAM2\"}"})`, withRange, "aws-access-token"},
		{"method the step did not declare", `(call :ccos.network.http-fetch "` + url + `" {:method (str "DEL" "ETE")})`, withRange, "DELETE"},
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

// Literal URLs are read at admission: inside the allowlist a plan needs
// no :effects and runs; outside it is refused before anything runs,
// naming the step, the domain and the rule; a computed URL without
// declared effects is refused as such. ccos plan check shows what was
// derived and from where.
func TestRunLiteralURLs(t *testing.T) {
	var hits []string
	origin := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits = append(hits, r.Host)
		io.WriteString(w, "fetched")
	}))
	defer origin.Close()
	_, port, _ := net.SplitHostPort(origin.Listener.Addr().String())
	cfg := writeTemp(t, "net.rtfs", `(-> (profile:networked "agent.lit" ["api.test"])
	  (assoc-in [:network :egress :mtls] false)
	  (assoc-in [:capabilities :http :egress :mtls] false))`)
	args := []string{"--config", cfg, "--security-level", "full"}
	run := append([]string{"run", "--provider", "process", "--egress-resolve", "api.test=127.0.0.1", "--egress-resolve", "evil.test=127.0.0.1",
		"--egress-allow-range", "127.0.0.1/32"}, args...)

	allowed := writeTemp(t, "ok.rtfs", fmt.Sprintf(`(step "get" (get (call :ccos.network.http-fetch "http://api.test:%s/x") :body))`, port))
	out, errOut, code := runCCOS(t, "", append(run, allowed)...)
	if code != 0 || strings.TrimSpace(out) != `"fetched"` || len(hits) != 1 {
		t.Fatalf("a literal URL inside the allowlist: exit %d %q %s %v", code, out, errOut, hits)
	}
	out, _, code = runCCOS(t, "", append(append([]string{"plan", "check"}, args...), allowed)...)
	if code != 0 || !strings.Contains(out, `ok.rtfs:1:18: step "get": :network api.test GET from :ccos.network.http-fetch's url`) {
		t.Errorf("plan check does not show the derivation: exit %d\n%s", code, out)
	}

	outside := writeTemp(t, "evil.rtfs", fmt.Sprintf(`(step "get" (call :ccos.network.http-fetch "http://evil.test:%s/"))`, port))
	_, errOut, code = runCCOS(t, "", append(run, outside)...)
	if code != 1 || !strings.Contains(errOut, `evil.rtfs:1:13: DOMAIN_NOT_ALLOWED: step "get"`) || !strings.Contains(errOut, "evil.test") || len(hits) != 1 {
		t.Errorf("a literal URL outside the allowlist: exit %d %s %v", code, errOut, hits)
	}

	computed := writeTemp(t, "computed.rtfs", fmt.Sprintf(`(step "get" (call :ccos.network.http-fetch (str "http://api.test:" "%s/")))`, port))
	_, errOut, code = runCCOS(t, "", append(run, computed)...)
	if code != 1 || !strings.Contains(errOut, `COMPUTED_TARGET: step "get"`) || len(hits) != 1 {
		t.Errorf("a computed URL without effects: exit %d %s", code, errOut)
	}
}
