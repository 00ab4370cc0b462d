package supervisor_test

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
	"unicode/utf16"

	"github.com/ccos-project/ccos/chain"
	"github.com/ccos-project/ccos/control"
	"github.com/ccos-project/ccos/engine"
	"github.com/ccos-project/ccos/governance"
	"github.com/ccos-project/ccos/sandbox"
	. "github.com/ccos-project/ccos/supervisor"
	"github.com/ccos-project/ccos/supervisor/client"
)

// consoleHarness is a supervisor in this process with two agents in the
// process sandbox, each with a signed chain: agent.net may fetch from
// origin.test (and other.test, which no step of the egress plan allows)
// through the egress proxy, both names pinned to a loopback origin;
// agent.min has no network. Its API is served on a Unix socket (the
// operator's, as h.c) and on loopback TCP (for the browser: as the
// socket's operator, the way an SSH forward of the socket serves it).
type consoleHarness struct {
	*harness
	origin *httptest.Server
	port   string
	http   string // http://127.0.0.1:PORT of the TCP listener
	chains map[string]string
}

func newConsoleHarness(t testing.TB) *consoleHarness {
	t.Helper()
	dir := t.TempDir()
	origin := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "hello from the origin")
	}))
	t.Cleanup(origin.Close)
	_, port, _ := net.SplitHostPort(origin.Listener.Addr().String())
	lo := netip.MustParseAddr("127.0.0.1")
	eng, err := engine.New(engine.Options{Egress: engine.EgressOptions{
		Resolve:     map[string][]netip.Addr{"origin.test": {lo}, "other.test": {lo}},
		AllowRanges: []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}}})
	if err != nil {
		t.Fatal(err)
	}
	skey, vkey, err := chain.GenerateKey("ccos.test/console")
	if err != nil {
		t.Fatal(err)
	}
	signer, _ := chain.ParseSigner(skey)
	verifier, _ := chain.ParseVerifier(vkey)
	configs := map[string]string{
		"agent.net": `(-> (profile:networked "agent.net" ["origin.test" "other.test"])
		  (assoc-in [:network :egress :mtls] false)
		  (assoc-in [:capabilities :http :egress :mtls] false))`,
		"agent.min": `(profile:minimal "agent.min")`,
	}
	ch := &consoleHarness{origin: origin, port: port, chains: map[string]string{}}
	for _, id := range []string{"agent.min", "agent.net"} {
		ch.chains[id] = filepath.Join(dir, id+".chain")
		// The spinning runs of the tests must outlast the tests' steps on
		// a slow machine: they end by cancellation, not at a limit.
		a, err := eng.LoadAgent([]byte(configs[id]), id+".rtfs", engine.AgentOptions{Provider: "process", Level: governance.LevelFull,
			Chain: ch.chains[id], Signer: signer, Limits: sandbox.Limits{Deadline: 10 * time.Minute},
			Evaluation: control.RunLimits{TimeoutMillis: 5 * 60 * 1000, Steps: 1 << 40}})
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
	sup, err := New(Options{Engine: eng, Store: store, ChainVerifier: verifier, Limits: map[string]int{"process": 4},
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
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
	tcp, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	web := &http.Server{Handler: sup.Handler(nil)}
	go web.Serve(tcp)
	t.Cleanup(func() { web.Close() })
	ch.harness, ch.http = h, "http://"+tcp.Addr().String()
	return ch
}

// egressPlan fetches from origin.test in step "get" (allowed) and from
// other.test in step "denied", whose ACL does not name it (refused by the
// proxy, caught by the plan; the URL is computed, so that admission, which
// refuses a literal one, cannot).
func (ch *consoleHarness) egressPlan() Submission {
	return Submission{File: "egress.rtfs", Plan: fmt.Sprintf(`(plan "egress" :body [
  (step "get" [:effects [[:network {:domains ["origin.test"] :methods [:GET]}]]]
    (println "fetching")
    (get (call :ccos.network.http-fetch "http://origin.test:%s/data") :body))
  (step "denied" [:effects [[:network {:domains ["origin.test"] :methods [:GET]}]]]
    (try (call :ccos.network.http-fetch (str "http://other.test:" "%s/")) (catch e "refused")))])`, ch.port, ch.port)}
}

// run submits a plan and waits for its end.
func (ch *consoleHarness) run(t testing.TB, agent string, sub Submission) *Run {
	t.Helper()
	ctx := context.Background()
	r, err := ch.c.Submit(ctx, agent, sub)
	if err != nil {
		t.Fatal(err)
	}
	if r, err = ch.c.Wait(ctx, r.ID); err != nil {
		t.Fatal(err)
	}
	return r
}

// getJSON GETs (or POSTs) a path of the TCP listener and decodes the answer.
func getJSON(t testing.TB, hc *http.Client, method, url string, out any) int {
	t.Helper()
	req, _ := http.NewRequest(method, url, nil)
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if out != nil {
		if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
			t.Fatalf("%s %s: %v", method, url, err)
		}
	}
	return resp.StatusCode
}

// tamper flips one byte inside the payload of the chain file's event seq.
func tamper(t testing.TB, path string, seq int) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	off := 8 // after the file header
	for i := 0; i < seq; i++ {
		off += 4 + int(uint32(b[off])<<24|uint32(b[off+1])<<16|uint32(b[off+2])<<8|uint32(b[off+3])) + 4
	}
	n := int(uint32(b[off])<<24 | uint32(b[off+1])<<16 | uint32(b[off+2])<<8 | uint32(b[off+3]))
	at := off + 4 + n - 2 // inside the payload, before the CRC
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteAt([]byte{b[at] ^ 0x20}, int64(at)); err != nil {
		t.Fatal(err)
	}
}

// The console's API: its files with a strict content policy; a run's plan
// with each step's place in the source; an agent's chain, verified on the
// server from its stored bytes (a changed byte is found at its event) and
// an inclusion proof of any covered event; the agents' derived limits.
func TestConsoleAPI(t *testing.T) {
	ch := newConsoleHarness(t)
	hc := &http.Client{}
	resp, err := hc.Get(ch.http + "/ui/")
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(page), `<script type="module" src="app.js">`) ||
		!strings.Contains(resp.Header.Get("Content-Security-Policy"), "default-src 'none'") || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") {
		t.Fatalf("GET /ui/: %d %v\n%s", resp.StatusCode, resp.Header, page)
	}
	for path, want := range map[string]int{"/ui/app.js": 200, "/ui/app.css": 200, "/ui/nothing.js": 404} {
		if resp, err := hc.Get(ch.http + path); err != nil || resp.StatusCode != want {
			t.Errorf("GET %s: %v %v", path, err, resp)
		} else {
			resp.Body.Close()
		}
	}
	// No file of the console refers to another origin.
	for _, name := range []string{"index.html", "app.js", "app.css"} {
		b, err := os.ReadFile(filepath.Join("ui", name))
		if err != nil {
			t.Fatal(err)
		}
		if s := string(b); strings.Contains(s, "http://") || strings.Contains(s, "https://") || strings.Contains(s, "//cdn") || strings.Contains(s, "innerHTML") {
			t.Errorf("ui/%s refers to another origin or writes markup", name)
		}
	}

	run := ch.run(t, "agent.net", ch.egressPlan())
	if run.Status != StatusSucceeded || run.Value == nil || *run.Value != `["hello from the origin" "refused"]` {
		t.Fatalf("egress run: %+v", run)
	}
	// Every event says who asserts it.
	ch.c.Events(context.Background(), run.ID, 0, func(e engine.Event) error {
		ok := e.Origin == "host" || e.Origin == "guest"
		if e.Type == engine.EventOutput {
			ok = e.Origin == ""
		}
		if !ok {
			t.Errorf("event %d (%s) has origin %q", e.Seq, e.Type, e.Origin)
		}
		return nil
	})
	var pv PlanView
	if code := getJSON(t, hc, "GET", ch.http+"/v1/runs/"+run.ID+"/plan", &pv); code != 200 || len(pv.Steps) != 2 {
		t.Fatalf("plan: %d %+v", code, pv)
	}
	src := utf16.Encode([]rune(ch.egressPlan().Plan))
	for _, st := range pv.Steps {
		text := string(utf16.Decode(src[st.Start.UTF16:st.End.UTF16]))
		if !strings.HasPrefix(text, `(step "`+st.Name+`"`) || !strings.HasSuffix(text, ")") {
			t.Errorf("step %s spans %q", st.Name, text)
		}
		if len(st.Calls) != 1 || st.Calls[0] != "ccos.network.http-fetch" {
			t.Errorf("step %s calls %v", st.Name, st.Calls)
		}
	}

	var info ChainInfo
	if code := getJSON(t, hc, "GET", ch.http+"/v1/agents/agent.net/chain", &info); code != 200 || info.Size == 0 ||
		info.Checkpoint == nil || info.Checkpoint.Size != info.Size-1 || !info.Signing || !info.Verifier {
		t.Fatalf("chain info: %d %+v", code, info)
	}
	var v ChainVerification
	if code := getJSON(t, hc, "POST", ch.http+"/v1/agents/agent.net/chain/verify", &v); code != 200 || !v.OK || v.Events != info.Size ||
		v.Checkpoints != 1 || !v.SignaturesChecked {
		t.Fatalf("verify: %d %+v", code, v)
	}
	var p ChainProof
	if code := getJSON(t, hc, "GET", ch.http+"/v1/agents/agent.net/chain/proof?index=2", &p); code != 200 || !p.Verified ||
		!p.SignatureChecked || p.Event.Session != run.ID || len(p.Proof) == 0 || p.Checkpoint.Size != info.Checkpoint.Size {
		t.Fatalf("proof: %d %+v", code, p)
	}
	var e ErrorBody
	for q, want := range map[string]int{"index=" + fmt.Sprint(info.Size-1): 409, "index=" + fmt.Sprint(info.Size): 404, "index=x": 400} {
		if code := getJSON(t, hc, "GET", ch.http+"/v1/agents/agent.net/chain/proof?"+q, &e); code != want || e.Error == "" {
			t.Errorf("proof %s: %d %+v", q, code, e)
		}
	}
	if code := getJSON(t, hc, "GET", ch.http+"/v1/agents/nobody/chain", &e); code != 404 {
		t.Errorf("chain of an unknown agent: %d", code)
	}
	if code := getJSON(t, hc, "GET", ch.http+"/v1/runs/ccos-none/plan", &e); code != 404 {
		t.Errorf("plan of an unknown run: %d", code)
	}

	var agents struct{ Agents []AgentInfo }
	getJSON(t, hc, "GET", ch.http+"/v1/agents", &agents)
	if len(agents.Agents) != 2 || agents.Agents[1].Limits.MemoryBytes == 0 || agents.Agents[1].Limits.DeadlineMS == 0 ||
		agents.Agents[1].Limits.Concurrent != 4 || agents.Agents[1].Limits.Queue != 256 {
		t.Errorf("agents' limits: %+v", agents.Agents)
	}

	// A byte changed on disk under the running supervisor.
	tamper(t, ch.chains["agent.net"], 3)
	v = ChainVerification{}
	if code := getJSON(t, hc, "POST", ch.http+"/v1/agents/agent.net/chain/verify", &v); code != 200 || v.OK || v.BadSeq == nil || *v.BadSeq != 3 || v.Error == "" {
		t.Fatalf("verify a tampered chain: %d %+v", code, v)
	}
	if code := getJSON(t, hc, "GET", ch.http+"/v1/agents/agent.net/chain/proof?index=1", &e); code != 409 {
		t.Errorf("proof from a tampered chain: %d %+v", code, e)
	}
}

// sseReader reads Server-Sent Events.
type sseReader struct {
	sc *bufio.Scanner
}

type sse struct{ id, event, data string }

func (r *sseReader) next() (sse, error) {
	var e sse
	for r.sc.Scan() {
		line := r.sc.Text()
		switch {
		case line == "":
			if e.event != "" || e.data != "" {
				return e, nil
			}
		case strings.HasPrefix(line, "id: "):
			e.id = line[4:]
		case strings.HasPrefix(line, "event: "):
			e.event = line[7:]
		case strings.HasPrefix(line, "data: "):
			e.data = line[6:]
		}
	}
	if err := r.sc.Err(); err != nil {
		return e, err
	}
	return e, io.EOF
}

func openFeed(t *testing.T, hc *http.Client, url, lastID string) (*sseReader, func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, "GET", url, nil)
	if lastID != "" {
		req.Header.Set("Last-Event-ID", lastID)
	}
	resp, err := hc.Do(req)
	if err != nil || resp.StatusCode != 200 {
		cancel()
		t.Fatalf("GET %s: %v %v", url, err, resp)
	}
	return &sseReader{sc: bufio.NewScanner(resp.Body)}, func() { cancel(); resp.Body.Close() }
}

// The run changes feed tells a subscriber of each run it may see as it is
// queued, runs and ends, resumes from Last-Event-ID, says "reset" for an
// id it cannot resume from, and never shows an agent another agent's run.
func TestRunChangesFeed(t *testing.T) {
	ch := newConsoleHarness(t)
	hc := &http.Client{}
	feed, stop := openFeed(t, hc, ch.http+"/v1/events", "")
	defer stop()
	if e, err := feed.next(); err != nil || e.event != "hello" {
		t.Fatalf("first event: %+v %v", e, err)
	}
	run := ch.run(t, "agent.min", Submission{Plan: `(step "s" (call :ccos.math.add 1 2))`})
	var seen []Status
	var lastID string
	for len(seen) == 0 || seen[len(seen)-1] != StatusSucceeded {
		e, err := feed.next()
		if err != nil {
			t.Fatalf("feed: %v after %v", err, seen)
		}
		var r Run
		if e.event != "run" || json.Unmarshal([]byte(e.data), &r) != nil || r.ID != run.ID {
			t.Fatalf("feed event %+v", e)
		}
		seen, lastID = append(seen, r.Status), e.id
	}
	if seen[0] != StatusQueued && seen[0] != StatusRunning {
		t.Errorf("states seen: %v", seen)
	}
	stop()

	// Resumed after the last id: only what changed since.
	second := ch.run(t, "agent.net", Submission{Plan: `(step "t" 1)`})
	feed, stop2 := openFeed(t, hc, ch.http+"/v1/events", lastID)
	defer stop2()
	feed.next() // hello
	for {
		e, err := feed.next()
		if err != nil {
			t.Fatal(err)
		}
		var r Run
		json.Unmarshal([]byte(e.data), &r)
		if r.ID == run.ID {
			t.Fatalf("the resumed feed repeats the first run: %+v", e)
		}
		if r.ID == second.ID && r.Status == StatusSucceeded {
			break
		}
	}
	stop2()
	feed, stop3 := openFeed(t, hc, ch.http+"/v1/events", "zz-3")
	defer stop3()
	feed.next()
	if e, err := feed.next(); err != nil || e.event != "reset" {
		t.Errorf("an id of another supervisor: %+v %v", e, err)
	}
	stop3()

	// An agent's certificate: its runs only.
	ca, caKey := newCA(t)
	pool := x509.NewCertPool()
	pool.AddCert(ca)
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{issue(t, ca, caKey, "localhost", true)},
		ClientCAs: pool, ClientAuth: tls.RequireAndVerifyClientCert, MinVersion: tls.VersionTLS13})
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: ch.sup.Handler(nil)}
	go srv.Serve(ln)
	defer srv.Close()
	as := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, ServerName: "localhost",
		Certificates: []tls.Certificate{issue(t, ca, caKey, "agent.min", false)}}}}
	base := "https://" + ln.Addr().String()
	var e ErrorBody
	if code := getJSON(t, as, "GET", base+"/v1/events?agent=agent.net", &e); code != 403 {
		t.Errorf("agent.min's feed of agent.net: %d", code)
	}
	for _, path := range []string{"/v1/agents/agent.net/chain", "/v1/agents/agent.net/chain/proof?index=0"} {
		if code := getJSON(t, as, "GET", base+path, &e); code != 403 {
			t.Errorf("agent.min: GET %s: %d", path, code)
		}
	}
	if code := getJSON(t, as, "POST", base+"/v1/agents/agent.net/chain/verify", &e); code != 403 {
		t.Errorf("agent.min verifying agent.net's chain: %d", code)
	}
	if code := getJSON(t, as, "GET", base+"/v1/runs/"+second.ID+"/plan", &e); code != 404 {
		t.Errorf("agent.min reading agent.net's plan: %d", code)
	}
	var info ChainInfo
	if code := getJSON(t, as, "GET", base+"/v1/agents/agent.min/chain", &info); code != 200 || info.Size == 0 {
		t.Errorf("agent.min's own chain: %d %+v", code, info)
	}
	if resp, err := as.Get(base + "/ui/"); err != nil || resp.StatusCode != 200 {
		t.Errorf("agent.min's console: %v %v", err, resp)
	}
	feed, stop4 := openFeed(t, as, base+"/v1/events", "")
	defer stop4()
	feed.next()
	ch.run(t, "agent.net", Submission{Plan: `(step "u" 2)`})
	mine := ch.run(t, "agent.min", Submission{Plan: `(step "v" 3)`})
	for {
		e, err := feed.next()
		if err != nil {
			t.Fatal(err)
		}
		var r Run
		json.Unmarshal([]byte(e.data), &r)
		if r.Agent == "agent.net" {
			t.Fatalf("agent.min's feed shows agent.net's run %s", r.ID)
		}
		if r.ID == mine.ID && r.Status == StatusSucceeded {
			break
		}
	}
}

// Whatever Last-Event-ID a client sends to the run changes feed, the
// stream starts with hello and, for an id this supervisor did not give,
// says reset.
func FuzzRunChangesLastEventID(f *testing.F) {
	for _, seed := range []string{"", "zz-3", "-", "abc-", "-1", "0-0", "x-18446744073709551615", "\x00-\xff"} {
		f.Add(seed)
	}
	ch := newConsoleHarness(f)
	handler := ch.sup.Handler(nil)
	f.Fuzz(func(t *testing.T, id string) {
		ctx, cancel := context.WithCancel(context.Background())
		cancel() // the handler answers what it has, then sees the client gone
		req := httptest.NewRequest("GET", "/v1/events", nil).WithContext(ctx)
		req.Host = "localhost"
		if id != "" {
			req.Header.Set("Last-Event-ID", id)
		}
		rec := httptest.NewRecorder()
		handler.ServeHTTP(rec, req)
		body := rec.Body.String()
		if rec.Code != 200 || !strings.HasPrefix(body, "event: hello\n") {
			t.Fatalf("Last-Event-ID %q: %d %q", id, rec.Code, body)
		}
		if id != "" && !strings.Contains(body, "event: reset") {
			t.Errorf("Last-Event-ID %q of no change of this supervisor: no reset in %q", id, body)
		}
	})
}

// The events stream of a queued run waits for it to start, then carries
// its events and its end: it does not end at once saying "queued".
func TestEventsOfQueuedRun(t *testing.T) {
	ch := newConsoleHarness(t)
	ctx := context.Background()
	spin := Submission{Plan: `(step "spin" (loop [i 0] (if (< i 100000000) (recur (inc i)) i)))`}
	var spinning []string
	for i := 0; i < 4; i++ { // the lane's four workers
		r, err := ch.c.Submit(ctx, "agent.min", spin)
		if err != nil {
			t.Fatal(err)
		}
		spinning = append(spinning, r.ID)
	}
	later, err := ch.c.Submit(ctx, "agent.min", Submission{Plan: `(step "later" 1)`})
	if err != nil {
		t.Fatal(err)
	}
	if r, _ := ch.c.Get(ctx, later.ID); r.Status != StatusQueued {
		t.Fatalf("the fifth run is %s, want queued", r.Status)
	}
	done := make(chan Status, 1)
	var types []string
	go func() {
		st, err := ch.c.Events(ctx, later.ID, 0, func(e engine.Event) error { types = append(types, e.Type); return nil })
		if err != nil {
			t.Error(err)
		}
		done <- st
	}()
	select {
	case st := <-done:
		t.Fatalf("the stream of a queued run ended at once: %s", st)
	case <-time.After(300 * time.Millisecond):
	}
	for _, id := range spinning {
		ch.c.Cancel(ctx, id)
	}
	if st := <-done; st != StatusSucceeded || !strings.Contains(strings.Join(types, " "), "step.started") {
		t.Errorf("after it ran: %s %v", st, types)
	}
}
