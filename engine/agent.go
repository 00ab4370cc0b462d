package engine

import (
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"time"

	"github.com/ccos-project/ccos/archive"
	"github.com/ccos-project/ccos/capability"
	"github.com/ccos-project/ccos/chain"
	"github.com/ccos-project/ccos/config"
	"github.com/ccos-project/ccos/control"
	"github.com/ccos-project/ccos/governance"
	"github.com/ccos-project/ccos/sandbox"
	"golang.org/x/mod/sumdb/note"
)

// AgentOptions are the settings of one agent in an engine.
type AgentOptions struct {
	// Context is the security context the agent's plans are admitted in;
	// when nil, governance.DefaultContext(config) with Level, Allow and
	// Deny applied. Its Isolation is always the config's mode (or a
	// stronger one a run asks for).
	Context *governance.RuntimeContext
	// Level replaces the default context's level (controlled) when set;
	// Allow adds patterns to its allowlist; Deny denies patterns at every
	// level.
	Level       governance.Level
	Allow, Deny []string
	// Provider names the provider ("" or "auto": the best available one
	// for the config's :orchestrator :isolation :mode). A provider weaker
	// than the mode is refused unless AllowWeaker.
	Provider    string
	AllowWeaker bool
	// Pool keeps this many sandboxes started and waiting (0: none).
	Pool int
	// PoolMaxIdle bounds how long a sandbox waits in the pool.
	PoolMaxIdle time.Duration
	// Chain is the agent's causal chain: a file (append_file, or sqlite
	// for .db/.sqlite), "" for the config's :causal_chain :storage.
	Chain string
	// Recorder, when set, is used instead of opening Chain; the caller
	// closes it.
	Recorder *chain.Recorder
	// Signer signs the chain's checkpoints (nil: none; a config that
	// enables :causal_chain :anchor without one is warned about).
	Signer note.Signer
	// Archive is a content-addressed archive directory for the agent's
	// plans, intents and checkpoints ("" for none).
	Archive string
	// AdmissionCacheSize bounds the admission cache; 256 when 0.
	AdmissionCacheSize int
	// Limits bound each of the agent's sandboxes (memory, processes,
	// deadline...); the sandbox defaults where zero.
	Limits sandbox.Limits
	// Evaluation bounds the evaluation of the agent's plans in the guest
	// (time, steps, depth, collection size, output); the interpreter's
	// defaults where zero (5 s, 10 million steps). The sandbox's deadline
	// (Limits) stays the hard bound.
	Evaluation control.RunLimits
	// Rules are a front end's own rules for the config (an MCP server's
	// for configs its clients send), checked after validation and before
	// the agent touches anything on the host; their errors make the load
	// a *ConfigError like any other.
	Rules func(*config.Config) config.Diagnostics
}

// ConfigError is an agent config that does not load: every diagnostic,
// each with its file:line:col, code and hint.
type ConfigError struct {
	File  string
	Diags config.Diagnostics
}

func (e *ConfigError) Error() string {
	msg := fmt.Sprintf("the agent config %s is invalid:", e.File)
	for _, d := range e.Diags {
		if d.Severity == config.SeverityError {
			msg += "\n" + d.String()
		}
	}
	return msg
}

// Agent is one loaded, valid agent config and everything that belongs to
// it alone. It is safe for concurrent use: runs of one agent run in
// parallel.
type Agent struct {
	e    *Engine
	o    AgentOptions
	res  *config.Result
	rc   governance.RuntimeContext
	caps *capability.Registry
	env  ProviderEnv
	// egress is the agent's way out; nil when its config gives it no
	// network.
	egress *agentEgress

	cache *admissionCache

	mu        sync.Mutex
	providers []sandbox.Provider
	chosen    map[config.IsolationMode]sandbox.Provider
	pool      *sandbox.Pool
	rec       *chain.Recorder
	ownRec    bool
	arc       *archive.Archive
	runs      int
	closed    bool
}

// LoadAgentFile loads the agent config at path (see LoadAgent).
func (e *Engine) LoadAgentFile(path string, o AgentOptions) (*Agent, error) {
	src, err := ReadInput(path, MaxConfigBytes)
	if err != nil {
		return nil, err
	}
	return e.LoadAgent(src, path, o)
}

// MaxConfigBytes bounds an agent config file.
const MaxConfigBytes = 4 << 20

// LoadAgent loads, expands and validates an agent config (file names it in
// diagnostics and is where its relative paths are read from) and adds the
// agent to the engine. An invalid config is a *ConfigError; its warnings
// are in Config().Diags.
func (e *Engine) LoadAgent(src []byte, file string, o AgentOptions) (*Agent, error) {
	res := config.Load(src, file, config.RTFSEvaluator{})
	if o.Rules != nil && res.Config != nil && !res.Diags.HasErrors() {
		res.Diags = append(res.Diags, o.Rules(res.Config)...)
		res.Diags.Sort()
	}
	if res.Diags.HasErrors() || res.Config == nil {
		return nil, &ConfigError{File: file, Diags: res.Diags}
	}
	cfg := res.Config
	a := &Agent{e: e, o: o, res: res, chosen: map[config.IsolationMode]sandbox.Provider{}}
	a.cache = newAdmissionCache(o.AdmissionCacheSize)
	if o.Context != nil {
		a.rc = *o.Context
	} else {
		a.rc = governance.DefaultContext(cfg)
		if o.Level != "" {
			a.rc.Level = o.Level
		}
		a.rc.Allow = append(a.rc.Allow, o.Allow...)
		a.rc.Deny = append(a.rc.Deny, o.Deny...)
	}
	a.rc.Isolation = cfg.Orchestrator.Isolation.Mode
	e.mu.Lock()
	if e.closed {
		e.mu.Unlock()
		return nil, ErrClosed
	}
	if _, dup := e.agents[cfg.AgentID]; dup {
		e.mu.Unlock()
		return nil, fmt.Errorf("%w: %s (from %s)", ErrDuplicateAgent, cfg.AgentID, file)
	}
	e.agents[cfg.AgentID] = a
	e.mu.Unlock()
	var err error
	if a.egress, err = e.addEgress(cfg, governance.ConfigDir(file)); err != nil {
		e.remove(a)
		return nil, fmt.Errorf("the egress proxy of agent %s: %w", cfg.AgentID, err)
	}
	o2 := capability.Options{Fetch: a.fetch}
	if cfg.Capabilities.Env.Enabled {
		o2.EnvVars = cfg.Capabilities.Env.Vars
	}
	if a.caps, err = governance.Capabilities(cfg, governance.ConfigDir(file), capability.BuiltinsWith(o2)); err != nil {
		e.remove(a)
		return nil, fmt.Errorf("the capabilities of %s:\n%w", file, err)
	}
	a.env = ProviderEnv{Config: res, BaseDir: baseDir(file), VMSnapshots: e.o.VMSnapshots, CacheDir: e.o.CacheDir, Logger: e.log.With("agent", cfg.AgentID)}
	if a.egress != nil {
		a.env.Proxy = a.egress.handler()
	}
	a.providers = e.o.Providers(a.env)
	return a, nil
}

func baseDir(file string) string {
	if file == "" || file == "-" || file[0] == '<' {
		return "."
	}
	return filepath.Dir(file)
}

// ID is the agent's id (the config's :agent_id).
func (a *Agent) ID() string { return a.res.Config.AgentID }

// Config is the agent's loaded config (with its warnings in Diags).
func (a *Agent) Config() *config.Result { return a.res }

// Context is the security context the agent's plans are admitted in.
func (a *Agent) Context() governance.RuntimeContext { return a.rc }

// Capabilities is the registry the agent's plans are admitted against
// and its host capabilities run from.
func (a *Agent) Capabilities() *capability.Registry { return a.caps }

// Providers reports, for each provider the engine builds for this agent,
// whether it can run here and why not.
func (a *Agent) Providers() []ProviderStatus { return status(a.providers) }

// SandboxProviders returns the providers the engine built for this agent
// (benchmarks measure them directly).
func (a *Agent) SandboxProviders() []sandbox.Provider { return a.providers }

// Prepare does ahead of the first run what runs need: it chooses the
// provider for the config's isolation (an error when none is available,
// never a weaker one), starts the warm pool and opens the chain and the
// archive. Runs call it themselves; a service calls it at start to fail
// early and warm up.
func (a *Agent) Prepare() error {
	if _, err := a.Provider(""); err != nil {
		return err
	}
	if _, err := a.recorder(); err != nil {
		return err
	}
	_, err := a.archive()
	return err
}

// Provider returns the provider for runs that ask for isolation mode ("" for
// the config's), choosing it on first use: the operator's choice, or the
// best available one for the mode, never a weaker one. The config's mode
// gets the agent's warm pool, when it keeps one. A mode weaker than the
// config's is refused.
func (a *Agent) Provider(mode config.IsolationMode) (sandbox.Provider, error) {
	cfgMode := a.res.Config.Orchestrator.Isolation.Mode
	if mode == "" {
		mode = cfgMode
	}
	if ModeStrength(mode) < ModeStrength(cfgMode) {
		return nil, fmt.Errorf("the run asks for :%s isolation, weaker than the config's :%s; ccos never gives weaker isolation than the config asks for", mode, cfgMode)
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.closed {
		return nil, ErrClosed
	}
	if p, ok := a.chosen[mode]; ok {
		return p, nil
	}
	name := a.o.Provider
	if mode != cfgMode {
		// A stronger mode than the config's: the operator's choice was
		// for the config's.
		name = ""
	}
	p, err := choose(a.providers, mode, name, a.o.AllowWeaker)
	if err != nil {
		return nil, err
	}
	if mode == cfgMode && a.o.Pool > 0 {
		a.pool = sandbox.NewPoolIdle(p, sandbox.Spec{Limits: a.o.Limits}, a.o.Pool, a.o.PoolMaxIdle)
		p = a.pool
	}
	a.chosen[mode] = p
	return p, nil
}

// Pool returns the agent's warm pool, nil when it keeps none (or has not
// chosen its provider yet).
func (a *Agent) Pool() *sandbox.Pool {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.pool
}

// Limits are the bounds of each of the agent's sandboxes, with the
// sandbox defaults where the options left a field zero.
func (a *Agent) Limits() sandbox.Limits { return a.o.Limits.WithDefaults() }

// Recorder returns the agent's causal chain recorder, opening it on first
// use.
func (a *Agent) Recorder() (*chain.Recorder, error) { return a.recorder() }

func (a *Agent) recorder() (*chain.Recorder, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.closed {
		return nil, ErrClosed
	}
	if a.rec != nil {
		return a.rec, nil
	}
	if a.o.Recorder != nil {
		a.rec = a.o.Recorder
		return a.rec, nil
	}
	rec, err := openChain(a.res.Config, a.o.Chain, a.o.Signer, a.env.Logger)
	if err != nil {
		return nil, err
	}
	a.rec, a.ownRec = rec, true
	return rec, nil
}

func (a *Agent) archive() (*archive.Archive, error) {
	if a.o.Archive == "" {
		return nil, nil
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.arc != nil {
		return a.arc, nil
	}
	arc, err := archive.Open(a.o.Archive)
	if err != nil {
		return nil, err
	}
	a.arc = arc
	return arc, nil
}

// Close ends the agent: its pool, its chain and its archive, and removes
// it from the engine. Runs in progress are the caller's to finish first.
func (a *Agent) Close() error {
	a.e.remove(a)
	return a.close()
}

func (a *Agent) close() error {
	a.mu.Lock()
	if a.closed {
		a.mu.Unlock()
		return nil
	}
	a.closed = true
	pool, rec, own, arc := a.pool, a.rec, a.ownRec, a.arc
	a.mu.Unlock()
	if pool != nil {
		pool.Close()
	}
	var errs []error
	if rec != nil && own {
		errs = append(errs, rec.Close())
	}
	if arc != nil {
		errs = append(errs, arc.Close())
	}
	if a.egress != nil {
		a.e.removeEgress(a.ID())
	}
	return errors.Join(errs...)
}

// Catalog lists what the agent's plans may call under its config and
// security context, and what admission would refuse (see
// governance.BuildCatalog).
func (a *Agent) Catalog() *governance.Catalog {
	return governance.BuildCatalog(a.rc, a.res.Config, a.caps)
}

// ChainFile is the file the agent's causal chain is stored in ("" when it
// is kept in memory or given as a Recorder).
func (a *Agent) ChainFile() string {
	if a.o.Recorder != nil {
		return ""
	}
	if a.o.Chain != "" {
		return a.o.Chain
	}
	switch st := a.res.Config.CausalChain.Storage; chain.Mode(st.Mode) {
	case chain.StorageAppendFile, chain.StorageSQLite:
		return st.Path
	}
	return ""
}
