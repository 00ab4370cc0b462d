package egress

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
)

const testSecret = "tok-3f9a1c7e5b2d4680"

// credOrigin records the credential header each host received; /echo
// answers with it, /echo64 with it in base64.
type credOrigin struct {
	*httptest.Server
	mu  sync.Mutex
	got map[string][]string // host -> Authorization values
}

func newCredOrigin(t *testing.T) *credOrigin {
	o := &credOrigin{got: map[string][]string{}}
	o.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		auth := r.Header.Get("Authorization")
		host, _, _ := strings.Cut(r.Host, ":")
		o.mu.Lock()
		o.got[host] = append(o.got[host], auth)
		o.mu.Unlock()
		switch r.URL.Path {
		case "/echo":
			io.WriteString(w, "you sent "+auth)
		case "/echo64":
			io.WriteString(w, base64.StdEncoding.EncodeToString([]byte(auth)))
		case "/echo-header":
			w.Header().Set("X-You-Sent", auth)
			io.WriteString(w, "ok")
		default:
			io.WriteString(w, "ok")
		}
	}))
	t.Cleanup(o.Close)
	return o
}

func (o *credOrigin) received(host string) []string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return append([]string(nil), o.got[host]...)
}

// The proxy adds a secret to the requests a step is allowed to send to
// its domain, and to no others; a request that carries it anywhere is
// refused before it leaves, and a response that carries it back is
// refused; decisions name the secret, never its value.
func TestSecrets(t *testing.T) {
	o := newCredOrigin(t)
	_, port, _ := strings.Cut(o.Listener.Addr().String(), ":")
	p := basePolicy()
	p.Secrets = []Secret{{Name: "api", Domain: "allowed.example", Header: "Authorization", Prefix: "Bearer ", Value: testSecret}}
	var mu sync.Mutex
	var decisions []Decision
	var logs strings.Builder
	px, err := New(p, Options{Resolver: testResolver(), Logger: slog.New(slog.NewJSONHandler(&logs, nil)), Recorder: func(d Decision) {
		mu.Lock()
		decisions = append(decisions, d)
		mu.Unlock()
	}})
	if err != nil {
		t.Fatal(err)
	}
	grant, err := px.Grant("agent.test", "call", "run", "plan", StepACL{Domains: []string{"allowed.example", "*.wild.example"}, Methods: []string{"GET", "POST"}})
	if err != nil {
		t.Fatal(err)
	}
	do := func(g *Grant, method, rawURL string, header http.Header, body string) (*http.Response, string, error) {
		ctx := WithAgent(context.Background(), "agent.test")
		if g != nil {
			ctx = WithGrant(ctx, g)
		}
		req, _ := http.NewRequestWithContext(ctx, method, rawURL, strings.NewReader(body))
		for k, vs := range header {
			req.Header[k] = vs
		}
		resp, err := px.RoundTrip(req)
		if err != nil {
			return nil, "", err
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp, string(b), nil
	}
	u := func(host, path string) string { return fmt.Sprintf("http://%s:%s%s", host, port, path) }

	// The allowed domain gets it; the plan's request did not carry it.
	if _, body, err := do(grant, "GET", u("allowed.example", "/"), nil, ""); err != nil || body != "ok" {
		t.Fatalf("allowed: %v %q", err, body)
	}
	if got := o.received("allowed.example"); len(got) != 1 || got[0] != "Bearer "+testSecret {
		t.Errorf("the allowed origin received %q", got)
	}
	// Another domain the step may reach does not.
	if _, _, err := do(grant, "GET", u("b.wild.example", "/"), nil, ""); err != nil {
		t.Fatal(err)
	}
	if got := o.received("b.wild.example"); len(got) != 1 || got[0] != "" {
		t.Errorf("another domain received %q", got)
	}
	// A request without a step (no grant, none programmed) gets nothing.
	if _, _, err := do(nil, "GET", u("allowed.example", "/"), nil, ""); err != nil {
		t.Fatal(err)
	}
	if got := o.received("allowed.example"); len(got) != 2 || got[1] != "" {
		t.Errorf("a request outside any step received %q", got)
	}

	// The secret anywhere in a request, to any domain, is refused.
	before := len(o.received("b.wild.example")) + len(o.received("allowed.example"))
	leaks := []struct {
		name, method, url, body string
		header                  http.Header
	}{
		{"in a body to another domain", "POST", u("b.wild.example", "/"), "key=" + testSecret, nil},
		{"in a body to its own domain", "POST", u("allowed.example", "/"), testSecret, nil},
		{"in the query", "GET", u("b.wild.example", "/?k="+url.QueryEscape(testSecret)), "", nil},
		{"in the path, percent-encoded", "GET", u("b.wild.example", "/"+strings.ReplaceAll(url.PathEscape(testSecret), "-", "%2D")), "", nil},
		{"in Authorization to another domain", "GET", u("b.wild.example", "/"), "", http.Header{"Authorization": {"Bearer " + testSecret}}},
		{"base64 in a header", "GET", u("b.wild.example", "/"), "", http.Header{"X-Data": {base64.StdEncoding.EncodeToString([]byte("x:" + testSecret))}}},
		{"hex in a body", "POST", u("b.wild.example", "/"), fmt.Sprintf("%x", testSecret), nil},
	}
	for _, tc := range leaks {
		_, _, err := do(grant, tc.method, tc.url, tc.header, tc.body)
		var de *DeniedError
		if !errors.As(err, &de) || de.Decision.Rule != RuleSecretLeak || !strings.Contains(de.Decision.Reason, "api") {
			t.Errorf("%s: %v", tc.name, err)
		}
		if err != nil && strings.Contains(err.Error(), testSecret) {
			t.Errorf("%s: the error shows the secret: %v", tc.name, err)
		}
	}
	if after := len(o.received("b.wild.example")) + len(o.received("allowed.example")); after != before {
		t.Errorf("leaking requests reached the origin: %d more", after-before)
	}

	// An origin that echoes the credential back: refused, plainly, in
	// base64 or in a header.
	for _, path := range []string{"/echo", "/echo64", "/echo-header"} {
		_, body, err := do(grant, "GET", u("allowed.example", path), nil, "")
		var de *DeniedError
		if !errors.As(err, &de) || de.Decision.Rule != RuleSecretEcho {
			t.Errorf("%s: %v %q", path, err, body)
		}
		if strings.Contains(body, testSecret) {
			t.Errorf("%s: the secret reached the client", path)
		}
	}

	mu.Lock()
	defer mu.Unlock()
	injected := 0
	for _, d := range decisions {
		if strings.Contains(fmt.Sprintf("%+v", d), testSecret) {
			t.Errorf("a decision holds the secret: %+v", d)
		}
		if len(d.Secrets) == 1 && d.Secrets[0] == "api" {
			injected++
		}
	}
	if injected != 4 {
		t.Errorf("%d decisions name the injected secret, want 4 (one allowed, three echoes)", injected)
	}
	if strings.Contains(logs.String(), testSecret) {
		t.Errorf("the decision log holds the secret")
	}
}

// A policy whose secret is bound outside its domains, too short, or in
// no header is refused.
func TestSecretPolicy(t *testing.T) {
	for _, s := range []Secret{
		{Name: "x", Domain: "evil.example", Header: "Authorization", Value: testSecret},
		{Name: "x", Domain: "allowed.example", Header: "Authorization", Value: "short"},
		{Name: "x", Domain: "allowed.example", Header: "Bad Header", Value: testSecret},
		{Name: "x", Domain: "allowed.example", Header: "Authorization", Value: testSecret + "\r\nX: y"},
		{Domain: "allowed.example", Header: "Authorization", Value: testSecret},
	} {
		p := basePolicy()
		p.Secrets = []Secret{s}
		if _, err := New(p, Options{Logger: discardLogger()}); err == nil || strings.Contains(err.Error(), testSecret) {
			t.Errorf("%+v: %v", s, err)
		}
	}
}
