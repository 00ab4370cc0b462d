package e2e

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/ccos-project/ccos/internal/testenv"
	"github.com/ccos-project/ccos/k8s/api/v1alpha1"
	"github.com/ccos-project/ccos/k8s/internal/kubetest"
	"github.com/ccos-project/ccos/k8s/nodeagent"
	"github.com/ccos-project/ccos/sandbox/process"
	authenticationv1 "k8s.io/api/authentication/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
)

func repoRoot(testing.TB) string { return kubetest.RepoRoot() }

// cluster is a real API server (kube-apiserver and etcd, RBAC on) with the
// ccos deployment applied, and the ccos binary to run against it.
type cluster struct {
	t     testing.TB
	env   *envtest.Environment
	admin *rest.Config
	c     client.Client // admin
	cs    *kubernetes.Clientset
	dir   string
	// kubeconfig is the admin's, for kubectl.
	kubeconfig string
	ccos       string
	kubectlBin string
}

func startCluster(t testing.TB) *cluster {
	t.Helper()
	kubectl := testenv.Tool(t, "kubectl", "install a kubectl release binary on PATH (the machine image has v1.32)")
	if ok, why := (&process.Provider{}).Available(); !ok {
		testenv.Missing(t, "the process provider cannot run here: "+why, "run the tests as root on Linux with user namespaces")
	}
	kubetest.Need(t)
	root := repoRoot(t)
	k := &cluster{t: t, dir: t.TempDir(), kubectlBin: kubectl}
	// Build the binary first: it takes longer than the API server's start.
	k.ccos = filepath.Join(k.dir, "ccos")
	build := exec.Command("go", "build", "-o", k.ccos, "./cmd/ccos")
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("building ccos: %v\n%s", err, out)
	}
	scheme, err := nodeagent.Scheme()
	if err != nil {
		t.Fatal(err)
	}
	var ok bool
	if k.env, k.admin, ok, err = kubetest.Start(scheme); err != nil {
		t.Fatal(err)
	} else if !ok {
		kubetest.Need(t)
	}
	t.Cleanup(func() {
		if err := k.env.Stop(); err != nil {
			t.Logf("stopping the API server: %v", err)
		}
	})
	if k.c, err = client.New(k.admin, client.Options{Scheme: scheme}); err != nil {
		t.Fatal(err)
	}
	if k.cs, err = kubernetes.NewForConfig(k.admin); err != nil {
		t.Fatal(err)
	}
	k.kubeconfig = filepath.Join(k.dir, "admin.kubeconfig")
	if err := os.WriteFile(k.kubeconfig, k.env.KubeConfig, 0o600); err != nil {
		t.Fatal(err)
	}
	return k
}

// kubectl runs kubectl as the admin, or with another kubeconfig when the
// first argument is --kubeconfig=FILE.
func (k *cluster) kubectl(stdin string, args ...string) (string, error) {
	if len(args) == 0 || !strings.HasPrefix(args[0], "--kubeconfig=") {
		args = append([]string{"--kubeconfig=" + k.kubeconfig}, args...)
	}
	cmd := exec.Command(k.kubectlBin, args...)
	cmd.Stdin = strings.NewReader(stdin)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	return out.String(), err
}

func (k *cluster) mustKubectl(stdin string, args ...string) string {
	k.t.Helper()
	out, err := k.kubectl(stdin, args...)
	if err != nil {
		k.t.Fatalf("kubectl %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

// applyDeployment applies deploy/k8s with kustomize, as an operator does.
func (k *cluster) applyDeployment() string {
	k.t.Helper()
	return k.mustKubectl("", "apply", "-k", filepath.Join(repoRoot(k.t), "deploy", "k8s"))
}

// serviceAccountKubeconfig writes a kubeconfig that authenticates as a
// service account, with a token from the TokenRequest API.
func (k *cluster) serviceAccountKubeconfig(namespace, name string) string {
	k.t.Helper()
	ctx := context.Background()
	tr, err := k.cs.CoreV1().ServiceAccounts(namespace).CreateToken(ctx, name, &authenticationv1.TokenRequest{
		Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: ptr(int64(7200))}}, metav1.CreateOptions{})
	if err != nil {
		k.t.Fatalf("a token for %s/%s: %v", namespace, name, err)
	}
	kc := clientcmdapi.NewConfig()
	kc.Clusters["e2e"] = &clientcmdapi.Cluster{Server: k.admin.Host, CertificateAuthorityData: k.admin.CAData}
	kc.AuthInfos[name] = &clientcmdapi.AuthInfo{Token: tr.Status.Token}
	kc.Contexts["e2e"] = &clientcmdapi.Context{Cluster: "e2e", AuthInfo: name}
	kc.CurrentContext = "e2e"
	path := filepath.Join(k.dir, namespace+"-"+name+".kubeconfig")
	if err := clientcmd.WriteToFile(*kc, path); err != nil {
		k.t.Fatal(err)
	}
	return path
}

func ptr[T any](v T) *T { return &v }

// proc is a ccos process started by the test.
type proc struct {
	name string
	cmd  *exec.Cmd
	log  string
	done chan struct{}
}

// start starts the ccos binary with args, its output to a log file; the
// test's cleanup stops it (SIGTERM, then SIGKILL).
func (k *cluster) start(name string, args ...string) *proc {
	k.t.Helper()
	p := &proc{name: name, log: filepath.Join(k.dir, name+".log"), done: make(chan struct{})}
	lf, err := os.Create(p.log)
	if err != nil {
		k.t.Fatal(err)
	}
	p.cmd = exec.Command(k.ccos, args...)
	p.cmd.Stdout, p.cmd.Stderr = lf, lf
	if err := p.cmd.Start(); err != nil {
		k.t.Fatal(err)
	}
	go func() { p.cmd.Wait(); lf.Close(); close(p.done) }()
	k.t.Cleanup(func() {
		p.stop(20 * time.Second)
		if k.t.Failed() || os.Getenv("CCOS_E2E_LOGS") != "" {
			b, _ := os.ReadFile(p.log)
			k.t.Logf("=== %s log (last 16 KiB)\n%s", name, tail(b, 16<<10))
		}
	})
	return p
}

// stop sends SIGTERM and waits, then kills.
func (p *proc) stop(grace time.Duration) {
	select {
	case <-p.done:
		return
	default:
	}
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(grace):
		p.cmd.Process.Kill()
		<-p.done
	}
}

// kill sends SIGKILL and waits for the process to be gone.
func (p *proc) kill() {
	p.cmd.Process.Kill()
	<-p.done
}

func tail(b []byte, n int) string {
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return string(b)
}

// nodeAgent starts a node agent as the ccos-node service account.
func (k *cluster) nodeAgent(node, kubeconfig string, extra ...string) *proc {
	args := append([]string{"supervisor", "--kube", "--kubeconfig", kubeconfig, "--node", node,
		"--lease-namespace", "ccos-system", "--lease-duration", "3s", "--drain-timeout", "10s",
		"--state", filepath.Join(k.dir, node), "--security-level", "full",
		"--egress-resolve", "origin.test=127.0.0.1", "--egress-allow-range", "127.0.0.1/32"}, extra...)
	return k.start(node, args...)
}

// origin is a loopback HTTP server that counts the POSTs it receives, by
// body: the host side effect that must never be repeated.
type origin struct {
	srv   *http.Server
	port  int
	mu    sync.Mutex
	hits  map[string]int
	conns int // connections accepted
}

func startOrigin(t testing.TB) *origin {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	o := &origin{hits: map[string]int{}, port: ln.Addr().(*net.TCPAddr).Port}
	o.srv = &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost {
			var b bytes.Buffer
			b.ReadFrom(r.Body)
			o.mu.Lock()
			o.hits[b.String()]++
			o.mu.Unlock()
		}
		w.Header().Set("Content-Type", "text/plain")
		fmt.Fprint(w, "recorded")
	}), ConnState: func(_ net.Conn, st http.ConnState) {
		if st == http.StateNew {
			o.mu.Lock()
			o.conns++
			o.mu.Unlock()
		}
	}}
	go o.srv.Serve(ln)
	t.Cleanup(func() { o.srv.Close() })
	return o
}

func (o *origin) connections() int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.conns
}

func (o *origin) count(body string) int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.hits[body]
}

// agentConfigYAML is an AgentConfig object.
func agentConfigYAML(namespace, name, config string) string {
	return fmt.Sprintf("apiVersion: ccos-project.github.io/v1alpha1\nkind: AgentConfig\nmetadata:\n  name: %s\n  namespace: %s\nspec:\n  config: |\n%s",
		name, namespace, indent(config, "    "))
}

// agentRunYAML is an AgentRun object; isolation may be empty.
func agentRunYAML(namespace, name, config, plan string, isolation v1alpha1.Isolation) string {
	s := fmt.Sprintf("apiVersion: ccos-project.github.io/v1alpha1\nkind: AgentRun\nmetadata:\n  name: %s\n  namespace: %s\nspec:\n  agentConfig: %s\n",
		name, namespace, config)
	if isolation != "" {
		s += "  isolation: " + string(isolation) + "\n"
	}
	return s + "  plan: |\n" + indent(plan, "    ")
}

func indent(s, prefix string) string {
	var b strings.Builder
	for _, l := range strings.Split(strings.TrimRight(s, "\n"), "\n") {
		b.WriteString(prefix + l + "\n")
	}
	return b.String()
}

// execOutput runs a command and returns its standard output.
func execOutput(name string, args ...string) (string, error) {
	out, err := exec.Command(name, args...).Output()
	return string(out), err
}

// gateway is the cluster's egress proxy (`ccos proxy`, as deploy/k8s runs
// it), on loopback: the node agents reach origins only through it.
type gateway struct {
	p   *proc
	url string
}

// gatewayConfig is deploy/k8s's egress proxy config with the test origin.
const gatewayConfig = `(-> (profile:networked "cluster.egress" ["origin.test"])
    (assoc-in [:network :egress :mtls] false)
    (assoc-in [:capabilities :http :egress :mtls] false))`

func (k *cluster) egressGateway() *gateway {
	k.t.Helper()
	cfg := filepath.Join(k.dir, "egress.config.rtfs")
	if err := os.WriteFile(cfg, []byte(gatewayConfig), 0o600); err != nil {
		k.t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		k.t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	g := &gateway{url: "http://" + addr}
	g.p = k.start("egress-proxy", "proxy", "--config", cfg, "--listen", addr,
		"--resolve", "origin.test=127.0.0.1", "--allow-range", "127.0.0.1/32")
	deadline := time.Now().Add(30 * time.Second)
	for {
		if c, err := net.Dial("tcp", addr); err == nil {
			c.Close()
			return g
		}
		if time.Now().After(deadline) {
			k.t.Fatal("the egress proxy did not listen")
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// allowed counts the tunnels the egress proxy allowed to host, from its
// decision log (one JSON line per decision on its standard error).
func (g *gateway) allowed(host string) int {
	b, _ := os.ReadFile(g.p.log)
	n := 0
	for _, l := range strings.Split(string(b), "\n") {
		if strings.Contains(l, `"host":"`+host+`"`) && strings.Contains(l, `"action":"allow"`) && strings.Contains(l, `"kind":"connect"`) {
			n++
		}
	}
	return n
}
