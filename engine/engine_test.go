package engine

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ccos-project/ccos/chain"
	"github.com/ccos-project/ccos/governance"
	"github.com/ccos-project/ccos/orchestrator"
	"github.com/ccos-project/ccos/rtfs"
	"github.com/ccos-project/ccos/sandbox"
	"github.com/ccos-project/ccos/sandbox/qemu"
)

func newEngine(t *testing.T, o Options) *Engine {
	t.Helper()
	e, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close() })
	return e
}

func loadAgent(t *testing.T, e *Engine, src string, o AgentOptions) *Agent {
	t.Helper()
	a, err := e.LoadAgent([]byte(src), "<test config>", o)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// A plan runs in the process sandbox through the engine: the result, and
// every event in the agent's chain under the run's id.
func TestRunProcess(t *testing.T) {
	e := newEngine(t, Options{})
	a := loadAgent(t, e, `(profile:minimal "agent.one")`, AgentOptions{Provider: "process"})
	var mu sync.Mutex
	var seen []Event
	res, err := a.Run(context.Background(), RunRequest{ID: "run-1",
		PlanInput: PlanInput{Source: []byte(`(plan "p" :body (step "add" (println "hi") (call :ccos.math.add 40 2)))`), File: "p.rtfs"},
		OnEvent: func(ev Event) {
			mu.Lock()
			seen = append(seen, ev)
			mu.Unlock()
		}})
	if err != nil {
		t.Fatal(err)
	}
	if !res.OK() || *res.Value != "42" || res.Provider != "process" || res.Output != "hi\n" || res.ID != "run-1" || len(res.Steps) != 1 {
		t.Fatalf("result %+v", res)
	}
	rec, _ := a.Recorder()
	if rec.Size() == 0 {
		t.Fatal("nothing recorded")
	}
	types := map[string]bool{}
	for i, ev := range seen {
		if ev.Run != "run-1" || ev.Seq != i+1 {
			t.Errorf("event %d: %+v", i, ev)
		}
		types[ev.Type] = true
	}
	for _, want := range []string{"plan.admitted", "step.started", "step.finished", EventOutput, "plan.finished"} {
		if !types[want] {
			t.Errorf("no %s event among %v", want, types)
		}
	}
}

// The one admission entry point: every reason at once, a plan that does
// not read, an approval that does not parse, the cache.
func TestAdmit(t *testing.T) {
	e := newEngine(t, Options{})
	a := loadAgent(t, e, `(profile:minimal "agent.adm")`, AgentOptions{})
	in := PlanInput{Source: []byte(`(step "s" (call :ccos.math.add 1 2))`), File: "ok.rtfs"}
	ad, err := a.Admit(in)
	if err != nil || ad.CacheHit {
		t.Fatalf("admit: %v %+v", err, ad)
	}
	if ad, err = a.Admit(in); err != nil || !ad.CacheHit {
		t.Fatalf("second admit: %v, cache hit %v", err, ad != nil && ad.CacheHit)
	}
	var ae *AdmissionError
	_, err = a.Admit(PlanInput{Source: []byte(`(step "s" (call :ccos.network.http-fetch "https://x.example") (call :no.such 1))`)})
	var rs governance.Rejections
	if !errors.As(err, &ae) || ae.Stage != "admission" || !errors.As(err, &rs) || len(rs) < 2 {
		t.Errorf("refused plan: %v", err)
	}
	if _, err = a.Admit(PlanInput{Source: []byte(`(step "s"`)}); !errors.As(err, &ae) || ae.Stage != "plan" {
		t.Errorf("unreadable plan: %v", err)
	}
	if _, err = a.Admit(PlanInput{Source: in.Source, Approvals: []string{"nonsense"}}); !errors.As(err, &ae) || ae.Stage != "approval" {
		t.Errorf("bad approval: %v", err)
	}
	if _, err = a.Admit(PlanInput{Source: in.Source, Isolation: "container"}); err != nil {
		t.Errorf("a run may ask for isolation as strong as the config's: %v", err)
	}
}

// Never weaker: a provider weaker than the config's mode is refused
// unless allowed; a config whose mode has no available provider fails
// with every reason instead of falling back.
func TestNeverWeaker(t *testing.T) {
	e := newEngine(t, Options{})
	vm := loadAgent(t, e, vmConfig("agent.vm"), AgentOptions{Provider: "process"})
	var we *WeakerError
	if _, err := vm.Provider(""); !errors.As(err, &we) {
		t.Fatalf("process for a :microvm config: %v", err)
	}
	allowed := loadAgent(t, e, vmConfig("agent.vm2"), AgentOptions{Provider: "process", AllowWeaker: true})
	if p, err := allowed.Provider(""); err != nil || p.Name() != "process" {
		t.Fatalf("--allow-weaker: %v", err)
	}
	if _, err := allowed.Provider("wasm"); err == nil || !strings.Contains(err.Error(), "weaker than the config's") {
		t.Errorf("a run asking for weaker isolation than the config: %v", err)
	}
	none := newEngine(t, Options{Providers: func(ProviderEnv) []sandbox.Provider { return nil }})
	a := loadAgent(t, none, `(profile:minimal "agent.none")`, AgentOptions{})
	if _, err := a.Provider(""); !errors.Is(err, sandbox.ErrUnavailable) || !strings.Contains(err.Error(), "does not fall back") {
		t.Errorf("no provider: %v", err)
	}
}

// Providers are built per agent from the engine's options: two engines
// with different qemu settings coexist in one process.
func TestProvidersPerEngine(t *testing.T) {
	snap := newEngine(t, Options{VMSnapshots: true, CacheDir: t.TempDir()})
	boot := newEngine(t, Options{})
	qemuOf := func(a *Agent) *qemu.Provider {
		for _, p := range a.SandboxProviders() {
			if q, ok := p.(*qemu.Provider); ok {
				return q
			}
		}
		t.Fatal("no qemu provider")
		return nil
	}
	a := qemuOf(loadAgent(t, snap, vmConfig("agent.snap"), AgentOptions{}))
	b := qemuOf(loadAgent(t, boot, vmConfig("agent.boot"), AgentOptions{}))
	if a == b || a.Options().SnapshotDir == "" || b.Options().SnapshotDir != "" {
		t.Errorf("snapshot dirs %q and %q", a.Options().SnapshotDir, b.Options().SnapshotDir)
	}
	if a.Options().Config.AgentID != "agent.snap" || b.Options().Config.AgentID != "agent.boot" {
		t.Error("a qemu provider does not hold its own agent's config")
	}
	if _, err := snap.LoadAgent([]byte(`(profile:minimal "agent.snap")`), "dup", AgentOptions{}); !errors.Is(err, ErrDuplicateAgent) {
		t.Errorf("a second agent with one id: %v", err)
	}
}

// An invalid config is a ConfigError with every diagnostic.
func TestInvalidConfig(t *testing.T) {
	e := newEngine(t, Options{})
	_, err := e.LoadAgent([]byte(`(agent.config :version "0.1" :agent-id "a.b" :orchestrator {:isolation {:mode :vm}})`), "bad.rtfs", AgentOptions{})
	var ce *ConfigError
	if !errors.As(err, &ce) || !strings.Contains(err.Error(), "bad.rtfs:1:") || !strings.Contains(err.Error(), "INVALID_VALUE") {
		t.Fatalf("got %v", err)
	}
}

// Concurrent runs of one agent fetch through the egress proxy at once,
// each step's requests carrying that step's ACL; every decision is
// recorded in the chain tagged with its run, plan hash and step.
func TestConcurrentEgress(t *testing.T) {
	var hits atomic.Int32
	origin := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		io.WriteString(w, "ok "+r.URL.Path)
	}))
	defer origin.Close()
	_, port, _ := net.SplitHostPort(origin.Listener.Addr().String())
	lo := netip.MustParseAddr("127.0.0.1")
	e := newEngine(t, Options{Egress: EgressOptions{
		Resolve:     map[string][]netip.Addr{"origin.test": {lo}, "other.test": {lo}},
		AllowRanges: []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}}})
	chainFile := filepath.Join(t.TempDir(), "chain")
	a := loadAgent(t, e, `(-> (profile:networked "agent.net" ["origin.test" "other.test"])
	  (assoc-in [:network :egress :mtls] false)
	  (assoc-in [:capabilities :http :egress :mtls] false))`,
		AgentOptions{Provider: "process", Level: governance.LevelFull, Chain: chainFile})
	plan := func(i int) string {
		return fmt.Sprintf(`(plan "fetch%d" :body [
		  (step "get" [:effects [[:network {:domains ["origin.test"] :methods [:GET]}]]]
		    (get (call :ccos.network.http-fetch "http://origin.test:%s/%d") :body))
		  (step "denied" [:effects [[:network {:domains ["origin.test"] :methods [:GET]}]]]
		    ;; computed, so that admission cannot refuse it: the grant does
		    (try (call :ccos.network.http-fetch (str "http://other.test:" "%s/")) (catch e "refused")))])`, i, port, i, port)
	}
	const n = 6
	var wg sync.WaitGroup
	results := make([]*RunResult, n)
	errs := make([]error, n)
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i], errs[i] = a.Run(context.Background(), RunRequest{ID: fmt.Sprintf("run-%d", i), PlanInput: PlanInput{Source: []byte(plan(i))}})
		}()
	}
	wg.Wait()
	for i := range results {
		if errs[i] != nil {
			t.Fatalf("run %d: %v", i, errs[i])
		}
		want := fmt.Sprintf(`["ok /%d" "refused"]`, i)
		if results[i].Value == nil || *results[i].Value != want {
			t.Errorf("run %d: %+v, want %s", i, results[i], want)
		}
	}
	if hits.Load() != n {
		t.Errorf("the origin was reached %d times, want %d", hits.Load(), n)
	}
	rec, _ := a.Recorder()
	rec.Close()
	store, err := chain.OpenReadOnly(chain.StorageAppendFile, chainFile)
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	decisions := map[string][]string{}
	err = store.Records(func(_ uint64, data []byte) error {
		ev, err := chain.Decode(data)
		if err != nil || ev.Type != chain.TypeProxyDecision {
			return err
		}
		if ev.Plan == "" || ev.Step == "" {
			t.Errorf("decision without plan or step: %+v", ev)
		}
		decisions[ev.Session] = append(decisions[ev.Session], ev.Step+" "+strings.Fields(chainPayloadAction(ev))[0])
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < n; i++ {
		got := strings.Join(decisions[fmt.Sprintf("run-%d", i)], ", ")
		if got != "get allow, denied deny" {
			t.Errorf("run-%d decisions: %s", i, got)
		}
	}
}

// vmConfig is a :microvm config that validates.
func vmConfig(id string) string {
	return `(assoc-in (profile:microvm-min "` + id + `") [:microvm :attestation :expect_rootfs_hash] "sha256:32c1e93f492092af1ca282d02427ba535f453598fd276c28b842d7325e03615a")`
}

func chainPayloadAction(ev *chain.Event) string {
	s := rtfs.Print(ev.Payload)
	if i := strings.Index(s, ":action :"); i >= 0 {
		return s[i+len(":action :"):]
	}
	return "none"
}

// A side-effecting call recorded by an earlier attempt is not repeated by
// a run resumed with its call journal; one started and never finished is
// reported in doubt.
func TestJournalledCallsNotRepeated(t *testing.T) {
	var hits atomic.Int32
	origin := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		io.WriteString(w, "posted")
	}))
	defer origin.Close()
	_, port, _ := net.SplitHostPort(origin.Listener.Addr().String())
	lo := netip.MustParseAddr("127.0.0.1")
	e := newEngine(t, Options{Egress: EgressOptions{Resolve: map[string][]netip.Addr{"origin.test": {lo}},
		AllowRanges: []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}}})
	a := loadAgent(t, e, `(-> (profile:networked "agent.j" ["origin.test"])
	  (assoc-in [:network :egress :mtls] false)
	  (assoc-in [:capabilities :http :egress :mtls] false))`, AgentOptions{Provider: "process", Level: governance.LevelFull})
	src := []byte(fmt.Sprintf(`(step "post" [:effects [[:network {:domains ["origin.test"] :methods [:POST]}]]]
	  (get (call :ccos.network.http-fetch "http://origin.test:%s/x" {:method "POST" :body "hello"}) :body))`, port))
	j := &memJournal{}
	calls, err := orchestrator.NewCallRecordWith(j)
	if err != nil {
		t.Fatal(err)
	}
	res, err := a.Run(context.Background(), RunRequest{PlanInput: PlanInput{Source: src}, Calls: calls})
	if err != nil || !res.OK() || hits.Load() != 1 {
		t.Fatalf("first run: %v %+v, %d hits", err, res, hits.Load())
	}
	// A resumed run: the journal answers.
	calls, _ = orchestrator.NewCallRecordWith(j)
	res, err = a.Run(context.Background(), RunRequest{PlanInput: PlanInput{Source: src}, Calls: calls})
	if err != nil || !res.OK() || *res.Value != `"posted"` || hits.Load() != 1 {
		t.Fatalf("resumed run: %v %+v, %d hits", err, res, hits.Load())
	}
	// A call started and never finished: in doubt, not re-sent.
	j.mu.Lock()
	for i := range j.entries {
		j.entries[i].Done, j.entries[i].Value = false, ""
	}
	j.mu.Unlock()
	calls, _ = orchestrator.NewCallRecordWith(j)
	res, err = a.Run(context.Background(), RunRequest{PlanInput: PlanInput{Source: src}, Calls: calls})
	if err != nil || res.OK() || len(res.InDoubt) != 1 || hits.Load() != 1 {
		t.Fatalf("in-doubt run: %v %+v, %d hits", err, res, hits.Load())
	}
}

type memJournal struct {
	mu      sync.Mutex
	entries []orchestrator.JournalEntry
}

func (j *memJournal) Load() ([]orchestrator.JournalEntry, error) {
	j.mu.Lock()
	defer j.mu.Unlock()
	return append([]orchestrator.JournalEntry(nil), j.entries...), nil
}

func (j *memJournal) Begin(e orchestrator.JournalEntry) error {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.entries = append(j.entries, e)
	return nil
}

func (j *memJournal) Finish(e orchestrator.JournalEntry) error {
	j.mu.Lock()
	defer j.mu.Unlock()
	for i := range j.entries {
		if j.entries[i].Key == e.Key {
			j.entries[i] = e
		}
	}
	return nil
}

// A pooled sandbox's deadline starts when a run takes it: a pool whose
// runs have a short deadline, left idle far longer, still serves a plan.
func TestPoolIdlePastDeadline(t *testing.T) {
	e := newEngine(t, Options{})
	a := loadAgent(t, e, `(profile:minimal "agent.pool")`, AgentOptions{Provider: "process", Pool: 1,
		Limits: sandbox.Limits{Deadline: 1500 * time.Millisecond}})
	if err := a.Prepare(); err != nil {
		t.Fatal(err)
	}
	pool := a.Pool()
	for i := 0; i < 200 && pool.Stats().Ready < 1; i++ {
		time.Sleep(20 * time.Millisecond)
	}
	time.Sleep(3 * time.Second)
	if st := pool.Stats(); st.Ready != 1 || st.Died != 0 {
		t.Fatalf("after idling past the deadline: %+v", st)
	}
	res, err := a.Run(context.Background(), RunRequest{PlanInput: PlanInput{Source: []byte(`(step "s" (call :ccos.math.add 1 2))`)}})
	if err != nil || !res.OK() {
		t.Fatalf("run from the pool: %v %+v", err, res)
	}
}
