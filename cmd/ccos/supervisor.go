package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/ccos-project/ccos/chain"
	"github.com/ccos-project/ccos/engine"
	"github.com/ccos-project/ccos/internal/input"
	"github.com/ccos-project/ccos/supervisor"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/spf13/cobra"
	"golang.org/x/mod/sumdb/note"
)

// defaultSupervisorSocket is where the supervisor listens without --socket.
const defaultSupervisorSocket = "/run/ccos/supervisor.sock"

// defaultSupervisorState holds the run store and chains without --state:
// on persistent storage, as runs must survive a reboot.
const defaultSupervisorState = "/var/lib/ccos/supervisor"

// supervisorFlags are ccos supervisor's flags.
type supervisorFlags struct {
	cfgPath, agentsDir, socket, state, level string
	pool                                     int
	replay                                   bool
	queue                                    int
	limits                                   []string
	drain                                    time.Duration
	listen, tlsCert, tlsKey, clientCA        string
	agent                                    agentFlags
	eng                                      engineFlags
	kube                                     kubeFlags // --kube: the Kubernetes node agent (k8s.go)
}

func init() {
	var f supervisorFlags
	cmd := &cobra.Command{
		Use:   "supervisor",
		Short: "Serve agents as a long-lived service: concurrent, durable runs through an HTTP API",
		Long: "ccos supervisor serves one agent (--config) or every agent config of a\n" +
			"directory (--agents DIR) through an HTTP API on a Unix socket (and, with\n" +
			"--listen, HTTPS with client certificates that name agents). Runs are\n" +
			"admitted at submission, recorded in a SQLite run store before they are\n" +
			"acknowledged, and executed in parallel up to per-provider limits; a full\n" +
			"queue answers 429. After a crash the next supervisor resumes the runs\n" +
			"that were queued or running, without repeating a host side effect.\n" +
			"SIGTERM drains: no new runs, running ones finish, queued ones stay\n" +
			"queued for the next start.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return serveSupervisor(cmd.Context(), cmd.ErrOrStderr(), f)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&f.cfgPath, "config", "", "one agent's config file (default: "+defaultConfig+" unless --agents)")
	fl.StringVar(&f.agentsDir, "agents", "", "serve every agent config (*.rtfs) in this directory, one agent each")
	fl.StringVar(&f.socket, "socket", defaultSupervisorSocket, "Unix socket of the API (mode 0600: the operator's)")
	fl.StringVar(&f.state, "state", defaultSupervisorState, "directory of the run store and the agents' causal chains (one supervisor at a time)")
	fl.StringVar(&f.level, "security-level", "controlled", "pure, controlled or full")
	fl.IntVar(&f.pool, "pool", 1, "sandboxes kept started and waiting per agent (0: start one per run)")
	fl.BoolVar(&f.replay, "replay", false, "replay a run once in a fresh guest after its guest crashed, whatever the config says")
	fl.IntVar(&f.queue, "queue", 256, "runs that may wait per provider; more are answered 429")
	fl.StringArrayVar(&f.limits, "max-runs", nil, "PROVIDER=N: runs executing at once with that provider (repeatable; defaults sized from the host's CPUs and memory)")
	fl.DurationVar(&f.drain, "drain-timeout", time.Minute, "on SIGTERM, how long running runs may take to finish before they are left to the next start")
	fl.StringVar(&f.listen, "listen", "", "also serve HTTPS on this address, with client certificates (mTLS)")
	fl.StringVar(&f.tlsCert, "tls-cert", "", "the HTTPS listener's certificate")
	fl.StringVar(&f.tlsKey, "tls-key", "", "its key")
	fl.StringVar(&f.clientCA, "client-ca", "", "CA certificates that sign client certificates; a client certificate's subject CN names the agent it may act for")
	f.agent.register(cmd, "ccos supervisor")
	f.eng.register(cmd)
	f.kube.register(fl)
	cmd.AddCommand(supervisorClientCmds()...)
	rootCmd.AddCommand(cmd)
}

func serveSupervisor(ctx context.Context, stderr io.Writer, f supervisorFlags) error {
	if f.kube.enabled {
		return serveKubeNode(ctx, stderr, f)
	}
	if ctx == nil {
		ctx = context.Background()
	}
	logger := slog.New(slog.NewTextHandler(stderr, nil))
	if _, err := (admitFlags{level: f.level}).securityLevel(); err != nil {
		return err
	}
	limits := map[string]int{}
	for _, kv := range f.limits {
		name, n, ok := strings.Cut(kv, "=")
		v, err := strconv.Atoi(n)
		if !ok || err != nil || v < 1 {
			return usageErr("--max-runs %q: want PROVIDER=N with N ≥ 1", kv)
		}
		limits[name] = v
	}
	// A second supervisor on a live socket stops here, before it touches
	// anything.
	if err := os.MkdirAll(filepath.Dir(f.socket), 0o700); err != nil {
		return rejected("ccos supervisor: " + err.Error())
	}
	if err := removeStaleSocket(f.socket); err != nil {
		return rejected("ccos supervisor: " + err.Error())
	}
	if err := os.MkdirAll(filepath.Join(f.state, "chains"), 0o700); err != nil {
		return rejected("ccos supervisor: " + err.Error())
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	eng, closeEng, err := f.eng.open(reg)
	if err != nil {
		return err
	}
	defer closeEng()
	if err := loadAgents(eng, stderr, f); err != nil {
		return err
	}
	store, err := supervisor.OpenStore(filepath.Join(f.state, "runs.db"))
	if err != nil {
		return rejected("ccos supervisor: " + err.Error())
	}
	defer store.Close()
	verifier, err := chainVerifierOfKey(f.agent.chainKey)
	if err != nil {
		return err
	}
	sup, err := supervisor.New(supervisor.Options{Engine: eng, Store: store, Limits: limits, QueueSize: f.queue,
		Replay: f.replay, Registerer: reg, Logger: logger, ChainVerifier: verifier})
	if err != nil {
		return rejected("ccos supervisor: " + err.Error())
	}
	handler := sup.Handler(reg)
	ln, err := listenSocket(f.socket)
	if err != nil {
		return rejected("ccos supervisor: " + err.Error())
	}
	servers := []*http.Server{{Handler: handler, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 2 * time.Minute}}
	listeners := []net.Listener{ln}
	if f.listen != "" {
		tln, err := listenTLS(f)
		if err != nil {
			ln.Close()
			return err
		}
		servers = append(servers, &http.Server{Handler: handler, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 2 * time.Minute})
		listeners = append(listeners, tln)
	}
	ctx, stop := signal.NotifyContext(ctx, syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	var names []string
	for _, a := range eng.Agents() {
		names = append(names, a.ID())
	}
	sort.Strings(names)
	logger.Info("supervisor listening", "socket", f.socket, "https", f.listen, "agents", strings.Join(names, ","), "state", f.state)
	errc := make(chan error, len(servers))
	for i := range servers {
		go func() { errc <- servers[i].Serve(listeners[i]) }()
	}
	select {
	case err = <-errc:
	case <-ctx.Done():
		logger.Info("supervisor draining: no new runs; running runs finish; queued runs stay queued", "timeout", f.drain)
	}
	dctx, cancel := context.WithTimeout(context.Background(), f.drain)
	sup.Drain(dctx)
	cancel()
	for _, srv := range servers {
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		srv.Shutdown(sctx)
		cancel()
	}
	os.Remove(f.socket)
	if err != nil && !errors.Is(err, http.ErrServerClosed) {
		return rejected("ccos supervisor: " + err.Error())
	}
	return nil
}

// chainVerifierOfKey is the verifier of the --chain-key signer file (nil
// without one): the console's chain verification checks checkpoint
// signatures with it.
func chainVerifierOfKey(path string) (note.Verifier, error) {
	if path == "" {
		return nil, nil
	}
	b, err := input.ReadFile(path, input.MaxSmall)
	if err != nil {
		return nil, rejected(fmt.Sprintf("ccos: reading the chain key %s: %v", path, err))
	}
	vkey, err := chain.VerifierOf(string(b))
	if err != nil {
		return nil, rejected(fmt.Sprintf("ccos: the chain key %s: %v", path, err))
	}
	v, err := chain.ParseVerifier(vkey)
	if err != nil {
		return nil, rejected(fmt.Sprintf("ccos: the chain key %s: %v", path, err))
	}
	return v, nil
}

// loadAgents loads --config (one agent) or every config of --agents into
// the engine, each with its own chain in the state directory and its own
// pool, and prepares them (provider, pool, chain).
func loadAgents(eng *engine.Engine, stderr io.Writer, f supervisorFlags) error {
	var files []string
	switch {
	case f.agentsDir != "" && f.cfgPath != "":
		return usageErr("give --config (one agent) or --agents DIR, not both")
	case f.agentsDir != "":
		matches, err := filepath.Glob(filepath.Join(f.agentsDir, "*.rtfs"))
		if err != nil {
			return usageErr("--agents: %v", err)
		}
		if len(matches) == 0 {
			return rejected(fmt.Sprintf("ccos supervisor: no agent config (*.rtfs) in %s", f.agentsDir))
		}
		files = matches
	default:
		files = []string{f.cfgPath}
	}
	for _, file := range files {
		af := admitFlags{cfgPath: file, level: f.level}
		ag := f.agent
		if ag.chainPath == "" || len(files) > 1 {
			base := "agent.default"
			if file != "" {
				base = strings.TrimSuffix(filepath.Base(file), filepath.Ext(file))
			}
			ag.chainPath = filepath.Join(f.state, "chains", base+".chain")
		}
		a, err := openAgent(eng, stderr, af, ag, func(o *engine.AgentOptions) { o.Pool = f.pool })
		if err != nil {
			return err
		}
		if err := a.Prepare(); err != nil {
			return rejected(fmt.Sprintf("ccos supervisor: agent %s: %v", a.ID(), err))
		}
	}
	return nil
}

// listenSocket listens on the API's Unix socket (mode 0600), replacing a
// stale socket and refusing to start beside a live supervisor.
func listenSocket(path string) (net.Listener, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, err
	}
	if err := removeStaleSocket(path); err != nil {
		return nil, err
	}
	ln, err := net.Listen("unix", path)
	if err != nil {
		return nil, err
	}
	if err := os.Chmod(path, 0o600); err != nil {
		ln.Close()
		return nil, err
	}
	return ln, nil
}

// listenTLS listens for HTTPS clients that present a certificate signed
// by --client-ca.
func listenTLS(f supervisorFlags) (net.Listener, error) {
	if f.tlsCert == "" || f.tlsKey == "" || f.clientCA == "" {
		return nil, usageErr("--listen needs --tls-cert, --tls-key and --client-ca (clients authenticate with certificates naming their agent)")
	}
	cert, err := tls.LoadX509KeyPair(f.tlsCert, f.tlsKey)
	if err != nil {
		return nil, usageErr("--tls-cert/--tls-key: %v", err)
	}
	pem, err := input.ReadFile(f.clientCA, input.MaxSmall)
	if err != nil {
		return nil, usageErr("--client-ca: %v", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, usageErr("--client-ca %s: no PEM certificate", f.clientCA)
	}
	cfg := &tls.Config{Certificates: []tls.Certificate{cert}, ClientCAs: pool, ClientAuth: tls.RequireAndVerifyClientCert, MinVersion: tls.VersionTLS13}
	ln, err := tls.Listen("tcp", f.listen, cfg)
	if err != nil {
		return nil, rejected("ccos supervisor: " + err.Error())
	}
	return ln, nil
}

// removeStaleSocket removes a socket left by a supervisor that is gone, and
// refuses to start beside one that still answers.
func removeStaleSocket(path string) error {
	fi, err := os.Lstat(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if fi.Mode()&os.ModeSocket == 0 {
		return fmt.Errorf("%s exists and is not a socket", path)
	}
	if c, err := net.DialTimeout("unix", path, time.Second); err == nil {
		c.Close()
		return fmt.Errorf("a supervisor is already listening on %s", path)
	}
	return os.Remove(path)
}
