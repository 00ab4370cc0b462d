package egress

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestControlAPI(t *testing.T) {
	o := newOrigin(t)
	p := basePolicy()
	p.Methods = []string{"GET", "POST"}
	h := newHarness(t, p, Options{})
	ctl := httptest.NewServer(h.px.ControlHandler())
	defer ctl.Close()
	call := func(method, path, body string) (int, string) {
		t.Helper()
		req, _ := http.NewRequest(method, ctl.URL+path, strings.NewReader(body))
		resp, err := ctl.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	for _, c := range []struct {
		method, path, body string
		status             int
	}{
		{"PUT", "/v1/agents/agent.test/step", `{"step":"fetch","domains":["allowed.example"],"methods":["GET"]}`, 204},
		{"GET", "/v1/agents/agent.test/step", "", 200},
		{"PUT", "/v1/agents/agent.test/step", `{"step":"x","domains":["evil.example"]}`, 409},
		{"PUT", "/v1/agents/agent.test/step", `{"step":"x","domains":[],"sneaky":1}`, 400},
		{"PUT", "/v1/agents/agent.test/step", `{"step":"x","ranges":["nonsense"]}`, 400},
		{"PUT", "/v1/agents/nobody/step", `{"step":"x"}`, 404},
		{"DELETE", "/v1/agents/nobody/step", "", 404},
	} {
		if status, body := call(c.method, c.path, c.body); status != c.status {
			t.Errorf("%s %s %s: %d %q, want %d", c.method, c.path, c.body, status, body, c.status)
		}
	}
	// The step programmed first is still the one in force.
	if status, _, rule := h.do(t, "POST", fmt.Sprintf("http://allowed.example:%d/", o.port()), "x"); status != 403 || Rule(rule) != RuleStepMethod {
		t.Errorf("during the step: %d %s", status, rule)
	}
	if status, _ := call("DELETE", "/v1/agents/agent.test/step", ""); status != 204 {
		t.Fatal(status)
	}
	if status, _ := call("GET", "/v1/agents/agent.test/step", ""); status != 404 {
		t.Errorf("after DELETE: %d", status)
	}
	if status, _, _ := h.do(t, "POST", fmt.Sprintf("http://allowed.example:%d/", o.port()), "x"); status != 200 {
		t.Errorf("after the step: %d", status)
	}
}
