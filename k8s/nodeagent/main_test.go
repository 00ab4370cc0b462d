package nodeagent

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ccos-project/ccos/chain"
	"github.com/ccos-project/ccos/engine"
	"github.com/ccos-project/ccos/governance"
	"github.com/ccos-project/ccos/guest"
	"github.com/ccos-project/ccos/internal/testenv"
	"github.com/ccos-project/ccos/k8s/api/v1alpha1"
	"github.com/ccos-project/ccos/k8s/internal/kubetest"
	"github.com/ccos-project/ccos/sandbox"
	"github.com/ccos-project/ccos/sandbox/process"
	"golang.org/x/mod/sumdb/note"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
)

// The tests share one real API server (kube-apiserver and etcd, see
// scripts/kube-assets); each test works in a namespace of its own.
var (
	apiCfg            *rest.Config
	admin             client.Client
	skipWhat, skipHow string
)

// TestMain makes this binary the guest of the process sandboxes, and
// starts the API server.
func TestMain(m *testing.M) {
	sandbox.GuestMain = guest.Run
	process.InitIfChild()
	env, err := startAPIServer()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := m.Run()
	if env != nil {
		env.Stop()
	}
	os.Exit(code)
}

func startAPIServer() (*envtest.Environment, error) {
	scheme, err := Scheme()
	if err != nil {
		return nil, err
	}
	env, cfg, ok, err := kubetest.Start(scheme)
	if !ok || err != nil {
		skipWhat, skipHow = kubetest.What, kubetest.HowToGet
		return nil, err
	}
	apiCfg = cfg
	if admin, err = client.New(apiCfg, client.Options{Scheme: scheme}); err != nil {
		env.Stop()
		return nil, err
	}
	return env, nil
}

// needAPI skips (or, under CI, fails) a test without the API server or
// the process provider.
func needAPI(t *testing.T) {
	t.Helper()
	if skipWhat != "" {
		testenv.Missing(t, skipWhat, skipHow)
	}
	if ok, why := (&process.Provider{}).Available(); !ok {
		testenv.Missing(t, "the process provider cannot run here: "+why, "run the tests as root on Linux with user namespaces")
	}
}

// namespace creates a namespace for one test.
func namespace(t *testing.T) string {
	t.Helper()
	name := strings.ToLower(strings.NewReplacer("/", "-", "_", "-").Replace(t.Name()))
	if len(name) > 50 {
		name = name[:50]
	}
	name = strings.Trim(name, "-")
	if err := admin.Create(context.Background(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}); err != nil {
		t.Fatal(err)
	}
	return name
}

// origin counts the POSTs it receives, by body.
type origin struct {
	port int
	mu   sync.Mutex
	hits map[string]int
}

func startOrigin(t *testing.T) *origin {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	o := &origin{hits: map[string]int{}, port: ln.Addr().(*net.TCPAddr).Port}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var b bytes.Buffer
		b.ReadFrom(r.Body)
		o.mu.Lock()
		o.hits[b.String()]++
		o.mu.Unlock()
		fmt.Fprint(w, "recorded")
	})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return o
}

func (o *origin) count(body string) int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.hits[body]
}

// netConfig may POST to origin.test (loopback) in the process sandbox.
const netConfig = `(-> (profile:networked "agent.nodeagent-test" ["origin.test"])
  (assoc-in [:network :egress :mtls] false)
  (assoc-in [:capabilities :http :egress :mtls] false)
  (assoc-in [:orchestrator :isolation :mode] :container))`

// postPlan POSTs body, waits pause, then POSTs body+"-2" in a second step.
func postPlan(port int, body string, pause time.Duration) string {
	return fmt.Sprintf(`(plan "post" :body
  [(step "one" [:effects [[:network {:domains ["origin.test"] :methods [:POST]}]]]
     (get (call :ccos.network.http-fetch "http://origin.test:%d/" {:method "POST" :body "%s"}) :status))
   (sleep %d)
   (step "two" [:effects [[:network {:domains ["origin.test"] :methods [:POST]}]]]
     (get (call :ccos.network.http-fetch "http://origin.test:%d/" {:method "POST" :body "%s-2"}) :status))])`,
		port, body, pause.Milliseconds(), port, body)
}

// node is an in-process node agent with the engine and process sandboxes.
type node struct {
	*Agent
	stop func()
	done chan error
}

func startNode(t *testing.T, name, ns string, o Options) *node {
	t.Helper()
	signer, _, err := chainSigner(name)
	if err != nil {
		t.Fatal(err)
	}
	rec, err := chain.NewRecorder(chain.NewMemoryStore(), signer, chain.Options{})
	if err != nil {
		t.Fatal(err)
	}
	runner, err := NewEngineRunner(EngineOptions{
		Engine: engine.Options{Logger: slog.New(slog.DiscardHandler), Egress: engine.EgressOptions{
			Resolve:     map[string][]netip.Addr{"origin.test": {netip.MustParseAddr("127.0.0.1")}},
			AllowRanges: []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}}},
		Allowed:  []string{"process"},
		Agent:    engine.AgentOptions{Level: governance.LevelFull},
		Recorder: rec,
	})
	if err != nil {
		t.Fatal(err)
	}
	o.Node, o.Namespace, o.LeaseNamespace, o.Runner = name, ns, ns, runner
	if o.LeaseDuration == 0 {
		o.LeaseDuration = time.Second
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	a, err := New(apiCfg, o)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	n := &node{Agent: a, stop: cancel, done: make(chan error, 1)}
	go func() { n.done <- a.Run(ctx) }()
	t.Cleanup(func() {
		n.halt(t)
		runner.Close()
		rec.Close()
	})
	return n
}

// halt stops the agent (as SIGTERM would) and waits for it.
func (n *node) halt(t *testing.T) {
	n.stop()
	select {
	case err := <-n.done:
		if err != nil {
			t.Errorf("node agent: %v", err)
		}
		n.done <- nil
	case <-time.After(60 * time.Second):
		t.Error("the node agent did not stop")
	}
}

func chainSigner(name string) (note.Signer, string, error) {
	skey, vkey, err := chain.GenerateKey("ccos-node-" + name)
	if err != nil {
		return nil, "", err
	}
	s, err := chain.ParseSigner(skey)
	return s, vkey, err
}

func createConfig(t *testing.T, ns, name, text string) {
	t.Helper()
	ac := &v1alpha1.AgentConfig{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}, Spec: v1alpha1.AgentConfigSpec{Config: text}}
	if err := admin.Create(context.Background(), ac); err != nil {
		t.Fatal(err)
	}
}

func createRun(t *testing.T, ns, name, config, plan string, iso v1alpha1.Isolation) {
	t.Helper()
	r := &v1alpha1.AgentRun{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: v1alpha1.AgentRunSpec{AgentConfig: config, Plan: plan, Isolation: iso}}
	if err := admin.Create(context.Background(), r); err != nil {
		t.Fatal(err)
	}
}

func getRun(t *testing.T, ns, name string) *v1alpha1.AgentRun {
	t.Helper()
	var r v1alpha1.AgentRun
	if err := admin.Get(context.Background(), types.NamespacedName{Namespace: ns, Name: name}, &r); err != nil {
		t.Fatal(err)
	}
	return &r
}

// waitRun polls a run until cond holds.
func waitRun(t *testing.T, ns, name string, timeout time.Duration, what string, cond func(*v1alpha1.AgentRun) bool) *v1alpha1.AgentRun {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		r := getRun(t, ns, name)
		if cond(r) {
			return r
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s/%s: timed out waiting for %s; status %+v", ns, name, what, r.Status)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func final(r *v1alpha1.AgentRun) bool { return r.Status.Phase.Final() }
