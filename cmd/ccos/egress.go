package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"sync"

	"github.com/ccos-project/ccos/capability"
	"github.com/ccos-project/ccos/chain"
	"github.com/ccos-project/ccos/config"
	"github.com/ccos-project/ccos/egress"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/spf13/cobra"
)

// egressFlags are the operator's additions to the egress policy of a run
// (the agent config has no keys for them): the same meaning as ccos
// proxy's flags of the same names without "egress-".
type egressFlags struct {
	allowRanges, resolve          []string
	clientCert, clientKey, rootCA string
	logFile                       string
}

func (f *egressFlags) register(cmd *cobra.Command) {
	fl := cmd.Flags()
	fl.StringSliceVar(&f.allowRanges, "egress-allow-range", nil, "CIDR the agent may reach despite its address class, e.g. an internal service (repeatable)")
	fl.StringArrayVar(&f.resolve, "egress-resolve", nil, "pin NAME=IP in the egress proxy instead of asking DNS (repeatable)")
	fl.StringVar(&f.clientCert, "egress-client-cert", "", "client certificate the egress proxy presents to :mtls origins")
	fl.StringVar(&f.clientKey, "egress-client-key", "", "its private key")
	fl.StringVar(&f.rootCA, "egress-ca", "", "CA certificates (PEM) the egress proxy verifies origins with (default: the system's)")
	fl.StringVar(&f.logFile, "egress-log", "", "append the egress proxy's decisions as JSON lines to this file")
}

// runEgress is the egress proxy of one ccos run or supervisor: the only way
// out for the agent's plans. ccos.network.http-fetch goes through it (with
// the step's admitted ACL programmed for each request), a microVM's NIC
// ends at it, and every decision goes to the causal chain.
type runEgress struct {
	proxy *egress.Proxy
	agent string
	log   io.Closer

	mu     sync.Mutex // serialises step programming with the request
	record func(egress.Decision)
	// missingCert refuses every request: the config wants mTLS and no
	// client certificate was given.
	missingCert error
}

// networkEnabled says whether the config lets an agent reach the network
// at all.
func networkEnabled(cfg *config.Config) bool {
	if !cfg.Capabilities.HTTP.Enabled {
		return false
	}
	return cfg.Network == nil || (cfg.Network.Enabled && cfg.Network.Egress.Via == config.EgressProxy)
}

// newRunEgress starts the egress proxy for cfg, or returns nil when the
// config gives the agent no network.
func newRunEgress(cfg *config.Config, f egressFlags, metrics prometheus.Registerer) (*runEgress, error) {
	if !networkEnabled(cfg) {
		return nil, nil
	}
	pol, roots, err := policyFor(cfg, proxyFlags{allowRanges: f.allowRanges, clientCert: f.clientCert, clientKey: f.clientKey, rootCA: f.rootCA, deferCertCheck: true})
	if err != nil {
		return nil, err
	}
	var missing error
	if pol.NeedsClientCert() {
		// Nothing goes out without the certificate the config asks for;
		// plans that do not use the network still run.
		missing = errors.New("the agent config sets :mtls true, and the egress proxy has no client certificate to present (give --egress-client-cert and --egress-client-key)")
	}
	res, err := proxyResolver(f.resolve, "")
	if err != nil {
		return nil, err
	}
	e := &runEgress{agent: pol.Agent, missingCert: missing}
	logger := slog.New(slog.DiscardHandler)
	if f.logFile != "" {
		lf, err := os.OpenFile(f.logFile, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
		if err != nil {
			return nil, fmt.Errorf("--egress-log: %w", err)
		}
		e.log = lf
		logger = slog.New(slog.NewJSONHandler(lf, nil))
	}
	if e.proxy, err = egress.New(pol, egress.Options{Logger: logger, Resolver: res, RootCAs: roots, Recorder: e.decided, Metrics: metrics}); err != nil {
		return nil, err
	}
	return e, nil
}

func (e *runEgress) decided(d egress.Decision) {
	if rec := e.record; rec != nil {
		rec(d)
	}
}

// fetch is ccos.network.http-fetch's way out: the proxy's round trip with
// the calling step's admitted ACL (which can only narrow the agent's).
func (e *runEgress) fetch(ctx context.Context, fr capability.FetchRequest) (*capability.FetchResponse, error) {
	if e == nil {
		return nil, capability.ErrNoEgressProxy
	}
	if e.missingCert != nil {
		return nil, e.missingCert
	}
	req, err := http.NewRequestWithContext(egress.WithAgent(ctx, e.agent), fr.Method, fr.URL, bytes.NewReader(fr.Body))
	if err != nil {
		return nil, err
	}
	if len(fr.Body) == 0 {
		req.Body, req.ContentLength = http.NoBody, 0
	}
	for k, vs := range fr.Header {
		for _, v := range vs {
			req.Header.Add(k, v)
		}
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if sc, ok := capability.ScopeFrom(ctx); ok && sc.Step != "" {
		if err := e.proxy.SetStep(e.agent, sc.Step, egress.StepACL{Domains: sc.NetDomains, Methods: sc.NetMethods}); err != nil {
			return nil, err
		}
		defer e.proxy.ClearStep(e.agent)
	}
	resp, err := e.proxy.RoundTrip(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, capability.MaxFetchBody+1))
	if err != nil {
		return nil, fmt.Errorf("reading the response: %w", err)
	}
	return &capability.FetchResponse{Status: resp.StatusCode, Header: resp.Header, Body: body}, nil
}

// handler is what a microVM's NIC ends at (nil without a proxy).
func (e *runEgress) handler() http.Handler {
	if e == nil {
		return nil
	}
	if e.missingCert != nil {
		return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			http.Error(w, "ccos egress: "+e.missingCert.Error(), http.StatusBadGateway)
		})
	}
	return e.proxy
}

// recordTo sends every decision to the causal chain as a host fact.
func (e *runEgress) recordTo(rec *chain.Recorder, session, planHash string, stderr io.Writer) {
	if e == nil || rec == nil {
		return
	}
	e.record = func(d egress.Decision) {
		p := &chain.ProxyDecision{Action: string(d.Action), Kind: d.Kind, Method: d.Method, Host: d.Host, Port: int64(d.Port),
			Rule: string(d.Rule), Reason: d.Reason, Status: int64(d.Status), DLP: d.DLP, Error: d.Err}
		if d.Addr.IsValid() {
			p.Addr = d.Addr.String()
		}
		_, err := rec.Append(context.Background(), chain.Event{Type: chain.TypeProxyDecision, Origin: chain.OriginHost,
			Session: session, Plan: planHash, Step: d.Step, Payload: p.Encode()})
		if err != nil {
			fmt.Fprintln(stderr, "ccos: recording an egress decision in the causal chain:", err)
		}
	}
}

func (e *runEgress) Close() {
	if e == nil {
		return
	}
	e.proxy.Close()
	if e.log != nil {
		e.log.Close()
	}
}

func newSessionID() string {
	var b [8]byte
	rand.Read(b[:])
	return "ccos-" + hex.EncodeToString(b[:])
}

// egressSlot lets the capabilities be built before the run's egress proxy
// exists (admission needs them first).
type egressSlot struct{ e *runEgress }

func (s *egressSlot) fetch(ctx context.Context, req capability.FetchRequest) (*capability.FetchResponse, error) {
	return s.e.fetch(ctx, req)
}
