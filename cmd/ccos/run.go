package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/ccos-project/ccos/chain"
	"github.com/ccos-project/ccos/control"
	"github.com/ccos-project/ccos/engine"
	"github.com/ccos-project/ccos/governance"
	"github.com/spf13/cobra"
)

// defaultConfig is the config of ccos run without --config.
const defaultConfig = `(profile:minimal "agent.default")`

func init() {
	var rf runFlags
	var af admitFlags
	cmd := &cobra.Command{
		Use:   "run PLAN",
		Short: "Run an RTFS plan inside the isolation the agent config asks for",
		Long: "run reads PLAN, loads and validates the agent config (--config, default\n" +
			defaultConfig + "), admits the plan's steps, starts a sandbox with the\n" +
			"provider the config's :orchestrator :isolation :mode calls for (or\n" +
			"--provider), runs the plan in it and prints the plan's value. It never\n" +
			"picks weaker isolation than asked: a provider that is not available is an\n" +
			"error naming what is missing, and --provider may name a weaker one only\n" +
			"with --allow-weaker.",
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runPlan(cmd.Context(), cmd.OutOrStdout(), cmd.ErrOrStderr(), args[0], af, rf)
		},
	}
	af.register(cmd)
	rf.register(cmd)
	rootCmd.AddCommand(cmd)
}

// runFlags are ccos run's flags beyond admission.
type runFlags struct {
	agent    agentFlags
	asJSON   bool
	restarts int
	receipt  string
	eng      engineFlags
}

func (f *runFlags) register(cmd *cobra.Command) {
	fl := cmd.Flags()
	f.agent.register(cmd, "ccos run")
	fl.BoolVar(&f.asJSON, "json", false, "print one JSON document with the value, output, steps and timings")
	fl.StringVar(&f.receipt, "receipt", "", "write the run's signed receipt (in-toto statement in a DSSE envelope; needs --chain-key) to this file")
	fl.IntVar(&f.restarts, "restarts", 0, "run the plan again in a new sandbox, up to this many times, if its sandbox crashes (side-effecting host calls already made are not repeated)")
	f.eng.register(cmd)
}

// agentFlags are the flags that set up an agent in the engine, beyond its
// config.
type agentFlags struct {
	provider, chainPath, chainKey, archiveDir string
	allowWeaker                               bool
	evalTimeout                               time.Duration
	evalSteps                                 int64
}

func (f *agentFlags) register(cmd *cobra.Command, who string) {
	fl := cmd.Flags()
	fl.StringVar(&f.provider, "provider", "auto", "sandbox provider: auto (from the config), process, wasm, gvisor, qemu or firecracker")
	fl.BoolVar(&f.allowWeaker, "allow-weaker", false, "allow --provider to give weaker isolation than the config asks for")
	fl.StringVar(&f.chainPath, "chain", "", "record runs in this causal chain file (default: the config's :causal_chain :storage)")
	fl.StringVar(&f.chainKey, "chain-key", "", "sign a checkpoint of the chain at the end of each run with this key (from `ccos chain keygen`)")
	fl.StringVar(&f.archiveDir, "archive", "", "store the admitted plan, its :intent (in the intent graph, with the run's outcome as status) and the run's signed checkpoint in this content-addressed archive")
	fl.DurationVar(&f.evalTimeout, "eval-timeout", 0, "how long a plan's evaluation may take (default 5s; the sandbox's deadline stays the hard bound)")
	fl.Int64Var(&f.evalSteps, "eval-steps", 0, "how many evaluation steps a plan may take (default 10 million)")
}

// options are the engine's agent options of the flags.
func (f agentFlags) options() (engine.AgentOptions, error) {
	o := engine.AgentOptions{Provider: f.provider, AllowWeaker: f.allowWeaker, Chain: f.chainPath, Archive: f.archiveDir,
		Evaluation: control.RunLimits{TimeoutMillis: f.evalTimeout.Milliseconds(), Steps: f.evalSteps}}
	if f.evalTimeout < 0 || f.evalSteps < 0 {
		return o, usageErr("--eval-timeout and --eval-steps must not be negative")
	}
	if f.chainKey != "" {
		signer, err := chain.ReadSignerFile(f.chainKey)
		if err != nil {
			return o, rejected(fmt.Sprintf("ccos: reading the chain key %s: %v", f.chainKey, err))
		}
		o.Signer = signer
	}
	return o, nil
}

// admitFlags are the flags that decide admission.
type admitFlags struct {
	cfgPath     string
	approvals   []string
	level       string
	allow, deny []string
}

func (af *admitFlags) register(cmd *cobra.Command) {
	cmd.Flags().StringVar(&af.cfgPath, "config", "", "agent config file (default: "+defaultConfig+")")
	cmd.Flags().StringArrayVar(&af.approvals, "approval", nil, "an approval file from `ccos plan approve` (repeatable)")
	cmd.Flags().StringVar(&af.level, "security-level", "controlled", "pure (no capabilities), controlled (allowlist; dangerous capabilities need :microvm) or full")
	cmd.Flags().StringArrayVar(&af.allow, "allow", nil, "at the controlled level, also allow capabilities matching this pattern (repeatable)")
	cmd.Flags().StringArrayVar(&af.deny, "deny", nil, "deny capabilities matching this pattern, at any level (repeatable)")
}

// level returns the security level of the flags.
func (af admitFlags) securityLevel() (governance.Level, error) {
	level, err := governance.ParseLevel(af.level)
	if err != nil {
		return "", &exitError{code: exitUsage, msg: "ccos: --security-level: " + err.Error()}
	}
	return level, nil
}

// configSource reads the agent config of --config, or the default one.
func configSource(path string) ([]byte, string, error) {
	if path == "" {
		return []byte(defaultConfig), "<default config>", nil
	}
	src, err := engine.ReadInput(path, engine.MaxConfigBytes)
	if err != nil {
		return nil, path, rejected("ccos: " + err.Error())
	}
	return src, path, nil
}

// openAgent loads the config of af into eng as an agent with the flags'
// security context and options; an invalid config is printed diagnostic
// by diagnostic.
func openAgent(eng *engine.Engine, stderr io.Writer, af admitFlags, ag agentFlags, mods ...func(*engine.AgentOptions)) (*engine.Agent, error) {
	src, file, err := configSource(af.cfgPath)
	if err != nil {
		return nil, err
	}
	level, err := af.securityLevel()
	if err != nil {
		return nil, err
	}
	o, err := ag.options()
	if err != nil {
		return nil, err
	}
	o.Level, o.Allow, o.Deny = level, af.allow, af.deny
	for _, m := range mods {
		m(&o)
	}
	a, err := eng.LoadAgent(src, file, o)
	if err != nil {
		return nil, agentError(stderr, err)
	}
	return a, nil
}

// agentError prints a config's diagnostics and turns a load error into
// the CLI's rejection.
func agentError(stderr io.Writer, err error) error {
	var ce *engine.ConfigError
	if errors.As(err, &ce) {
		printDiags(stderr, ce.Diags)
		return rejected(fmt.Sprintf("ccos: the agent config %s is invalid", ce.File))
	}
	return rejected("ccos: " + err.Error())
}

// planInput reads the plan file and the approval files.
func planInput(planPath string, approvals []string) (engine.PlanInput, error) {
	src, err := engine.ReadInput(planPath, engine.MaxPlanBytes)
	if err != nil {
		return engine.PlanInput{}, rejected("ccos: " + err.Error())
	}
	name := planPath
	if planPath == "-" {
		name = "<stdin>"
	}
	in := engine.PlanInput{Source: src, File: name}
	for _, f := range approvals {
		text, err := engine.ReadInput(f, 64<<10)
		if err != nil {
			return in, rejected("ccos: cannot read approval: " + err.Error())
		}
		in.Approvals = append(in.Approvals, string(text))
	}
	return in, nil
}

// admissionError is the CLI's rejection of a plan that was not admitted.
func admissionError(err error) error {
	var ae *engine.AdmissionError
	if errors.As(err, &ae) {
		return rejected("ccos: " + ae.Error())
	}
	return rejected("ccos: " + err.Error())
}

func runPlan(ctx context.Context, stdout, stderr io.Writer, planPath string, af admitFlags, rf runFlags) error {
	if ctx == nil {
		ctx = context.Background()
	}
	if rf.receipt != "" && rf.agent.chainKey == "" {
		return usageErr("--receipt needs --chain-key: a receipt is signed with the chain's key")
	}
	eng, closeEng, err := rf.eng.open(nil)
	if err != nil {
		return err
	}
	defer closeEng()
	a, err := openAgent(eng, stderr, af, rf.agent)
	if err != nil {
		return err
	}
	in, err := planInput(planPath, af.approvals)
	if err != nil {
		return err
	}
	res, err := a.Run(ctx, engine.RunRequest{PlanInput: in, Restarts: rf.restarts})
	var ae *engine.AdmissionError
	if errors.As(err, &ae) {
		return admissionError(err)
	}
	if rf.receipt != "" && res != nil && res.Receipt != nil {
		if werr := writeFileAtomic(rf.receipt, append(res.Receipt, '\n')); werr != nil && err == nil {
			err = fmt.Errorf("writing the receipt: %w", werr)
		}
	}
	if err != nil {
		// What the host saw of a run that failed: the output it sent.
		if res != nil && !rf.asJSON {
			io.WriteString(stdout, res.Output)
		}
		return rejected("ccos run: " + err.Error())
	}
	if rf.asJSON {
		if err := writeJSON(stdout, runDocument(res)); err != nil {
			return err
		}
	} else {
		io.WriteString(stdout, res.Output)
		if res.OutputTruncated {
			fmt.Fprintln(stderr, "ccos run: the plan's output was truncated")
		}
		if res.Value != nil {
			fmt.Fprintln(stdout, *res.Value)
		}
	}
	if res.Error != nil {
		msg := res.Error.Type + ": " + res.Error.Message
		if res.Error.Where != "" {
			msg = res.Error.Where + ": " + msg
		}
		if res.Error.Hint != "" {
			msg += " (hint: " + res.Error.Hint + ")"
		}
		for _, f := range res.Error.Stack {
			msg += "\n  at " + f
		}
		return rejected(msg)
	}
	return nil
}

// runDoc is ccos run's --json document.
type runDoc struct {
	Plan      string             `json:"plan"`
	Run       string             `json:"run_id"`
	Provider  string             `json:"provider"`
	OK        bool               `json:"ok"`
	Value     *string            `json:"value,omitempty"`
	Error     any                `json:"error,omitempty"`
	Output    string             `json:"output"`
	Truncated bool               `json:"output_truncated,omitempty"`
	Steps     any                `json:"steps"`
	InDoubt   []string           `json:"in_doubt,omitempty"`
	Timings   map[string]float64 `json:"timings_ms"`
}

func runDocument(res *engine.RunResult) runDoc {
	d := runDoc{Plan: res.Plan, Run: res.ID, Provider: res.Provider, OK: res.Error == nil, Value: res.Value, Output: res.Output,
		Truncated: res.OutputTruncated, Steps: res.Steps, InDoubt: res.InDoubt,
		Timings: map[string]float64{"startup": res.Timings.Startup, "dispatch": res.Timings.Dispatch, "total": res.Timings.Total}}
	if res.Error != nil {
		d.Error = res.Error
	}
	return d
}
