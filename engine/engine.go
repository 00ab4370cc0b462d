// Package engine is the one place that turns an agent config, a plan, its
// approvals and a security context into an admitted, isolated, recorded
// run. Every front end calls it — `ccos run` and `ccos plan check`, the
// supervisor service, the Kubernetes node agent, the MCP server — and none
// assembles the system itself.
//
// An Engine holds the operator's settings for one host (which providers
// may run, VM snapshot starts, the egress proxy's resolver, ranges and
// certificates) and the egress proxy its agents share. An Agent is one
// loaded and validated agent config with everything that belongs to it
// alone: its capabilities (built-ins, marketplace contracts, config
// entries), its egress policy, its sandbox providers (built from options
// for that agent: two agents, or two engines, with different VM settings
// coexist), its warm pool, its causal chain, its archive and its admission
// cache. Agent.Admit is the one admission entry point; Agent.Run admits,
// chooses the provider (never weaker than the config asks), runs the plan
// with the step's egress ACL carried by each request, records every event
// and egress decision tagged with the run, the plan hash and the step, and
// stores the plan, its intent and the checkpoint in the archive.
package engine

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"net/url"
	"sync"

	"github.com/ccos-project/ccos/egress"
	"github.com/prometheus/client_golang/prometheus"
)

// Options are the operator's settings for the runs of one host.
type Options struct {
	// Providers builds the sandbox providers of an agent; nil means
	// DefaultProviders (process, wasm, gvisor, qemu, firecracker). Tests
	// add the in-process provider this way; it is never built otherwise.
	Providers ProviderSet
	// VMSnapshots makes the qemu provider start guests from a snapshot of
	// a booted, warmed-up guest instead of booting each one.
	VMSnapshots bool
	// CacheDir holds built guest images and VM snapshots
	// (image.DefaultCacheRoot's directory when empty).
	CacheDir string
	// Egress are the operator's additions to every agent's egress policy.
	Egress EgressOptions
	// Logger receives the engine's logs; slog.Default() when nil.
	Logger *slog.Logger
	// Metrics receives the egress proxy's collectors; none when nil.
	Metrics prometheus.Registerer
}

// EgressOptions are the operator's settings of the egress proxy (the agent
// config has no keys for them).
type EgressOptions struct {
	// AllowRanges are address ranges agents may reach despite their class
	// (an internal service).
	AllowRanges []netip.Prefix
	// Resolve pins names to addresses instead of asking DNS.
	Resolve map[string][]netip.Addr
	// ClientCert is presented to :mtls origins.
	ClientCert *tls.Certificate
	// RootCAs verify origins (the system's when nil).
	RootCAs *x509.CertPool
	// DecisionLog receives one JSON line per decision, when set.
	DecisionLog io.Writer
	// Upstream, when set, is the forward proxy every origin is reached
	// through after the proxy's decision (a cluster's egress proxy).
	Upstream *url.URL
}

// Engine runs the agents of one host. It is safe for concurrent use.
type Engine struct {
	o   Options
	log *slog.Logger

	mu     sync.Mutex
	proxy  *egress.Proxy
	agents map[string]*Agent
	runs   map[string]*runState
	closed bool
}

// New returns an engine.
func New(o Options) (*Engine, error) {
	if o.Providers == nil {
		o.Providers = DefaultProviders()
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	return &Engine{o: o, log: o.Logger, agents: map[string]*Agent{}, runs: map[string]*runState{}}, nil
}

// ErrClosed is returned by an engine, or an agent, after Close.
var ErrClosed = errors.New("engine: closed")

// ErrDuplicateAgent is returned when an agent id is loaded twice into one
// engine: agents are told apart by id (egress policy, chain, API paths).
var ErrDuplicateAgent = errors.New("engine: agent already loaded")

// Agent returns the loaded agent with the given id.
func (e *Engine) Agent(id string) (*Agent, bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	a, ok := e.agents[id]
	return a, ok
}

// Agents returns the ids of the loaded agents.
func (e *Engine) Agents() []*Agent {
	e.mu.Lock()
	defer e.mu.Unlock()
	out := make([]*Agent, 0, len(e.agents))
	for _, a := range e.agents {
		out = append(out, a)
	}
	return out
}

// Close closes every agent (their pools, chains and archives) and the
// egress proxy. Runs in progress are the caller's to finish first.
func (e *Engine) Close() error {
	e.mu.Lock()
	if e.closed {
		e.mu.Unlock()
		return nil
	}
	e.closed = true
	agents := e.agents
	e.agents = map[string]*Agent{}
	px := e.proxy
	e.mu.Unlock()
	var errs []error
	for _, a := range agents {
		errs = append(errs, a.close())
	}
	if px != nil {
		px.Close()
	}
	return errors.Join(errs...)
}

func (e *Engine) remove(a *Agent) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.agents[a.ID()] == a {
		delete(e.agents, a.ID())
	}
}

func (e *Engine) String() string { return fmt.Sprintf("engine(%d agents)", len(e.Agents())) }
