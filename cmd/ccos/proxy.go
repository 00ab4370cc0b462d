package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/debug"
	"strings"
	"syscall"
	"time"

	"github.com/ccos-project/ccos/config"
	"github.com/ccos-project/ccos/domain"
	"github.com/ccos-project/ccos/egress"
	"github.com/ccos-project/ccos/internal/input"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/spf13/cobra"
)

// proxyGCPercent is the GOGC `ccos proxy` runs with unless GOGC is set.
const proxyGCPercent = 400

// proxyFlags are what `ccos proxy` adds to the policy the config gives:
// settings the agent config has no key for yet.
type proxyFlags struct {
	configFile, listen, metrics, mode, logFormat string
	allowRanges, methods, patterns, resolve      []string
	dns, control                                 string
	ports                                        []int
	requireStep, stripInjection                  bool
	clientCert, clientKey, rootCA                string
	rate                                         float64
	burst, maxTunnels                            int
	maxRequest, maxResponse                      int64
	// deferCertCheck lets a policy that needs a client certificate be
	// built without one; the caller refuses its requests (ccos run).
	deferCertCheck bool
}

func init() {
	var f proxyFlags
	cmd := &cobra.Command{
		Use:   "proxy --config FILE --listen ADDR [--metrics ADDR]",
		Short: "Run the egress/DLP proxy for an agent config",
		Long: "Run the HTTP forward proxy (with CONNECT) that is a sandbox's only way out, with the\n" +
			"agent's egress ACL (:network :egress), TLS pins and mTLS, and DLP (:orchestrator :dlp).\n" +
			"ADDR is host:port or unix:/path. Every decision is logged as one JSON line on stderr;\n" +
			"--metrics serves Prometheus metrics at /metrics.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return runProxy(cmd, f) },
	}
	fl := cmd.Flags()
	fl.StringVar(&f.configFile, "config", "", "agent config (required)")
	fl.StringVar(&f.listen, "listen", "", "address of the proxy: host:port or unix:/path (required)")
	fl.StringVar(&f.metrics, "metrics", "", "address to serve Prometheus /metrics on")
	fl.StringVar(&f.control, "control", "", "unix:/path of the control API that programs step ACLs (mode 0600; host only)")
	fl.StringVar(&f.mode, "mode", "enforce", "enforce, or report (let refused requests through and log them as would-deny)")
	fl.StringVar(&f.logFormat, "log-format", "json", "json or text")
	fl.StringSliceVar(&f.allowRanges, "allow-range", nil, "CIDR the agent may reach by IP literal or despite its address class (repeatable)")
	fl.StringVar(&f.dns, "dns", "", "DNS server host:port to resolve with (default: the system's)")
	fl.StringArrayVar(&f.resolve, "resolve", nil, "pin NAME=IP instead of asking DNS (repeatable)")
	fl.StringSliceVar(&f.methods, "methods", nil, "HTTP methods allowed (default: all)")
	fl.IntSliceVar(&f.ports, "ports", nil, "ports allowed (default: all)")
	fl.StringArrayVar(&f.patterns, "dlp-pattern", nil, "extra DLP rule NAME=REGEXP (repeatable)")
	fl.BoolVar(&f.requireStep, "require-step", false, "deny everything while no step is programmed")
	fl.BoolVar(&f.stripInjection, "strip-injection", false, "strip prompt-injection text from text responses")
	fl.StringVar(&f.clientCert, "client-cert", "", "PEM client certificate for :mtls origins")
	fl.StringVar(&f.clientKey, "client-key", "", "PEM key of --client-cert")
	fl.StringVar(&f.rootCA, "ca", "", "PEM CA bundle that verifies origins the proxy speaks TLS to (default: system roots)")
	fl.Float64Var(&f.rate, "rate", 0, "requests per second allowed to the agent (0: no limit)")
	fl.IntVar(&f.burst, "burst", 0, "burst of --rate")
	fl.IntVar(&f.maxTunnels, "max-tunnels", 0, "concurrent CONNECT tunnels (default 64)")
	fl.Int64Var(&f.maxRequest, "max-request-bytes", 0, "request body cap (default 8 MiB)")
	fl.Int64Var(&f.maxResponse, "max-response-bytes", 0, "response body cap (default 32 MiB)")
	_ = cmd.MarkFlagRequired("config")
	_ = cmd.MarkFlagRequired("listen")
	rootCmd.AddCommand(cmd)
}

func usageErr(format string, args ...any) error {
	return &exitError{code: exitUsage, msg: "ccos proxy: " + fmt.Sprintf(format, args...)}
}

// proxyPolicy builds the policy from the config and the flags.
func proxyPolicy(f proxyFlags) (egress.Policy, *x509.CertPool, error) {
	res, err := config.LoadFile(f.configFile, configEvaluator)
	if err != nil {
		return egress.Policy{}, nil, rejected("ccos proxy: " + err.Error())
	}
	printDiags(os.Stderr, res.Diags)
	if res.Diags.HasErrors() || res.Config == nil {
		return egress.Policy{}, nil, rejected("ccos proxy: " + f.configFile + " is not a valid agent config")
	}
	return policyFor(res.Config, f)
}

// policyFor builds the egress policy of cfg with the flags' additions.
func policyFor(cfg *config.Config, f proxyFlags) (egress.Policy, *x509.CertPool, error) {
	if f.mode == "" {
		f.mode = "enforce"
	}
	p, err := egress.PolicyFromConfig(cfg)
	if err != nil {
		return egress.Policy{}, nil, rejected("ccos proxy: " + f.configFile + ": " + err.Error())
	}
	if p.Secrets, err = egress.SecretsFromConfig(cfg, filepath.Dir(f.configFile), nil); err != nil {
		return egress.Policy{}, nil, rejected("ccos proxy: " + f.configFile + ": " + err.Error())
	}
	switch f.mode {
	case "enforce", "report":
		p.Mode = egress.Mode(f.mode)
	default:
		return egress.Policy{}, nil, usageErr("--mode %q: want enforce or report", f.mode)
	}
	for _, r := range f.allowRanges {
		pr, err := netip.ParsePrefix(r)
		if err != nil {
			return egress.Policy{}, nil, usageErr("--allow-range %q: %v", r, err)
		}
		p.AllowRanges = append(p.AllowRanges, pr.Masked())
	}
	p.Methods, p.Ports, p.RequireStep, p.StripInjection = f.methods, f.ports, f.requireStep, f.stripInjection
	if len(f.patterns) > 0 {
		if p.DLP.Action == egress.DLPOff {
			return egress.Policy{}, nil, usageErr("--dlp-pattern needs :orchestrator :dlp {:enabled true} in the config")
		}
		p.DLP.Patterns = map[string]string{}
		for _, kv := range f.patterns {
			name, re, ok := strings.Cut(kv, "=")
			if !ok || name == "" {
				return egress.Policy{}, nil, usageErr("--dlp-pattern %q: want NAME=REGEXP", kv)
			}
			p.DLP.Patterns[name] = re
		}
	}
	p.Limits = egress.Limits{Rate: f.rate, Burst: f.burst, MaxTunnels: f.maxTunnels, MaxRequestBytes: f.maxRequest, MaxResponseBytes: f.maxResponse}
	if f.clientCert != "" || f.clientKey != "" {
		cert, err := tls.LoadX509KeyPair(f.clientCert, f.clientKey)
		if err != nil {
			return egress.Policy{}, nil, usageErr("--client-cert/--client-key: %v", err)
		}
		p.SetClientCert(&cert)
	}
	if p.NeedsClientCert() && !f.deferCertCheck {
		return egress.Policy{}, nil, usageErr("%s sets :mtls true: give --client-cert and --client-key", f.configFile)
	}
	var roots *x509.CertPool
	if f.rootCA != "" {
		pem, err := input.ReadFile(f.rootCA, input.MaxSmall)
		if err != nil {
			return egress.Policy{}, nil, usageErr("--ca: %v", err)
		}
		roots = x509.NewCertPool()
		if !roots.AppendCertsFromPEM(pem) {
			return egress.Policy{}, nil, usageErr("--ca %s: no PEM certificate", f.rootCA)
		}
	}
	return p, roots, nil
}

// proxyResolver pins the --resolve names and asks DNS for the others.
func proxyResolver(pins []string, dns string) (egress.Resolver, error) {
	next := net.DefaultResolver
	if dns != "" {
		if _, _, err := net.SplitHostPort(dns); err != nil {
			return nil, usageErr("--dns %q: %v", dns, err)
		}
		next = &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, network, dns)
		}}
	}
	if len(pins) == 0 {
		return next, nil
	}
	static := egress.StaticResolver{}
	for _, kv := range pins {
		name, ip, ok := strings.Cut(kv, "=")
		host, err := domain.Normalize(name)
		if !ok || err != nil {
			return nil, usageErr("--resolve %q: want NAME=IP", kv)
		}
		a, err := netip.ParseAddr(ip)
		if err != nil {
			return nil, usageErr("--resolve %q: %v", kv, err)
		}
		static[host] = append(static[host], a)
	}
	return egress.PinnedResolver{Static: static, Next: next}, nil
}

func listenAddr(addr string) (net.Listener, error) {
	if path, ok := strings.CutPrefix(addr, "unix:"); ok {
		_ = os.Remove(path)
		return net.Listen("unix", path)
	}
	return net.Listen("tcp", addr)
}

func runProxy(cmd *cobra.Command, f proxyFlags) error {
	if path, ok := strings.CutPrefix(f.control, "unix:"); f.control != "" && (!ok || path == "") {
		return usageErr("--control %q: want unix:/path (the control API is for the host alone)", f.control)
	}
	p, roots, err := proxyPolicy(f)
	if err != nil {
		return err
	}
	if os.Getenv("GOGC") == "" {
		// The proxy's live heap is small (a few MiB without DLP rules), so
		// the default GOGC=100 collects every few hundred requests and the
		// collections show in the latency tail; a proxied request's garbage
		// is short-lived, and 400 keeps the heap within a few tens of MiB.
		debug.SetGCPercent(proxyGCPercent)
	}
	var h slog.Handler
	switch f.logFormat {
	case "json":
		h = slog.NewJSONHandler(cmd.ErrOrStderr(), nil)
	case "text":
		h = slog.NewTextHandler(cmd.ErrOrStderr(), nil)
	default:
		return usageErr("--log-format %q: want json or text", f.logFormat)
	}
	logger := slog.New(h)
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	res, err := proxyResolver(f.resolve, f.dns)
	if err != nil {
		return err
	}
	px, err := egress.New(p, egress.Options{Logger: logger, Metrics: reg, RootCAs: roots, Resolver: res})
	if err != nil {
		return rejected("ccos proxy: " + err.Error())
	}
	defer px.Close()
	l, err := listenAddr(f.listen)
	if err != nil {
		return rejected("ccos proxy: --listen: " + err.Error())
	}
	srv := &http.Server{Handler: px, ReadHeaderTimeout: 10 * time.Second}
	errc := make(chan error, 2)
	go func() { errc <- srv.Serve(l) }()
	logger.Info("ccos proxy listening", "addr", l.Addr().String(), "agent", p.Agent, "mode", string(p.Mode))

	var msrv *http.Server
	if f.metrics != "" {
		ml, err := listenAddr(f.metrics)
		if err != nil {
			return rejected("ccos proxy: --metrics: " + err.Error())
		}
		mux := http.NewServeMux()
		mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))
		msrv = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
		go func() { errc <- msrv.Serve(ml) }()
		logger.Info("ccos proxy metrics", "addr", ml.Addr().String())
	}

	var csrv *http.Server
	if f.control != "" {
		path := strings.TrimPrefix(f.control, "unix:")
		cl, err := listenAddr(f.control)
		if err != nil {
			return rejected("ccos proxy: --control: " + err.Error())
		}
		if err := os.Chmod(path, 0o600); err != nil {
			return rejected("ccos proxy: --control: " + err.Error())
		}
		csrv = &http.Server{Handler: px.ControlHandler(), ReadHeaderTimeout: 10 * time.Second}
		go func() { errc <- csrv.Serve(cl) }()
		logger.Info("ccos proxy control", "addr", f.control)
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	select {
	case <-ctx.Done():
	case err := <-errc:
		if !errors.Is(err, http.ErrServerClosed) {
			return rejected("ccos proxy: " + err.Error())
		}
	}
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = srv.Shutdown(sctx)
	for _, s := range []*http.Server{msrv, csrv} {
		if s != nil {
			_ = s.Shutdown(sctx)
		}
	}
	logger.Info("ccos proxy stopped")
	return nil
}
