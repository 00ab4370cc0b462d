package nodeagent

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"

	"github.com/ccos-project/ccos/chain"
	"github.com/ccos-project/ccos/config"
	"github.com/ccos-project/ccos/engine"
	"github.com/ccos-project/ccos/k8s/api/v1alpha1"
	"github.com/ccos-project/ccos/orchestrator"
	"github.com/ccos-project/ccos/sandbox"
)

// EngineOptions configure an EngineRunner.
type EngineOptions struct {
	// Engine are the operator's settings (egress resolver, ranges and
	// certificates, VM snapshots); Providers, when nil, is the host's real
	// providers restricted to Allowed.
	Engine engine.Options
	// Allowed names the providers this node may use (nil: all).
	Allowed []string
	// Agent is the template of every agent's options: the security level
	// and its allow and deny patterns, sandbox limits. Its Recorder is
	// replaced by the node's chain.
	Agent engine.AgentOptions
	// Recorder is the node's causal chain: every run of every agent is
	// recorded in it, and its signer signs the checkpoint each run ends
	// with (required).
	Recorder *chain.Recorder
}

// EngineRunner runs AgentRuns with the run engine: each AgentConfig (by
// UID and resource version) is loaded once as an engine agent, in an
// engine of its own (agent ids are the configs', and two namespaces may
// use the same one), recording into the node's chain.
type EngineRunner struct {
	o      EngineOptions
	offers Offers

	mu     sync.Mutex
	agents map[string]*loadedAgent // by Job.ConfigKey
}

type loadedAgent struct {
	eng  *engine.Engine
	ag   *engine.Agent
	runs int // in progress
	old  bool
}

// maxLoadedAgents bounds the agents kept loaded; idle ones beyond it are
// closed.
const maxLoadedAgents = 64

// NewEngineRunner returns a runner and asks the engine what this node can
// give: for each isolation mode, the provider a probe agent gets for it.
func NewEngineRunner(o EngineOptions) (*EngineRunner, error) {
	if o.Recorder == nil {
		return nil, errors.New("nodeagent: the engine runner needs the node's chain recorder")
	}
	if o.Engine.Providers == nil {
		o.Engine.Providers = AllowedProviders(engine.DefaultProviders(), o.Allowed)
	}
	offers, err := probeOffers(o.Engine)
	if err != nil {
		return nil, err
	}
	return &EngineRunner{o: o, offers: offers, agents: map[string]*loadedAgent{}}, nil
}

// AllowedProviders restricts a provider set to the named providers (all
// when names is empty).
func AllowedProviders(set engine.ProviderSet, names []string) engine.ProviderSet {
	if len(names) == 0 {
		return set
	}
	return func(env engine.ProviderEnv) []sandbox.Provider {
		var out []sandbox.Provider
		for _, p := range set(env) {
			if slices.Contains(names, p.Name()) {
				out = append(out, p)
			}
		}
		return out
	}
}

// probeConfig is the config of the agent that asks the engine what this
// node gives; its mode is the weakest, so every mode may be asked for.
const probeConfig = `(profile:minimal "ccos.node-probe")`

// probeOffers asks a probe agent for the provider of each isolation mode:
// the engine's own choice (never weaker), as a run would get it.
func probeOffers(eo engine.Options) (Offers, error) {
	eng, err := engine.New(eo)
	if err != nil {
		return Offers{}, err
	}
	defer eng.Close()
	probe, err := eng.LoadAgent([]byte(probeConfig), "<node probe>", engine.AgentOptions{})
	if err != nil {
		return Offers{}, fmt.Errorf("loading the node's probe agent: %w", err)
	}
	offers := Offers{Isolation: map[v1alpha1.Isolation]string{}}
	for _, mode := range []config.IsolationMode{config.IsolationWasm, config.IsolationContainer, config.IsolationMicroVM} {
		if p, err := probe.Provider(mode); err == nil {
			offers.Isolation[v1alpha1.Isolation(mode)] = p.Name()
		}
	}
	for _, st := range probe.Providers() {
		if st.Available {
			offers.Providers = append(offers.Providers, st.Provider)
		}
	}
	slices.SortStableFunc(offers.Providers, func(a, b string) int { return engine.Strength(b) - engine.Strength(a) })
	return offers, nil
}

// Offers returns what the engine gives on this node.
func (r *EngineRunner) Offers() Offers { return r.offers }

// Run runs one attempt through the engine, with the run's call journal.
func (r *EngineRunner) Run(ctx context.Context, job Job) (*Outcome, error) {
	la, err := r.agent(job)
	if err != nil {
		return nil, err
	}
	defer r.release(job.ConfigKey, la)
	calls, err := orchestrator.NewCallRecordWith(job.Calls)
	if err != nil {
		return nil, err
	}
	res, err := la.ag.Run(ctx, engine.RunRequest{ID: job.ID, Calls: calls, PlanInput: engine.PlanInput{
		Source: job.Plan, File: job.PlanFile, Approvals: job.Approvals, Isolation: config.IsolationMode(job.Isolation)}})
	if err != nil {
		return nil, err
	}
	out := &Outcome{Output: res.Output, OutputTruncated: res.OutputTruncated, Provider: res.Provider, PlanHash: res.PlanHash,
		Checkpoint: []byte(res.Checkpoint), InDoubt: res.InDoubt}
	for _, s := range res.Steps {
		out.Steps = append(out.Steps, v1alpha1.StepSummary{Name: s.Name, OK: s.OK, Error: Bound(s.Error, 1024), DurationMillis: s.Duration.Milliseconds()})
	}
	switch {
	case res.Error != nil:
		out.Error = res.Error.Type + ": " + res.Error.Message
		if res.Error.Where != "" {
			out.Error = res.Error.Where + ": " + out.Error
		}
	case res.Value != nil:
		out.Value = *res.Value
	}
	return out, nil
}

// agent returns the loaded agent of the job's config, loading it on first
// use; an invalid config is an *engine.ConfigError.
func (r *EngineRunner) agent(job Job) (*loadedAgent, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if la, ok := r.agents[job.ConfigKey]; ok {
		la.runs++
		return la, nil
	}
	eng, err := engine.New(r.o.Engine)
	if err != nil {
		return nil, err
	}
	ao := r.o.Agent
	ao.Recorder, ao.Chain, ao.Archive = r.o.Recorder, "", ""
	ag, err := eng.LoadAgent(job.Config, job.ConfigFile, ao)
	if err != nil {
		eng.Close()
		return nil, err
	}
	la := &loadedAgent{eng: eng, ag: ag, runs: 1}
	r.agents[job.ConfigKey] = la
	r.evictLocked()
	return la, nil
}

func (r *EngineRunner) release(key string, la *loadedAgent) {
	r.mu.Lock()
	defer r.mu.Unlock()
	la.runs--
	if la.old && la.runs == 0 {
		la.eng.Close()
	}
	r.evictLocked()
}

// evictLocked closes idle agents beyond the bound; busy ones are closed
// when their last run ends.
func (r *EngineRunner) evictLocked() {
	for key, la := range r.agents {
		if len(r.agents) <= maxLoadedAgents {
			return
		}
		delete(r.agents, key)
		la.old = true
		if la.runs == 0 {
			la.eng.Close()
		}
	}
}

// Close closes every loaded agent; runs in progress are the caller's to
// finish first.
func (r *EngineRunner) Close() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	var errs []error
	for key, la := range r.agents {
		errs = append(errs, la.eng.Close())
		delete(r.agents, key)
	}
	return errors.Join(errs...)
}
