package main

import (
	"context"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/ccos-project/ccos/archive"
	"github.com/ccos-project/ccos/capability"
	"github.com/ccos-project/ccos/config"
	"github.com/ccos-project/ccos/governance"
	"github.com/ccos-project/ccos/internal/input"
	"github.com/ccos-project/ccos/orchestrator"
	"github.com/ccos-project/ccos/plan"
	"github.com/ccos-project/ccos/rtfs"
	"github.com/ccos-project/ccos/sandbox"
	"github.com/spf13/cobra"
)

// defaultConfig is the config of ccos run without --config.
const defaultConfig = `(profile:minimal "agent.default")`

// isolationStrength orders providers by the isolation they give; a
// provider may replace the config's choice only with one at least as strong
// unless the user passes --allow-weaker.
var isolationStrength = map[string]int{
	"mock": 0, "process": 2, "wasm": 2, "gvisor": 3, "qemu": 4, "firecracker": 4,
}

// providersFor lists, best first, the providers that implement an
// isolation mode of the config.
var providersFor = map[config.IsolationMode][]string{
	config.IsolationWasm:      {"wasm"},
	config.IsolationContainer: {"gvisor", "process"},
	config.IsolationMicroVM:   {"firecracker", "qemu"},
}

func init() {
	var provider, chainPath, chainKey, archiveDir string
	var af admitFlags
	var asJSON, allowWeaker bool
	var restarts int
	var ef egressFlags
	var vo vmOptions
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
			return runPlan(cmd.OutOrStdout(), cmd.ErrOrStderr(), args[0], af, runOptions{provider: provider,
				chainPath: chainPath, chainKey: chainKey, archiveDir: archiveDir, asJSON: asJSON, allowWeaker: allowWeaker, restarts: restarts, egress: ef, vm: vo})
		},
	}
	af.register(cmd)
	cmd.Flags().StringVar(&provider, "provider", "auto", "sandbox provider: auto (from the config), "+strings.Join(providerNames(), ", "))
	cmd.Flags().BoolVar(&asJSON, "json", false, "print one JSON document with the value, output, steps and timings")
	cmd.Flags().StringVar(&chainPath, "chain", "", "record the run in this causal chain file (default: the config's :causal_chain :storage)")
	cmd.Flags().StringVar(&chainKey, "chain-key", "", "sign a checkpoint of the chain at the end of the run with this key (from `ccos chain keygen`)")
	cmd.Flags().StringVar(&archiveDir, "archive", "", "store the admitted plan, its :intent (in the intent graph, with the run's outcome as status) and the run's signed checkpoint in this content-addressed archive")
	cmd.Flags().BoolVar(&allowWeaker, "allow-weaker", false, "allow --provider to give weaker isolation than the config asks for")
	ef.register(cmd)
	vo.register(cmd.Flags())
	cmd.Flags().IntVar(&restarts, "restarts", 0, "run the plan again in a new sandbox, up to this many times, if its sandbox crashes (side-effecting host calls already made are not repeated)")
	rootCmd.AddCommand(cmd)
}

func providerNames() []string {
	var names []string
	for _, p := range sandbox.Providers() {
		names = append(names, p.Name())
	}
	return names
}

// runOptions are ccos run's flags beyond admission.
type runOptions struct {
	provider, chainPath, chainKey, archiveDir string
	asJSON, allowWeaker                       bool
	restarts                                  int
	egress                                    egressFlags
	vm                                        vmOptions
}

func runPlan(stdout, stderr io.Writer, planPath string, af admitFlags, o runOptions) error {
	a, err := admitPlan(stderr, planPath, af)
	if err != nil {
		return err
	}
	p, res, adm := a.plan, a.res, a.adm
	eg, err := newRunEgress(res.Config, o.egress, nil)
	if err != nil {
		return rejected("ccos run: egress proxy: " + err.Error())
	}
	defer eg.Close()
	a.out.e = eg
	if err := prepareProviders(stderr, res, af.cfgPath, eg.handler(), o.vm); err != nil {
		return rejected("ccos run: " + err.Error())
	}
	prov, err := chooseProvider(res.Config, o.provider, o.allowWeaker)
	if err != nil {
		return rejected("ccos run: " + err.Error())
	}
	var arc *archive.Archive
	var planHash string
	setIntent := func(string) error { return nil }
	if o.archiveDir != "" {
		if arc, err = archive.Open(o.archiveDir); err != nil {
			return rejected("ccos run: " + err.Error())
		}
		defer arc.Close()
		if planHash, err = arc.PutPlan(archive.Plan{Name: p.Name, Source: string(p.Source), Steps: p.StepNames(), File: p.File}); err != nil {
			return rejected("ccos run: storing the plan: " + err.Error())
		}
		if setIntent, err = archiveIntent(arc, p, planHash); err != nil {
			return rejected("ccos run: storing the plan's intent: " + err.Error())
		}
	}
	rec, err := openRunChain(stderr, res.Config, o.chainPath, o.chainKey)
	if err != nil {
		return rejected("ccos run: " + err.Error())
	}
	session := newSessionID()
	eg.recordTo(rec, session, adm.PlanHash, stderr)
	rep, err := orchestrator.Run(context.Background(), orchestrator.Request{
		Plan:      p,
		Admission: adm,
		Provider:  prov,
		Spec:      sandbox.Spec{ID: session},
		Caps:      a.caps,
		Recorder:  rec,
		Restarts:  o.restarts,
	})
	if cerr := rec.Close(); cerr != nil && err == nil {
		err = fmt.Errorf("closing the causal chain: %w", cerr)
	}
	status := "completed"
	if err != nil || rep.Error != nil {
		status = "failed"
	}
	if ierr := setIntent(status); ierr != nil && err == nil {
		err = fmt.Errorf("recording the intent's status: %w", ierr)
	}
	if err != nil {
		return rejected("ccos run: " + err.Error())
	}
	if arc != nil && rep.Checkpoint != nil {
		if _, err := arc.PutCheckpoint(archive.Checkpoint{Note: string(rep.Checkpoint), Plan: planHash}); err != nil {
			return rejected("ccos run: storing the checkpoint: " + err.Error())
		}
	}
	asJSON := o.asJSON
	if asJSON {
		if err := writeJSON(stdout, runDocument(p, rep)); err != nil {
			return err
		}
	} else {
		io.WriteString(stdout, rep.Output)
		if rep.Truncated {
			fmt.Fprintln(stderr, "ccos run: the plan's output was truncated")
		}
		if rep.Value != nil {
			fmt.Fprintln(stdout, rtfs.Print(rep.Value))
		}
	}
	if rep.Error != nil {
		msg := rep.Error.Type + ": " + rep.Error.Message
		if rep.Error.Where != "" {
			msg = rep.Error.Where + ": " + msg
		}
		for _, f := range rep.Error.Stack {
			msg += "\n  at " + f
		}
		return rejected(msg)
	}
	return nil
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

// admitted is a plan the governance kernel admitted, with the config and
// the capabilities it was admitted against.
type admitted struct {
	plan *plan.Plan
	res  *config.Result
	adm  *governance.Admission
	caps *capability.Registry
	// out is where the host's network capabilities go: set to the run's
	// egress proxy once it exists.
	out *egressSlot
}

// admitPlan loads the config and its marketplace contracts, reads the plan
// and asks the governance kernel to admit it; every problem is printed and
// ends in a rejection.
func admitPlan(stderr io.Writer, planPath string, af admitFlags) (*admitted, error) {
	level, err := governance.ParseLevel(af.level)
	if err != nil {
		return nil, &exitError{code: exitUsage, msg: "ccos: --security-level: " + err.Error()}
	}
	res, err := loadRunConfig(af.cfgPath)
	if err != nil {
		return nil, err
	}
	if res.Diags.HasErrors() {
		printDiags(stderr, res.Diags)
		return nil, rejected(fmt.Sprintf("ccos: the agent config %s is invalid", res.File))
	}
	out := &egressSlot{}
	caps, err := governance.Capabilities(res.Config, governance.ConfigDir(res.File), hostCapabilities(res.Config, out.fetch))
	if err != nil {
		return nil, rejected(fmt.Sprintf("ccos: the capabilities of %s:\n%v", res.File, err))
	}
	src, name, err := readInput(planPath)
	if err != nil {
		return nil, rejected(err.Error())
	}
	p, err := plan.Read(src, name)
	if err != nil {
		return nil, rejected(err.Error())
	}
	var approvals []governance.Approval
	for _, f := range af.approvals {
		text, err := input.ReadFile(f, input.MaxSmall)
		if err != nil {
			return nil, rejected("ccos: cannot read approval: " + err.Error())
		}
		a, err := governance.ParseApproval(string(text))
		if err != nil {
			return nil, rejected(fmt.Sprintf("ccos: %s: %v", f, err))
		}
		approvals = append(approvals, a)
	}
	rc := governance.DefaultContext(res.Config)
	rc.Level = level
	rc.Allow = append(rc.Allow, af.allow...)
	rc.Deny = af.deny
	adm, err := governance.AdmitIn(rc, p, res.Config, caps, approvals)
	if err != nil {
		return nil, rejected(fmt.Sprintf("ccos: plan %s was not admitted:\n%v", name, err))
	}
	return &admitted{plan: p, res: res, adm: adm, caps: caps, out: out}, nil
}

// hostCapabilities are the capabilities the host runs for a guest under
// cfg.
func hostCapabilities(cfg *config.Config, fetch capability.FetchFunc) *capability.Registry {
	o := capability.Options{Fetch: fetch}
	if cfg.Capabilities.Env.Enabled {
		o.EnvVars = cfg.Capabilities.Env.Vars
	}
	return capability.BuiltinsWith(o)
}

func loadRunConfig(path string) (*config.Result, error) {
	if path == "" {
		return config.Load([]byte(defaultConfig), "<default config>", configEvaluator), nil
	}
	return loadConfig(path)
}

// chooseProvider picks the provider for a run: the flag if given (refusing
// weaker isolation than the config's unless allowed), else the best
// available provider for the config's isolation mode. It never falls back
// to a weaker kind of isolation.
func chooseProvider(cfg *config.Config, flag string, allowWeaker bool) (sandbox.Provider, error) {
	mode := cfg.Orchestrator.Isolation.Mode
	wanted := providersFor[mode]
	if flag != "" && flag != "auto" {
		p, err := sandbox.Lookup(flag)
		if err != nil {
			return nil, err
		}
		// The floor is the weakest provider that implements the mode.
		floor := 0
		if len(wanted) > 0 {
			floor = isolationStrength[wanted[len(wanted)-1]]
		}
		if isolationStrength[flag] < floor && !allowWeaker {
			return nil, fmt.Errorf("provider %s gives weaker isolation than the config's :isolation :mode :%s (providers: %s); pass --allow-weaker to accept that",
				flag, mode, strings.Join(wanted, ", "))
		}
		if ok, reason := p.Available(); !ok {
			return nil, fmt.Errorf("provider %s is not available here: %s", flag, reason)
		}
		return p, nil
	}
	if len(wanted) == 0 {
		return nil, fmt.Errorf("the config's :isolation :mode :%s names no known isolation", mode)
	}
	var why []string
	for _, n := range wanted {
		p, err := sandbox.Lookup(n)
		if err != nil {
			why = append(why, n+": not built into this ccos")
			continue
		}
		ok, reason := p.Available()
		if ok {
			return p, nil
		}
		why = append(why, n+": "+reason)
	}
	return nil, fmt.Errorf("no provider for :isolation :mode :%s is available, and ccos does not fall back to weaker isolation (%s)",
		mode, strings.Join(why, "; "))
}

type runDoc struct {
	Plan      string                    `json:"plan"`
	Provider  string                    `json:"provider"`
	OK        bool                      `json:"ok"`
	Value     *string                   `json:"value,omitempty"`
	Error     any                       `json:"error,omitempty"`
	Output    string                    `json:"output"`
	Truncated bool                      `json:"output_truncated,omitempty"`
	Steps     []orchestrator.StepRecord `json:"steps"`
	Timings   map[string]float64        `json:"timings_ms"`
}

func runDocument(p *plan.Plan, rep *orchestrator.Report) runDoc {
	d := runDoc{Plan: p.Name, Provider: rep.Provider, OK: rep.Error == nil, Output: rep.Output,
		Truncated: rep.Truncated, Steps: rep.Steps,
		Timings: map[string]float64{"startup": ms(rep.Startup), "dispatch": ms(rep.Dispatch), "total": ms(rep.Total)}}
	if d.Steps == nil {
		d.Steps = []orchestrator.StepRecord{}
	}
	if rep.Value != nil {
		s := rtfs.Print(rep.Value)
		d.Value = &s
	}
	if rep.Error != nil {
		d.Error = rep.Error
	}
	return d
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
