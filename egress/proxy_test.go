package egress

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

func TestAllowedRequest(t *testing.T) {
	o := newOrigin(t)
	h := newHarness(t, basePolicy(), Options{})
	status, body, _ := h.do(t, "POST", fmt.Sprintf("http://allowed.example:%d/hello?x=1", o.port()), "ping")
	if status != 200 || body != "echo POST /hello ping" {
		t.Fatalf("got %d %q", status, body)
	}
	if got := o.last(); got.Query != "x=1" || got.Host != fmt.Sprintf("allowed.example:%d", o.port()) {
		t.Errorf("origin saw %+v", got)
	}
	d := h.lastDecision(t)
	if d.Action != ActionAllow || d.Rule != RuleAllowed || d.Addr != loopback || d.Kind != "http" || d.Status != 200 {
		t.Errorf("decision %+v", d)
	}
	if h.count() != 1 {
		t.Errorf("%d decisions recorded, want 1", h.count())
	}
	if n := strings.Count(h.logs.String(), "egress decision"); n != 1 {
		t.Errorf("%d decision log lines, want 1:\n%s", n, h.logs)
	}
}

func TestDenied(t *testing.T) {
	o := newOrigin(t)
	p := basePolicy()
	p.Methods = []string{"GET", "HEAD"}
	var lookups atomic.Int32
	res := countingResolver{StaticResolver: testResolver(), n: &lookups}
	h := newHarness(t, p, Options{Resolver: res})
	cases := []struct {
		name, method, url string
		status            int
		rule              Rule
	}{
		{"domain", "GET", "http://other.example:%d/", 403, RuleDomain},
		{"apex of a glob", "GET", "http://wild.example:%d/", 403, RuleDomain},
		{"suffix trick", "GET", "http://allowed.example.other.example:%d/", 403, RuleDomain},
		{"method", "POST", "http://allowed.example:%d/", 403, RuleMethod},
		{"unresolvable", "GET", "http://x.wild.example:%d/", 502, RuleResolve},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			before := lookups.Load()
			status, body, rule := h.do(t, c.method, fmt.Sprintf(c.url, o.port()), "")
			if status != c.status || Rule(rule) != c.rule {
				t.Fatalf("got %d %s %q, want %d %s", status, rule, body, c.status, c.rule)
			}
			if c.rule != RuleResolve && lookups.Load() != before {
				t.Errorf("a denied name was resolved")
			}
			if d := h.lastDecision(t); d.Action != ActionDeny || d.Rule != c.rule {
				t.Errorf("decision %+v", d)
			}
		})
	}
	if o.count() != 0 {
		t.Errorf("the origin was reached %d times", o.count())
	}
}

type countingResolver struct {
	StaticResolver
	n *atomic.Int32
}

func (c countingResolver) LookupNetIP(ctx context.Context, network, host string) ([]netip.Addr, error) {
	c.n.Add(1)
	return c.StaticResolver.LookupNetIP(ctx, network, host)
}

func TestIDNAAndCase(t *testing.T) {
	o := newOrigin(t)
	p := basePolicy()
	p.Domains = append(p.Domains, "bücher.example")
	res := testResolver()
	res["xn--bcher-kva.example"] = []netip.Addr{loopback}
	h := newHarness(t, p, Options{Resolver: res})
	for _, host := range []string{"ALLOWED.Example.", "xn--bcher-kva.example", "BÜCHER.example"} {
		d := h.px.Decide(Request{Agent: "agent.test", Method: "GET", Host: host, Port: 80})
		if !d.Allowed() {
			t.Errorf("%s: %+v", host, d)
		}
	}
	status, _, _ := h.do(t, "GET", fmt.Sprintf("http://ALLOWED.EXAMPLE.:%d/", o.port()), "")
	if status != 200 {
		t.Errorf("status %d", status)
	}
}

func TestStepACL(t *testing.T) {
	o := newOrigin(t)
	p := basePolicy()
	p.Methods = []string{"GET", "POST"}
	h := newHarness(t, p, Options{})
	px := h.px
	url := func(host string) string { return fmt.Sprintf("http://%s:%d/", host, o.port()) }

	// Widening is refused.
	for _, acl := range []StepACL{
		{Domains: []string{"evil.example"}},
		{Domains: []string{"*.allowed.example"}},
		{Domains: []string{"wild.example"}},
		{Domains: []string{"allowed.example"}, Methods: []string{"DELETE"}},
		{Ranges: []netip.Prefix{netip.MustParsePrefix("0.0.0.0/0")}},
	} {
		if err := px.SetStep("agent.test", "s", acl); !errors.Is(err, ErrWiden) {
			t.Errorf("SetStep(%+v) = %v, want ErrWiden", acl, err)
		}
	}
	if err := px.SetStep("nobody", "s", StepACL{}); !errors.Is(err, ErrUnknownAgent) {
		t.Errorf("unknown agent: %v", err)
	}
	// A narrower step.
	if err := px.SetStep("agent.test", "fetch", StepACL{Domains: []string{"allowed.example", "*.a.wild.example"}, Methods: []string{"GET"}}); err != nil {
		t.Fatal(err)
	}
	check := func(method, host string, status int, rule Rule) {
		t.Helper()
		got, _, r := h.do(t, method, url(host), "")
		if got != status || (rule != "" && Rule(r) != rule) {
			t.Errorf("%s %s: got %d %s, want %d %s", method, host, got, r, status, rule)
		}
	}
	check("GET", "allowed.example", 200, "")
	if d := h.lastDecision(t); d.Step != "fetch" {
		t.Errorf("decision step %q", d.Step)
	}
	check("GET", "b.wild.example", 403, RuleStepDomain)
	check("POST", "allowed.example", 403, RuleStepMethod)
	if d := px.Decide(Request{Agent: "agent.test", Step: "other", Method: "GET", Host: "allowed.example", Port: 80}); d.Rule != RuleStepMismatch {
		t.Errorf("step mismatch: %+v", d)
	}
	// After the step, the agent's ACL applies again.
	px.ClearStep("agent.test")
	check("GET", "b.wild.example", 200, "")
	check("POST", "allowed.example", 200, "")

	// Between steps a RequireStep policy allows nothing.
	p.RequireStep = true
	if err := px.AddAgent(p); err != nil {
		t.Fatal(err)
	}
	check("GET", "allowed.example", 403, RuleNoStep)
	// A step with no domains reaches nothing.
	if err := px.SetStep("agent.test", "compute", StepACL{}); err != nil {
		t.Fatal(err)
	}
	check("GET", "allowed.example", 403, RuleStepDomain)
}

func TestAddressRefused(t *testing.T) {
	o := newOrigin(t)
	p := basePolicy()
	p.AllowRanges = nil
	res := testResolver()
	res["meta.example"] = []netip.Addr{netip.MustParseAddr("169.254.169.254")}
	res["mixed.example"] = []netip.Addr{netip.MustParseAddr("8.8.8.8"), netip.MustParseAddr("::ffff:10.1.2.3")}
	p.Domains = append(p.Domains, "meta.example", "mixed.example")
	h := newHarness(t, p, Options{Resolver: res})
	for _, host := range []string{"allowed.example", "meta.example", "mixed.example"} {
		status, body, rule := h.do(t, "GET", fmt.Sprintf("http://%s:%d/", host, o.port()), "")
		if status != 403 || Rule(rule) != RuleAddress {
			t.Errorf("%s: got %d %s %q", host, status, rule, body)
		}
	}
	if o.count() != 0 {
		t.Fatal("the loopback origin was reached")
	}
	if d := h.lastDecision(t); !strings.Contains(d.Reason, "private") {
		t.Errorf("reason %q should name the class", d.Reason)
	}
}

// TestRebinding: the name resolves to an allowed address once and to a
// refused one afterwards; the proxy resolves once and dials what it checked.
func TestRebinding(t *testing.T) {
	o := &origin{}
	o.Server = newLoopbackServer(t, "127.0.0.2:0", http.HandlerFunc(o.handler))
	p := basePolicy()
	p.AllowRanges = []netip.Prefix{netip.MustParsePrefix("127.0.0.2/32")}
	var n atomic.Int32
	res := rebinding{n: &n, first: netip.MustParseAddr("127.0.0.2"), then: loopback}
	h := newHarness(t, p, Options{Resolver: res})
	status, body, _ := h.do(t, "GET", fmt.Sprintf("http://allowed.example:%d/", o.port()), "")
	if status != 200 || n.Load() != 1 {
		t.Fatalf("got %d %q after %d lookups", status, body, n.Load())
	}
	status, _, rule := h.do(t, "GET", fmt.Sprintf("http://allowed.example:%d/", o.port()), "")
	if status != 403 || Rule(rule) != RuleAddress {
		t.Fatalf("second request: %d %s", status, rule)
	}
	if _, err := dialChecked(time.Second)(context.Background(), "tcp", o.Listener.Addr().String()); err == nil {
		t.Fatal("dialChecked dialled an unchecked address")
	}
}

type rebinding struct {
	n           *atomic.Int32
	first, then netip.Addr
}

func (r rebinding) LookupNetIP(context.Context, string, string) ([]netip.Addr, error) {
	if r.n.Add(1) == 1 {
		return []netip.Addr{r.first}, nil
	}
	return []netip.Addr{r.then}, nil
}

func TestIPLiteral(t *testing.T) {
	o := newOrigin(t)
	p := basePolicy()
	p.AllowRanges = nil
	h := newHarness(t, p, Options{})
	status, _, rule := h.do(t, "GET", fmt.Sprintf("http://127.0.0.1:%d/", o.port()), "")
	if status != 403 || Rule(rule) != RuleIPLiteral {
		t.Fatalf("literal without a range: %d %s", status, rule)
	}
	d := h.px.Decide(Request{Agent: "agent.test", Method: "GET", Host: "93.184.215.14", Port: 443})
	if d.Rule != RuleIPLiteral {
		t.Errorf("public literal without a range: %+v", d)
	}
	p.AllowRanges = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}
	if err := h.px.AddAgent(p); err != nil {
		t.Fatal(err)
	}
	status, _, _ = h.do(t, "GET", fmt.Sprintf("http://127.0.0.1:%d/", o.port()), "")
	if status != 200 {
		t.Fatalf("literal in an allowed range: %d", status)
	}
	// The mapped form of an allowed IPv4 range is the same address.
	if d := h.px.Decide(Request{Agent: "agent.test", Method: "GET", Host: "[::ffff:127.0.0.1]", Port: 80}); !d.Allowed() {
		t.Errorf("mapped literal: %+v", d)
	}
	// A step narrows literals too.
	if err := h.px.SetStep("agent.test", "s", StepACL{Ranges: []netip.Prefix{netip.MustParsePrefix("127.0.0.9/32")}}); err != nil {
		t.Fatal(err)
	}
	if d := h.px.Decide(Request{Agent: "agent.test", Method: "GET", Host: "127.0.0.1", Port: 80}); d.Rule != RuleStepDomain {
		t.Errorf("literal outside the step's ranges: %+v", d)
	}
}

func TestReportMode(t *testing.T) {
	o := newOrigin(t)
	p := basePolicy()
	p.Mode = Report
	p.Methods = []string{"GET"}
	h := newHarness(t, p, Options{})
	status, _, _ := h.do(t, "POST", fmt.Sprintf("http://other.example:%d/", o.port()), "x")
	if status != 200 {
		t.Fatalf("report mode blocked: %d", status)
	}
	d := h.lastDecision(t)
	if d.Action != ActionReport || d.Rule != RuleDomain || !strings.HasPrefix(d.Reason, "would deny") {
		t.Errorf("decision %+v", d)
	}
	// Address classes are not softened.
	p.AllowRanges = nil
	if err := h.px.AddAgent(p); err != nil {
		t.Fatal(err)
	}
	status, _, rule := h.do(t, "GET", fmt.Sprintf("http://allowed.example:%d/", o.port()), "")
	if status != 403 || Rule(rule) != RuleAddress {
		t.Errorf("report mode reached loopback: %d %s", status, rule)
	}
}

func TestSizeCaps(t *testing.T) {
	o := newOrigin(t)
	p := basePolicy()
	p.Limits.MaxRequestBytes = 100
	p.Limits.MaxResponseBytes = 1000
	h := newHarness(t, p, Options{})
	status, _, rule := h.do(t, "POST", fmt.Sprintf("http://allowed.example:%d/", o.port()), strings.Repeat("a", 101))
	if status != 413 || Rule(rule) != RuleRequestTooLarge {
		t.Errorf("oversize body: %d %s", status, rule)
	}
	status, _, _ = h.do(t, "POST", fmt.Sprintf("http://allowed.example:%d/", o.port()), strings.Repeat("a", 100))
	if status != 200 {
		t.Errorf("body at the cap: %d", status)
	}
	status, _, rule = h.do(t, "GET", fmt.Sprintf("http://allowed.example:%d/big", o.port()), "")
	if status != 502 || Rule(rule) != RuleResponseTooLarge {
		t.Errorf("oversize response: %d %s", status, rule)
	}
	// Without a Content-Length the body is cut at the cap and the
	// connection aborted, so the client cannot take it for complete.
	resp, err := h.client(nil).Get(fmt.Sprintf("http://allowed.example:%d/bigchunked", o.port()))
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err == nil || len(b) > 1000 {
		t.Errorf("streamed oversize response: read %d bytes, err %v", len(b), err)
	}
}

func TestRateLimit(t *testing.T) {
	o := newOrigin(t)
	p := basePolicy()
	p.Limits.Rate, p.Limits.Burst = 1, 2
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	h := newHarness(t, p, Options{Clock: func() time.Time { return now }})
	url := fmt.Sprintf("http://allowed.example:%d/", o.port())
	for i, want := range []int{200, 200, 429} {
		if status, _, _ := h.do(t, "GET", url, ""); status != want {
			t.Fatalf("request %d: %d, want %d", i, status, want)
		}
	}
	if d := h.lastDecision(t); d.Rule != RuleRate {
		t.Errorf("decision %+v", d)
	}
	now = now.Add(time.Second)
	if status, _, _ := h.do(t, "GET", url, ""); status != 200 {
		t.Fatalf("after a second: %d", status)
	}
	// A step's own limit.
	now = now.Add(10 * time.Second)
	if err := h.px.SetStep("agent.test", "s", StepACL{Domains: []string{"allowed.example"}, Rate: 0.5, Burst: 1}); err != nil {
		t.Fatal(err)
	}
	for i, want := range []int{200, 429} {
		if status, _, rule := h.do(t, "GET", url, ""); status != want {
			t.Fatalf("step request %d: %d %s, want %d", i, status, rule, want)
		}
	}
	if d := h.lastDecision(t); d.Rule != RuleStepRate {
		t.Errorf("decision %+v", d)
	}
}

func TestInjectionStripping(t *testing.T) {
	o := newOrigin(t)
	p := basePolicy()
	p.StripInjection = true
	h := newHarness(t, p, Options{})
	status, body, _ := h.do(t, "GET", fmt.Sprintf("http://allowed.example:%d/inject", o.port()), "")
	if status != 200 {
		t.Fatal(status)
	}
	for _, bad := range []string{"Ignore all previous", "<|im_start|>", "\u200b"} {
		if strings.Contains(body, bad) {
			t.Errorf("body still has %q:\n%s", bad, body)
		}
	}
	if !strings.Contains(body, "Weather: sunny.") || !strings.Contains(body, "[STRIPPED:ignore-instructions]") || !strings.Contains(body, "hidden") {
		t.Errorf("body:\n%s", body)
	}
	if d := h.lastDecision(t); len(d.Stripped) != 3 {
		t.Errorf("stripped %v", d.Stripped)
	}
}

func TestRoundTripInProcess(t *testing.T) {
	o := newOrigin(t)
	px, err := New(basePolicy(), Options{Resolver: testResolver(), Logger: discardLogger()})
	if err != nil {
		t.Fatal(err)
	}
	c := &http.Client{Transport: px}
	resp, err := c.Get(fmt.Sprintf("http://allowed.example:%d/fetch", o.port()))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(b) != "echo GET /fetch " {
		t.Errorf("body %q", b)
	}
	_, err = c.Get(fmt.Sprintf("http://other.example:%d/", o.port()))
	var de *DeniedError
	if !errors.As(err, &de) || !errors.Is(err, ErrDenied) || de.Decision.Rule != RuleDomain || de.Decision.Kind != "fetch" {
		t.Errorf("denied fetch: %v", err)
	}
	// The agent comes from the context.
	req, _ := http.NewRequestWithContext(WithAgent(context.Background(), "nobody"), "GET", fmt.Sprintf("http://allowed.example:%d/", o.port()), nil)
	if _, err := px.RoundTrip(req); !errors.As(err, &de) || de.Decision.Rule != RuleUnknownAgent {
		t.Errorf("unknown agent: %v", err)
	}
}

func TestNotAProxyRequest(t *testing.T) {
	h := newHarness(t, basePolicy(), Options{})
	resp, err := http.Get(h.srv.URL + "/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 400 || h.lastDecision(t).Rule != RuleBadRequest {
		t.Errorf("origin-form request: %d", resp.StatusCode)
	}
}

func TestMetrics(t *testing.T) {
	o := newOrigin(t)
	reg := prometheus.NewRegistry()
	h := newHarness(t, basePolicy(), Options{Metrics: reg})
	h.do(t, "GET", fmt.Sprintf("http://allowed.example:%d/", o.port()), "")
	h.do(t, "GET", fmt.Sprintf("http://other.example:%d/", o.port()), "")
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, mf := range mfs {
		for _, m := range mf.Metric {
			key := mf.GetName()
			for _, l := range m.Label {
				key += "," + l.GetValue()
			}
			switch {
			case m.Counter != nil:
				got[key] = m.Counter.GetValue()
			case m.Histogram != nil:
				got[key] = float64(m.Histogram.GetSampleCount())
			}
		}
	}
	for k, want := range map[string]float64{
		"ccos_egress_decisions_total,allow,agent.test,allowed":           float64(1),
		"ccos_egress_decisions_total,deny,agent.test,domain_not_allowed": 1,
		"ccos_egress_bytes_total,agent.test,received":                    float64(len("echo GET / ")),
		"ccos_egress_request_duration_seconds,http":                      2,
	} {
		if got[k] != want {
			t.Errorf("%s = %v, want %v (all: %v)", k, got[k], want, got)
		}
	}
}
