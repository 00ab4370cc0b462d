package supervisor_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ccos-project/ccos/chain"
	"github.com/ccos-project/ccos/control"
	"github.com/ccos-project/ccos/engine"
	"github.com/ccos-project/ccos/receipt"
	"github.com/ccos-project/ccos/sandbox"
	. "github.com/ccos-project/ccos/supervisor"
	"github.com/ccos-project/ccos/supervisor/client"
)

// harness is a supervisor in this process serving its API on a Unix
// socket, with agents in the process sandbox.
type harness struct {
	sup    *Supervisor
	eng    *engine.Engine
	store  *Store
	dir    string
	socket string
	srv    *http.Server
	c      *client.Client
}

func newHarness(t *testing.T, agents []string, o Options, ao engine.AgentOptions) *harness {
	t.Helper()
	return newHarnessTB(t, agents, o, ao)
}

func newHarnessTB(t testing.TB, agents []string, o Options, ao engine.AgentOptions) *harness {
	t.Helper()
	dir := t.TempDir()
	eng, err := engine.New(engine.Options{})
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range agents {
		o := ao
		o.Provider = "process"
		o.Chain = filepath.Join(dir, id+".chain")
		a, err := eng.LoadAgent([]byte(`(profile:minimal "`+id+`")`), id+".rtfs", o)
		if err != nil {
			t.Fatal(err)
		}
		if err := a.Prepare(); err != nil {
			t.Fatal(err)
		}
	}
	store, err := OpenStore(filepath.Join(dir, "runs.db"))
	if err != nil {
		t.Fatal(err)
	}
	o.Engine, o.Store = eng, store
	sup, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	h := &harness{sup: sup, eng: eng, store: store, dir: dir, socket: filepath.Join(dir, "s.sock")}
	ln, err := net.Listen("unix", h.socket)
	if err != nil {
		t.Fatal(err)
	}
	h.srv = &http.Server{Handler: sup.Handler(nil)}
	go h.srv.Serve(ln)
	h.c = client.Unix(h.socket)
	t.Cleanup(h.close)
	return h
}

func (h *harness) close() {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	h.sup.Drain(ctx)
	h.srv.Close()
	h.eng.Close()
	h.store.Close()
}

func plan(body string) Submission { return Submission{Plan: body, File: "p.rtfs"} }

// 50 submissions at once across 3 agents all succeed, in parallel; each
// agent's chain verifies and holds only its own runs.
func TestConcurrentAgents(t *testing.T) {
	agents := []string{"agent.a", "agent.b", "agent.c"}
	h := newHarness(t, agents, Options{Limits: map[string]int{"process": 6}}, engine.AgentOptions{Pool: 2})
	ctx := context.Background()
	const n = 50
	runs := make([]*Run, n)
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			agent := agents[i%3]
			r, err := h.c.Submit(ctx, agent, plan(fmt.Sprintf(`(plan "p%d" :body (step "s" (call :ccos.math.add %d 1)))`, i, i)))
			if err == nil {
				r, err = h.c.Wait(ctx, r.ID)
			}
			runs[i], errs[i] = r, err
		}()
	}
	wg.Wait()
	sessions := map[string]map[string]bool{}
	for i, r := range runs {
		if errs[i] != nil {
			t.Fatalf("run %d: %v", i, errs[i])
		}
		if r.Status != StatusSucceeded || r.Value == nil || *r.Value != fmt.Sprint(i+1) || r.Agent != agents[i%3] {
			t.Errorf("run %d: %+v", i, r)
		}
		if sessions[r.Agent] == nil {
			sessions[r.Agent] = map[string]bool{}
		}
		sessions[r.Agent][r.ID] = true
	}
	// Each agent's chain verifies and holds its own runs only.
	for _, id := range agents {
		a, _ := h.eng.Agent(id)
		rec, _ := a.Recorder()
		_ = rec
		st, err := chain.OpenReadOnly(chain.StorageAppendFile, filepath.Join(h.dir, id+".chain"))
		if err != nil {
			t.Fatal(err)
		}
		rep, err := chain.Verify(st, nil)
		if err != nil || rep.Events == 0 {
			t.Errorf("%s: chain does not verify: %v %+v", id, err, rep)
		}
		seen := map[string]bool{}
		st.Records(func(_ uint64, data []byte) error {
			ev, err := chain.Decode(data)
			if err == nil && ev.Session != "" {
				seen[ev.Session] = true
			}
			return err
		})
		st.Close()
		for s := range seen {
			if !sessions[id][s] {
				t.Errorf("agent %s's chain holds session %s, not one of its runs", id, s)
			}
		}
		if len(seen) != len(sessions[id]) {
			t.Errorf("agent %s's chain holds %d runs, want %d", id, len(seen), len(sessions[id]))
		}
	}
}

// Left idle past every deadline (the sandbox's, the pool's idle limit),
// the supervisor still serves runs, and says it is healthy.
func TestIdlePastDeadlines(t *testing.T) {
	h := newHarness(t, []string{"agent.idle"}, Options{}, engine.AgentOptions{Pool: 1, PoolMaxIdle: 1500 * time.Millisecond,
		Limits: sandbox.Limits{Deadline: 3 * time.Second}})
	time.Sleep(5 * time.Second)
	hl, err := h.c.Health(context.Background())
	if err != nil || hl.Status != "ok" {
		t.Fatalf("health after idling: %v %+v", err, hl)
	}
	for i := 0; i < 3; i++ {
		r, err := h.c.Submit(context.Background(), "agent.idle", plan(`(step "s" (call :ccos.math.add 1 1))`))
		if err == nil {
			r, err = h.c.Wait(context.Background(), r.ID)
		}
		if err != nil || r.Status != StatusSucceeded {
			t.Fatalf("run %d after idling: %v %+v", i, err, r)
		}
	}
	if hl, _ = h.c.Health(context.Background()); hl.Agents[0].PoolDied == 0 {
		t.Errorf("no pooled sandbox reached its idle limit: %+v", hl.Agents[0])
	}
}

// A refused plan is answered at once with every reason; an unknown agent
// is 404; a full queue is 429 with Retry-After; a queued run can be
// cancelled.
func TestSubmissionAnswers(t *testing.T) {
	h := newHarness(t, []string{"agent.q"}, Options{QueueSize: 2, Limits: map[string]int{"process": 1}}, engine.AgentOptions{})
	ctx := context.Background()
	_, err := h.c.Submit(ctx, "agent.q", plan(`(step "s" (call :ccos.network.http-fetch "https://x.example") (call :no.such 1))`))
	var ae *client.APIError
	if !errors.As(err, &ae) || ae.Status != 422 || ae.Kind != "not-admitted" || len(ae.Reasons) < 2 {
		t.Fatalf("refused plan: %v", err)
	}
	if _, err = h.c.Submit(ctx, "nobody", plan(`1`)); !errors.As(err, &ae) || ae.Status != 404 {
		t.Errorf("unknown agent: %v", err)
	}
	// One runs (slowly), two wait, the next is refused.
	slow := plan(`(step "s" (loop [i 0] (if (< i 300000) (recur (inc i)) i)))`)
	var ids []string
	var full error
	for i := 0; i < 5 && full == nil; i++ {
		r, err := h.c.Submit(ctx, "agent.q", slow)
		if err != nil {
			full = err
			break
		}
		ids = append(ids, r.ID)
	}
	if !errors.As(full, &ae) || ae.Status != 429 || ae.RetryAfter < 1 {
		t.Fatalf("full queue: %v after %d runs", full, len(ids))
	}
	r, err := h.c.Cancel(ctx, ids[len(ids)-1])
	if err != nil || r.Status != StatusCancelled {
		t.Fatalf("cancel a queued run: %v %+v", err, r)
	}
	if _, err = h.c.Cancel(ctx, ids[len(ids)-1]); !errors.As(err, &ae) || ae.Status != 409 {
		t.Errorf("cancel a cancelled run: %v", err)
	}
	// The others run to their end (the evaluation limit may end them on
	// a slow machine: what matters here is that they end).
	for _, id := range ids[:len(ids)-1] {
		if r, err := h.c.Wait(ctx, id); err != nil || !r.Status.Final() || r.Status == StatusCancelled {
			t.Errorf("run %s: %v %+v", id, err, r)
		}
	}
	l, err := h.c.List(ctx, Filter{Agent: "agent.q", Status: StatusCancelled})
	if err != nil || len(l.Runs) != 1 {
		t.Errorf("list of cancelled runs: %v %+v", err, l)
	}
}

// The events stream carries a run's events live and from the start, then
// its end; a running run can be cancelled.
func TestEventsAndCancel(t *testing.T) {
	// The long run must outlast the test's wait for it to be running: it
	// ends by cancellation, not at an evaluation limit.
	h := newHarness(t, []string{"agent.ev"}, Options{}, engine.AgentOptions{
		Evaluation: control.RunLimits{TimeoutMillis: 5 * 60 * 1000, Steps: 1 << 40}})
	ctx := context.Background()
	r, err := h.c.Submit(ctx, "agent.ev", plan(`(plan "p" :body [(step "one" (println "first")) (step "two" (call :ccos.math.add 1 2))])`))
	if err != nil {
		t.Fatal(err)
	}
	var types []string
	status, err := h.c.Events(ctx, r.ID, 0, func(e engine.Event) error {
		types = append(types, e.Type)
		return nil
	})
	if err != nil || status != StatusSucceeded {
		t.Fatalf("events: %v %s", err, status)
	}
	joined := strings.Join(types, " ")
	for _, want := range []string{"plan.admitted", "step.started", "output", "step.finished", "plan.finished"} {
		if !strings.Contains(joined, want) {
			t.Errorf("no %s in %s", want, joined)
		}
	}
	// Again, after the run: the same events from the store.
	var again []string
	if _, err := h.c.Events(ctx, r.ID, 0, func(e engine.Event) error { again = append(again, e.Type); return nil }); err != nil || strings.Join(again, " ") != joined {
		t.Errorf("stored events differ: %v\n%s\n%s", err, joined, strings.Join(again, " "))
	}
	long, err := h.c.Submit(ctx, "agent.ev", plan(`(step "s" (loop [i 0] (if (< i 100000000) (recur (inc i)) i)))`))
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 100; i++ {
		if g, _ := h.c.Get(ctx, long.ID); g.Status == StatusRunning {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if _, err := h.c.Cancel(ctx, long.ID); err != nil {
		t.Fatal(err)
	}
	if g, err := h.c.Wait(ctx, long.ID); err != nil || g.Status != StatusCancelled {
		t.Errorf("cancelled run: %v %+v", err, g)
	}
}

// A client certificate names the one agent it may act for: it cannot
// submit for, list or read another agent's runs.
func TestMTLSIdentity(t *testing.T) {
	h := newHarness(t, []string{"agent.a", "agent.b"}, Options{}, engine.AgentOptions{})
	ca, caKey := newCA(t)
	srvCert := issue(t, ca, caKey, "localhost", true)
	pool := x509.NewCertPool()
	pool.AddCert(ca)
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{srvCert}, ClientCAs: pool,
		ClientAuth: tls.RequireAndVerifyClientCert, MinVersion: tls.VersionTLS13})
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: h.sup.Handler(nil)}
	go srv.Serve(ln)
	defer srv.Close()
	as := func(agent string) *client.Client {
		return client.TLS(ln.Addr().String(), &tls.Config{Certificates: []tls.Certificate{issue(t, ca, caKey, agent, false)}, RootCAs: pool, ServerName: "localhost"})
	}
	a, b := as("agent.a"), as("agent.b")
	ctx := context.Background()
	r, err := a.Submit(ctx, "agent.a", plan(`(step "s" (call :ccos.math.add 1 1))`))
	if err != nil {
		t.Fatal(err)
	}
	var ae *client.APIError
	if _, err := a.Submit(ctx, "agent.b", plan(`(step "s" 1)`)); !errors.As(err, &ae) || ae.Status != 403 {
		t.Errorf("agent A's certificate submitting for B: %v", err)
	}
	if _, err := b.Get(ctx, r.ID); !errors.As(err, &ae) || ae.Status != 404 {
		t.Errorf("agent B reading A's run: %v", err)
	}
	if _, err := b.Cancel(ctx, r.ID); !errors.As(err, &ae) || ae.Status != 404 {
		t.Errorf("agent B cancelling A's run: %v", err)
	}
	if l, err := b.List(ctx, Filter{}); err != nil || len(l.Runs) != 0 {
		t.Errorf("agent B's list: %v %+v", err, l)
	}
	if _, err := b.List(ctx, Filter{Agent: "agent.a"}); !errors.As(err, &ae) || ae.Status != 403 {
		t.Errorf("agent B listing A's runs: %v", err)
	}
	if ags, err := b.Agents(ctx); err != nil || len(ags) != 1 || ags[0].Agent != "agent.b" {
		t.Errorf("agent B's agents: %v %+v", err, ags)
	}
	if got, err := a.Wait(ctx, r.ID); err != nil || got.Status != StatusSucceeded {
		t.Errorf("agent A's own run: %v %+v", err, got)
	}
	// No certificate: no connection at all.
	none := client.TLS(ln.Addr().String(), &tls.Config{RootCAs: pool, ServerName: "localhost"})
	if _, err := none.Health(ctx); err == nil {
		t.Error("a client without a certificate was served")
	}
}

func newCA(t *testing.T) (*x509.Certificate, *ecdsa.PrivateKey) {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test CA"}, NotBefore: time.Now().Add(-time.Hour),
		NotAfter: time.Now().Add(time.Hour), IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(der)
	return ca, key
}

var serial int64 = 10

func issue(t *testing.T, ca *x509.Certificate, caKey *ecdsa.PrivateKey, cn string, server bool) tls.Certificate {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	serial++
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: cn}, NotBefore: time.Now().Add(-time.Hour),
		NotAfter: time.Now().Add(time.Hour), KeyUsage: x509.KeyUsageDigitalSignature}
	if server {
		tmpl.DNSNames = []string{cn}
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
	} else {
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

// The OpenAPI document describes exactly the API's routes, and every
// schema it references exists.
func TestOpenAPIMatchesRoutes(t *testing.T) {
	var doc struct {
		OpenAPI    string                                `json:"openapi"`
		Paths      map[string]map[string]json.RawMessage `json:"paths"`
		Components struct {
			Schemas   map[string]json.RawMessage `json:"schemas"`
			Responses map[string]json.RawMessage `json:"responses"`
		} `json:"components"`
	}
	if err := json.Unmarshal(OpenAPI, &doc); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(doc.OpenAPI, "3.1") {
		t.Errorf("openapi %q", doc.OpenAPI)
	}
	documented := map[string]bool{}
	for path, ops := range doc.Paths {
		for method := range ops {
			documented[strings.ToUpper(method)+" "+path] = true
		}
	}
	served := map[string]bool{"GET /metrics": true}
	for _, r := range Routes {
		served[r.Method+" "+r.Pattern] = true
	}
	var missing, extra []string
	for k := range served {
		if !documented[k] {
			missing = append(missing, k)
		}
	}
	for k := range documented {
		if !served[k] {
			extra = append(extra, k)
		}
	}
	sort.Strings(missing)
	sort.Strings(extra)
	if len(missing) > 0 || len(extra) > 0 {
		t.Errorf("routes not documented: %v; documented routes not served: %v", missing, extra)
	}
	for _, ref := range refsIn(string(OpenAPI)) {
		name := ref[strings.LastIndex(ref, "/")+1:]
		switch {
		case strings.HasPrefix(ref, "#/components/schemas/") && doc.Components.Schemas[name] != nil:
		case strings.HasPrefix(ref, "#/components/responses/") && doc.Components.Responses[name] != nil:
		default:
			t.Errorf("dangling $ref %s", ref)
		}
	}
	// The handler serves the document itself.
	h := newHarness(t, []string{"agent.doc"}, Options{}, engine.AgentOptions{})
	hc := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "unix", h.socket)
	}}}
	resp, err := hc.Get("http://localhost/v1/openapi.json")
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("GET /v1/openapi.json: %v", err)
	}
	resp.Body.Close()
}

func refsIn(s string) []string {
	var out []string
	for {
		i := strings.Index(s, `"$ref": "`)
		if i < 0 {
			return out
		}
		s = s[i+len(`"$ref": "`):]
		j := strings.IndexByte(s, '"')
		out = append(out, s[:j])
		s = s[j:]
	}
}

// Bad submissions are refused with a clear error and nothing is queued.
func TestDecodeSubmission(t *testing.T) {
	for _, tc := range []struct{ body, want string }{
		{`{"plan": "1", "extra": 1}`, "unknown field"},
		{`{"plan": ""}`, "empty"},
		{`{"plan": "1"} {}`, "after the JSON object"},
		{`{"plan": "1", "isolation": "vm"}`, "isolation"},
		{`[1]`, "cannot unmarshal"},
	} {
		if _, err := DecodeSubmission(strings.NewReader(tc.body)); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v", tc.body, err)
		}
	}
}

// A run of an agent whose chain has a key has a signed receipt at
// GET /v1/runs/{id}/receipt, which verifies against the agent's chain.
func TestRunReceipt(t *testing.T) {
	skey, vkey, _ := chain.GenerateKey("supervisor.test")
	signer, _ := chain.ParseSigner(skey)
	verifier, _ := chain.ParseVerifier(vkey)
	h := newHarness(t, []string{"agent.r"}, Options{}, engine.AgentOptions{Signer: signer})
	ctx := context.Background()
	r, err := h.c.Submit(ctx, "agent.r", plan(`(plan "p" :body (step "s" (call :ccos.math.add 1 2)))`))
	if err != nil {
		t.Fatal(err)
	}
	if r, err = h.c.Wait(ctx, r.ID); err != nil || r.Status != StatusSucceeded {
		t.Fatalf("run: %v %+v", err, r)
	}
	env, err := h.c.Receipt(ctx, r.ID)
	if err != nil {
		t.Fatal(err)
	}
	st, err := receipt.Open(env, verifier)
	if err != nil || st.Predicate.Run.Session != r.ID || st.Predicate.Run.Agent != "agent.r" {
		t.Fatalf("receipt: %v %+v", err, st)
	}
	cs, err := chain.OpenReadOnly(chain.StorageAppendFile, filepath.Join(h.dir, "agent.r.chain"))
	if err != nil {
		t.Fatal(err)
	}
	defer cs.Close()
	if _, err := receipt.Verify(env, verifier, cs); err != nil {
		t.Errorf("the receipt does not match the chain: %v", err)
	}
	var ae *client.APIError
	if _, err := h.c.Receipt(ctx, "ccos-none"); !errors.As(err, &ae) || ae.Status != 404 {
		t.Errorf("receipt of an unknown run: %v", err)
	}
}

// The Unix socket answers only local host names: a page that rebinds its
// own name to a forwarded port cannot reach the API.
func TestHostHeader(t *testing.T) {
	h := newHarness(t, []string{"agent.host"}, Options{}, engine.AgentOptions{})
	hc := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "unix", h.socket)
	}}}
	for host, want := range map[string]int{"localhost:8080": 200, "127.0.0.1": 200, "[::1]:9": 200, "supervisor": 200, "evil.example:8080": 421} {
		req, _ := http.NewRequest("GET", "http://x/v1/agents", nil)
		req.Host = host
		resp, err := hc.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("Host %s: %d, want %d", host, resp.StatusCode, want)
		}
	}
}

// Two supervisors never share a run store: the second one's open is
// refused while the first holds it.
func TestStoreLocked(t *testing.T) {
	path := filepath.Join(t.TempDir(), "runs.db")
	a, err := OpenStore(path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := OpenStore(path); !errors.Is(err, ErrStoreInUse) {
		t.Fatalf("second open: %v", err)
	}
	a.Close()
	b, err := OpenStore(path)
	if err != nil {
		t.Fatalf("open after close: %v", err)
	}
	b.Close()
}

// A drain that runs out of time leaves the runs it interrupted running in
// the store, and the next supervisor resumes and finishes them.
func TestDrainTimeoutLeavesRunsToResume(t *testing.T) {
	dir := t.TempDir()
	open := func() (*Supervisor, *engine.Engine, *Store) {
		eng, err := engine.New(engine.Options{})
		if err != nil {
			t.Fatal(err)
		}
		a, err := eng.LoadAgent([]byte(`(profile:minimal "agent.drain")`), "agent.drain.rtfs", engine.AgentOptions{Provider: "process"})
		if err != nil {
			t.Fatal(err)
		}
		if err := a.Prepare(); err != nil {
			t.Fatal(err)
		}
		store, err := OpenStore(filepath.Join(dir, "runs.db"))
		if err != nil {
			t.Fatal(err)
		}
		sup, err := New(Options{Engine: eng, Store: store})
		if err != nil {
			t.Fatal(err)
		}
		return sup, eng, store
	}
	sup, eng, store := open()
	ctx := context.Background()
	r, err := sup.Submit(ctx, "agent.drain", plan(`(step "s" (loop [i 0] (if (< i 2000000) (recur (inc i)) i)))`))
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 200; i++ {
		if g, _ := sup.Get(ctx, r.ID); g.Status == StatusRunning {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	dctx, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	sup.Drain(dctx)
	cancel()
	if g, _ := sup.Get(ctx, r.ID); g.Status != StatusRunning {
		t.Fatalf("after a drain that ran out of time: %s %s", g.Status, g.Failure)
	}
	eng.Close()
	store.Close()
	sup2, eng2, store2 := open()
	defer func() {
		c, cancel := context.WithTimeout(ctx, 30*time.Second)
		sup2.Drain(c)
		cancel()
		eng2.Close()
		store2.Close()
	}()
	for i := 0; i < 3000; i++ {
		g, _ := sup2.Get(ctx, r.ID)
		if g.Status.Final() {
			if g.Attempts != 2 || g.Status == StatusCancelled {
				t.Fatalf("resumed run: %s after %d attempts (%s)", g.Status, g.Attempts, g.Failure)
			}
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatal("the resumed run did not finish")
}
