package egress

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
	"net/url"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/time/rate"

	"github.com/ccos-project/ccos/domain"
)

// Resolver looks names up; *net.Resolver is one. Tests inject their own so
// that a name can resolve to a loopback origin.
type Resolver interface {
	LookupNetIP(ctx context.Context, network, host string) ([]netip.Addr, error)
}

// StaticResolver resolves the names it holds and nothing else.
type StaticResolver map[string][]netip.Addr

// LookupNetIP returns the addresses of host.
func (s StaticResolver) LookupNetIP(_ context.Context, _, host string) ([]netip.Addr, error) {
	if a, ok := s[host]; ok {
		return a, nil
	}
	return nil, &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
}

// Options are the proxy's collaborators; every field is optional.
type Options struct {
	Resolver Resolver     // net.DefaultResolver when nil
	Logger   *slog.Logger // slog.Default() when nil
	// Recorder receives every decision (the host appends it to the causal
	// chain). It is called synchronously, once per request or tunnel.
	Recorder func(Decision)
	// Metrics registers the proxy's collectors; none are kept when nil.
	Metrics prometheus.Registerer
	// Clock is the time source of decisions and rate limits (time.Now).
	Clock func() time.Time
	// RootCAs verifies origins the proxy speaks TLS to (the system pool
	// when nil).
	RootCAs *x509.CertPool
	// Upstream, when set, is a forward proxy every origin is reached
	// through, after this proxy's decision (see upstream.go).
	Upstream *url.URL
}

// Proxy is the egress proxy. Its methods are safe for concurrent use.
type Proxy struct {
	opts    Options
	log     *slog.Logger
	metrics *metrics
	primary string

	mu     sync.RWMutex
	agents map[string]*agentState
}

type agentState struct {
	pol     *compiled
	limiter *rate.Limiter
	tunnels chan struct{}
	step    atomic.Pointer[stepState]
	plain   *http.Transport
	tls     []*http.Transport // one per pol.tls entry
}

type stepState struct {
	acl     *compiledStep
	limiter *rate.Limiter
}

// New returns a proxy for the agent of p; AddAgent adds more.
func New(p Policy, opts Options) (*Proxy, error) {
	if opts.Resolver == nil {
		opts.Resolver = net.DefaultResolver
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Clock == nil {
		opts.Clock = time.Now
	}
	m, err := newMetrics(opts.Metrics)
	if err != nil {
		return nil, fmt.Errorf("egress: registering metrics: %w", err)
	}
	px := &Proxy{opts: opts, log: opts.Logger, metrics: m, agents: map[string]*agentState{}}
	if err := px.AddAgent(p); err != nil {
		return nil, err
	}
	px.primary = p.Agent
	return px, nil
}

// AddAgent adds (or replaces) an agent's policy.
func (p *Proxy) AddAgent(pol Policy) error {
	c, err := compilePolicy(pol)
	if err != nil {
		return err
	}
	st := &agentState{pol: c, tunnels: make(chan struct{}, c.Limits.MaxTunnels)}
	if c.Limits.Rate > 0 {
		st.limiter = rate.NewLimiter(rate.Limit(c.Limits.Rate), max(c.Limits.Burst, 1))
	}
	st.plain = p.newTransport(c, nil)
	for i := range c.tls {
		st.tls = append(st.tls, p.newTransport(c, &c.tls[i]))
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if old := p.agents[pol.Agent]; old != nil {
		old.plain.CloseIdleConnections()
		for _, t := range old.tls {
			t.CloseIdleConnections()
		}
	}
	p.agents[pol.Agent] = st
	return nil
}

func (p *Proxy) agent(name string) *agentState {
	p.mu.RLock()
	defer p.mu.RUnlock()
	return p.agents[name]
}

// SetStep programs the ACL of the step an agent is executing. It fails
// with ErrWiden if acl allows a domain, range or method the agent's policy
// does not.
func (p *Proxy) SetStep(agent, step string, acl StepACL) error {
	st := p.agent(agent)
	if st == nil {
		return fmt.Errorf("egress: %w: %s", ErrUnknownAgent, agent)
	}
	if step == "" {
		return errors.New("egress: SetStep needs a step name")
	}
	cs, err := st.pol.compileStep(step, acl)
	if err != nil {
		return fmt.Errorf("egress: %w", err)
	}
	s := &stepState{acl: cs}
	if acl.Rate > 0 {
		s.limiter = rate.NewLimiter(rate.Limit(acl.Rate), max(acl.Burst, 1))
	}
	st.step.Store(s)
	return nil
}

// ClearStep forgets the agent's step ACL: the agent's own ACL applies again,
// or nothing is allowed if its policy has RequireStep.
func (p *Proxy) ClearStep(agent string) {
	if st := p.agent(agent); st != nil {
		st.step.Store(nil)
	}
}

// Decide applies the agent's and the step's ACL and, when req.Addr is set or
// the host is an IP literal, the address rules. It is the one decision
// function: the proxy's request paths call it, then resolve the name and
// apply limits and DLP. Decide itself neither resolves, consumes rate
// tokens nor logs.
func (p *Proxy) Decide(req Request) Decision {
	d, _ := p.evaluate(p.agent(req.Agent), nil, req, "decide")
	return d
}

// evaluate is Decide for the agent state st (nil: unknown agent), also
// returning the step it applied: the request's grant when it carries one,
// else the step programmed with SetStep. The caller looks st up once, so
// that a policy replaced by AddAgent mid-request is not half applied.
func (p *Proxy) evaluate(st *agentState, g *Grant, req Request, kind string) (Decision, *stepState) {
	d := Decision{
		Time: p.opts.Clock(), Kind: kind, Agent: req.Agent, Step: req.Step, Method: req.Method,
		Host: req.Host, Port: req.Port, Addr: req.Addr, Action: ActionAllow, Rule: RuleAllowed, Reason: "allowed by the ACL",
	}
	if g != nil {
		d.Run, d.Plan = g.Run, g.Plan
	}
	if st == nil {
		d.deny(RuleUnknownAgent, "no policy for agent %q", req.Agent)
		return d, nil
	}
	pol := st.pol
	var step *stepState
	switch {
	case g == nil:
		step = st.step.Load()
	case g.pol != pol:
		// A grant compiled for another agent, or for a policy since
		// replaced, is never applied to this one.
		d.deny(RuleStepMismatch, "the request's step grant %q was not issued for agent %s's current policy", g.step.acl.name, pol.Agent)
		return d, nil
	default:
		step = g.step
	}
	// soft applies an ACL refusal: a deny in enforce mode, a report (and
	// the checks go on) in report mode. It reports whether to stop.
	soft := func(r Rule, format string, args ...any) bool {
		if pol.Mode == Report {
			if d.Action == ActionAllow {
				d.Action, d.Rule, d.Reason = ActionReport, r, "would deny: "+fmt.Sprintf(format, args...)
			}
			return false
		}
		d.deny(r, format, args...)
		return true
	}
	if !isHTTPMethod(req.Method) {
		d.deny(RuleBadRequest, "%q is not an HTTP method", req.Method)
		return d, step
	}
	host, err := domain.Normalize(req.Host)
	if err != nil {
		d.deny(RuleInvalidHost, "%v", err)
		return d, step
	}
	d.Host = host
	if req.Port < 1 || req.Port > 65535 {
		d.deny(RuleInvalidHost, "port %d must be 1 to 65535", req.Port)
		return d, step
	}
	switch {
	case step != nil && d.Step == "":
		d.Step = step.acl.name
	case step != nil && d.Step != step.acl.name:
		if soft(RuleStepMismatch, "step %q is not the current step %q", d.Step, step.acl.name) {
			return d, step
		}
	case step == nil && d.Step != "":
		if soft(RuleStepMismatch, "step %q is not running", d.Step) {
			return d, step
		}
	case step == nil && pol.RequireStep:
		if soft(RuleNoStep, "no step is running; egress is closed between steps") {
			return d, step
		}
	}
	if len(pol.Ports) > 0 && !slices.Contains(pol.Ports, req.Port) {
		if soft(RulePort, "port %d is not allowed", req.Port) {
			return d, step
		}
	}
	if lit, err := netip.ParseAddr(host); err == nil {
		d.Addr = lit
		if !pol.rangeAllows(lit) {
			if soft(RuleIPLiteral, "IP literal %s is in no allowed range", lit) {
				return d, step
			}
		} else if step != nil && !step.acl.rangeAllows(lit) {
			if soft(RuleStepDomain, "IP literal %s is not allowed in step %s", lit, step.acl.name) {
				return d, step
			}
		}
	} else {
		if !pol.domainAllowed(host) {
			if soft(RuleDomain, "%s is not in agent %s's domains", host, pol.Agent) {
				return d, step
			}
		} else if step != nil && !step.acl.domainAllowed(host) {
			if soft(RuleStepDomain, "%s is not allowed in step %s", host, step.acl.name) {
				return d, step
			}
		}
	}
	if req.Method != http.MethodConnect {
		if pol.methods != nil && !pol.methods[req.Method] {
			if soft(RuleMethod, "method %s is not allowed", req.Method) {
				return d, step
			}
		} else if step != nil && step.acl.methods != nil && !step.acl.methods[req.Method] {
			if soft(RuleStepMethod, "method %s is not allowed in step %s", req.Method, step.acl.name) {
				return d, step
			}
		}
	} else if _, ok := pol.originTLS(host); ok {
		// Never softened: through a tunnel the pins and client
		// certificate could not be applied at all.
		d.deny(RuleTLSRequired, "%s needs TLS originated by the proxy (pins or mTLS): send plain http:// requests to the proxy instead of CONNECT", host)
		return d, step
	}
	if d.Addr.IsValid() {
		p.checkAddrs(&d, pol, []netip.Addr{d.Addr})
	}
	return d, step
}

// checkAddrs refuses the decision when any address is of a refused class
// and no allowed range holds it; report mode does not soften this.
func (p *Proxy) checkAddrs(d *Decision, pol *compiled, addrs []netip.Addr) {
	for _, a := range addrs {
		if c := Classify(a); c != ClassGlobal && !pol.rangeAllows(a) {
			d.Addr = a
			d.deny(RuleAddress, "%s resolves to %s, a %s address", d.Host, a, c)
			return
		}
	}
}

// admit takes the full decision for a request: the ACL, then (for a name)
// one resolution and the address rules, then the rate limits. The address
// to dial is d.Addr.
func (p *Proxy) admit(ctx context.Context, st *agentState, req Request, kind string) Decision {
	d, step := p.evaluate(st, grantFrom(ctx), req, kind)
	if !d.Allowed() {
		return d
	}
	if !d.Addr.IsValid() {
		rctx, cancel := context.WithTimeout(ctx, st.pol.Limits.DialTimeout)
		addrs, err := p.opts.Resolver.LookupNetIP(rctx, "ip", d.Host)
		cancel()
		if err != nil || len(addrs) == 0 {
			d.deny(RuleResolve, "resolving %s: %v", d.Host, errOrEmpty(err))
			return d
		}
		d.Addr = addrs[0].WithZone("")
		p.checkAddrs(&d, st.pol, addrs)
		if !d.Allowed() {
			return d
		}
	}
	now := p.opts.Clock()
	if st.limiter != nil && !st.limiter.AllowN(now, 1) {
		d.deny(RuleRate, "agent %s exceeds %g requests per second", st.pol.Agent, st.pol.Limits.Rate)
		return d
	}
	if step != nil && step.limiter != nil && !step.limiter.AllowN(now, 1) {
		d.deny(RuleStepRate, "step %s exceeds its rate limit", step.acl.name)
		return d
	}
	return d
}

func errOrEmpty(err error) error {
	if err == nil {
		return errors.New("no addresses")
	}
	return err
}

// finish logs and records a decision, once.
func (p *Proxy) finish(d *Decision) {
	d.Latency = p.opts.Clock().Sub(d.Time)
	level := slog.LevelInfo
	if d.Action != ActionAllow {
		level = slog.LevelWarn
	}
	p.log.LogAttrs(context.Background(), level, "egress decision", slog.Any("decision", *d))
	p.metrics.decision(*d)
	if p.opts.Recorder != nil {
		p.opts.Recorder(*d)
	}
}

// checkedAddrKey carries the address admit checked to the dialer.
type checkedAddrKey struct{}

func withCheckedAddr(ctx context.Context, ap netip.AddrPort) context.Context {
	return context.WithValue(ctx, checkedAddrKey{}, ap)
}

// dialChecked dials the address admit checked, never a name: the transport's
// own idea of the address is ignored, so a second lookup cannot happen.
func dialChecked(timeout time.Duration) func(ctx context.Context, network, addr string) (net.Conn, error) {
	return func(ctx context.Context, network, _ string) (net.Conn, error) {
		ap, ok := ctx.Value(checkedAddrKey{}).(netip.AddrPort)
		if !ok || !ap.IsValid() {
			return nil, errors.New("egress: refusing to dial an address that was not checked")
		}
		d := net.Dialer{Timeout: timeout}
		return d.DialContext(ctx, "tcp", ap.String())
	}
}

func (p *Proxy) newTransport(c *compiled, t *compiledTLS) *http.Transport {
	tc := &tls.Config{RootCAs: p.opts.RootCAs, MinVersion: tls.VersionTLS12}
	if t != nil {
		if t.ClientCert != nil {
			tc.Certificates = []tls.Certificate{*t.ClientCert}
		}
		if len(t.Pins) > 0 {
			tc.VerifyConnection = verifyPins(t.Pins)
		}
	}
	return &http.Transport{
		Proxy:                 nil,
		DialContext:           p.transportDialer(c.Limits.DialTimeout),
		TLSClientConfig:       tc,
		TLSHandshakeTimeout:   c.Limits.DialTimeout,
		ResponseHeaderTimeout: c.Limits.ResponseTimeout,
		MaxIdleConns:          256,
		MaxIdleConnsPerHost:   64,
		IdleConnTimeout:       90 * time.Second,
		DisableCompression:    true,
		ForceAttemptHTTP2:     false,
	}
}

// RemoveAgent forgets an agent's policy; its requests are refused from
// then on (RuleUnknownAgent).
func (p *Proxy) RemoveAgent(agent string) {
	p.mu.Lock()
	st := p.agents[agent]
	delete(p.agents, agent)
	p.mu.Unlock()
	if st != nil {
		st.plain.CloseIdleConnections()
		for _, t := range st.tls {
			t.CloseIdleConnections()
		}
	}
}

// Close closes the origins' idle connections.
func (p *Proxy) Close() {
	p.mu.RLock()
	defer p.mu.RUnlock()
	for _, st := range p.agents {
		st.plain.CloseIdleConnections()
		for _, t := range st.tls {
			t.CloseIdleConnections()
		}
	}
}

// PinnedResolver answers the names of Static itself (DNS pinning) and asks
// Next for the others; a nil Next resolves nothing else.
type PinnedResolver struct {
	Static StaticResolver
	Next   Resolver
}

// LookupNetIP returns the pinned addresses of host, or Next's.
func (r PinnedResolver) LookupNetIP(ctx context.Context, network, host string) ([]netip.Addr, error) {
	if _, ok := r.Static[host]; ok || r.Next == nil {
		return r.Static.LookupNetIP(ctx, network, host)
	}
	return r.Next.LookupNetIP(ctx, network, host)
}
