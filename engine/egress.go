package engine

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"

	"github.com/ccos-project/ccos/capability"
	"github.com/ccos-project/ccos/config"
	"github.com/ccos-project/ccos/egress"
)

// agentEgress is one agent's way out to the network: its policy in the
// engine's egress proxy. ccos.network.http-fetch goes through it with the
// calling step's admitted ACL carried by the request (an egress.Grant), a
// microVM's NIC ends at it, and every decision is recorded in the causal
// chain of the run it belongs to.
type agentEgress struct {
	proxy *egress.Proxy
	agent string
	// secrets are the agent's credentials, redacted from any error that
	// would reach a plan.
	secrets []string
}

// redact removes the agent's credentials from an error's text.
func (eg *agentEgress) redact(err error) error {
	if err == nil {
		return nil
	}
	msg := err.Error()
	for _, s := range eg.secrets {
		if strings.Contains(msg, s) {
			msg = strings.ReplaceAll(msg, s, "[REDACTED:secret]")
		}
	}
	if msg == err.Error() {
		return err
	}
	return errors.New(msg)
}

// addEgress adds cfg's egress policy to the engine's proxy (starting the
// proxy with the first networked agent); nil when the config gives the
// agent no network.
func (e *Engine) addEgress(cfg *config.Config, dir string) (*agentEgress, error) {
	if !cfg.Egress().Enabled {
		return nil, nil
	}
	pol, err := egress.PolicyFromConfig(cfg)
	if err != nil {
		return nil, err
	}
	// The agent's credentials are read here, on the host, once: the
	// proxy adds them to the requests of allowed steps; nothing else
	// holds them.
	if pol.Secrets, err = egress.SecretsFromConfig(cfg, dir, nil); err != nil {
		return nil, err
	}
	pol.AllowRanges = append(pol.AllowRanges, e.o.Egress.AllowRanges...)
	if e.o.Egress.ClientCert != nil {
		pol.SetClientCert(e.o.Egress.ClientCert)
	}
	ae := &agentEgress{agent: pol.Agent}
	for _, sec := range pol.Secrets {
		ae.secrets = append(ae.secrets, sec.Value)
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.proxy == nil {
		logger := slog.New(slog.DiscardHandler)
		if e.o.Egress.DecisionLog != nil {
			logger = slog.New(slog.NewJSONHandler(e.o.Egress.DecisionLog, nil))
		}
		var res egress.Resolver = net.DefaultResolver
		if len(e.o.Egress.Resolve) > 0 {
			res = egress.PinnedResolver{Static: egress.StaticResolver(e.o.Egress.Resolve), Next: net.DefaultResolver}
		}
		px, err := egress.New(pol, egress.Options{Logger: logger, Resolver: res, RootCAs: e.o.Egress.RootCAs,
			Recorder: e.decided, Metrics: e.o.Metrics, Upstream: e.o.Egress.Upstream})
		if err != nil {
			return nil, err
		}
		e.proxy = px
	} else if err := e.proxy.AddAgent(pol); err != nil {
		return nil, err
	}
	ae.proxy = e.proxy
	return ae, nil
}

func (e *Engine) removeEgress(agent string) {
	e.mu.Lock()
	px := e.proxy
	e.mu.Unlock()
	if px != nil {
		px.RemoveAgent(agent)
	}
}

// decided routes an egress decision to the run it belongs to (its grant's
// run), or to its agent's chain for requests no run's grant carried (a
// microVM NIC's).
func (e *Engine) decided(d egress.Decision) {
	e.mu.Lock()
	rs := e.runs[d.Run]
	a := e.agents[d.Agent]
	e.mu.Unlock()
	switch {
	case rs != nil:
		rs.decision(d)
	case a != nil:
		a.recordDecision(d)
	}
}

// fetch is ccos.network.http-fetch's way out: the proxy's round trip with
// the calling step's admitted ACL (which can only narrow the agent's).
func (a *Agent) fetch(ctx context.Context, fr capability.FetchRequest) (*capability.FetchResponse, error) {
	eg := a.egress
	if eg == nil {
		return nil, capability.ErrNoEgressProxy
	}
	sc, ok := capability.ScopeFrom(ctx)
	if !ok || sc.Step == "" {
		return nil, errors.New("ccos.network.http-fetch runs only inside an admitted step")
	}
	acl := egress.StepACL{Domains: sc.NetDomains, Methods: sc.NetMethods}
	var g *egress.Grant
	var err error
	if rs := runFrom(ctx); rs != nil {
		g, err = rs.grant(eg, sc.Step, acl)
	} else {
		g, err = eg.proxy.Grant(eg.agent, sc.Step, "", "", acl)
	}
	if err != nil {
		return nil, err
	}
	req, err := http.NewRequestWithContext(egress.WithGrant(egress.WithAgent(ctx, eg.agent), g), fr.Method, fr.URL, bytes.NewReader(fr.Body))
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
	resp, err := eg.proxy.RoundTrip(req)
	if err != nil {
		return nil, eg.redact(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, capability.MaxFetchBody+1))
	if err != nil {
		return nil, eg.redact(fmt.Errorf("reading the response: %w", err))
	}
	return &capability.FetchResponse{Status: resp.StatusCode, Header: resp.Header, Body: body}, nil
}

// handler is what a microVM's NIC ends at: the proxy acting for this
// agent. Its requests carry no run's grant: the agent's own ACL applies,
// and their decisions go to the agent's chain.
func (eg *agentEgress) handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		eg.proxy.ServeHTTP(w, r.WithContext(egress.WithAgent(r.Context(), eg.agent)))
	})
}
