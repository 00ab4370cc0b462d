package mcpserver

import (
	"context"
	"fmt"
	"strings"

	"github.com/ccos-project/ccos/config"
	"github.com/ccos-project/ccos/engine"
	"github.com/ccos-project/ccos/governance"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// PlanArgs are run_plan's and check_plan's arguments.
type PlanArgs struct {
	Plan      string   `json:"plan" jsonschema:"the plan's RTFS text, e.g. (plan \"name\" :body (step \"s\" ...))"`
	Config    string   `json:"config,omitempty" jsonschema:"an agent config's RTFS text, e.g. (profile:minimal \"agent.x\"); the server's config when left out"`
	File      string   `json:"file,omitempty" jsonschema:"the name diagnostics give the plan (plan.rtfs when left out)"`
	Approvals []string `json:"approvals,omitempty" jsonschema:"approval texts from ccos plan approve, when the config's policy requires them"`
	Agent     string   `json:"agent,omitempty" jsonschema:"with a supervisor: the agent to run under (the server's default when left out)"`
}

// RunOutput is run_plan's and get_run's result.
type RunOutput struct {
	OK bool `json:"ok"`
	// Status is succeeded, failed, in_doubt, cancelled, queued, running,
	// not_admitted or invalid_config.
	Status   string `json:"status"`
	RunID    string `json:"run_id,omitempty"`
	Agent    string `json:"agent,omitempty"`
	Plan     string `json:"plan,omitempty"`
	PlanHash string `json:"plan_hash,omitempty"`
	Provider string `json:"provider,omitempty"`
	// Value is the plan's value in canonical RTFS.
	Value           *string `json:"value,omitempty"`
	Output          string  `json:"output,omitempty"`
	OutputTruncated bool    `json:"output_truncated,omitempty"`
	Steps           []Step  `json:"steps,omitempty"`
	// Failure is why the run failed outside the plan (sandbox, session,
	// limit).
	Failure string   `json:"failure,omitempty"`
	InDoubt []string `json:"in_doubt,omitempty"`
	// Diagnostics say what was refused or failed, where and how to fix it.
	Diagnostics []engine.Diagnostic `json:"diagnostics"`
}

// Step is one step of a run.
type Step struct {
	Name  string `json:"name"`
	OK    bool   `json:"ok"`
	Error string `json:"error,omitempty"`
}

// CheckOutput is check_plan's result.
type CheckOutput struct {
	Admitted bool   `json:"admitted"`
	Agent    string `json:"agent,omitempty"`
	PlanHash string `json:"plan_hash,omitempty"`
	// Admission is every step's profile, the risk tier, policy and
	// budget, when admitted.
	Admission   *governance.Admission `json:"admission,omitempty"`
	Diagnostics []engine.Diagnostic   `json:"diagnostics"`
}

// ConfigArgs are validate_config's arguments.
type ConfigArgs struct {
	Config string `json:"config" jsonschema:"the agent config's RTFS text"`
	File   string `json:"file,omitempty" jsonschema:"the name diagnostics give the config (agent.config.rtfs when left out)"`
}

// ConfigOutput is validate_config's result.
type ConfigOutput struct {
	Valid    bool `json:"valid"`
	Errors   int  `json:"errors"`
	Warnings int  `json:"warnings"`
	// Expanded is the config after profiles and defaults, canonical RTFS,
	// when it is valid.
	Expanded    string              `json:"expanded,omitempty"`
	Diagnostics []engine.Diagnostic `json:"diagnostics"`
}

// GetRunArgs are get_run's arguments.
type GetRunArgs struct {
	RunID string `json:"run_id" jsonschema:"the run's id, from run_plan or list_runs"`
}

// ListRunsArgs are list_runs' arguments.
type ListRunsArgs struct {
	Status string `json:"status,omitempty" jsonschema:"only runs in this state: succeeded, failed, in_doubt, cancelled, queued, running, not_admitted"`
	Limit  int    `json:"limit,omitempty" jsonschema:"at most this many runs, newest first (20 when left out, 200 at most)"`
}

// ListRunsOutput is list_runs' result.
type ListRunsOutput struct {
	Runs []RunSummary `json:"runs"`
}

// RunSummary is one run in a list.
type RunSummary struct {
	RunID     string `json:"run_id"`
	Agent     string `json:"agent"`
	Plan      string `json:"plan,omitempty"`
	Status    string `json:"status"`
	Submitted string `json:"submitted"`
}

// VerifyArgs are verify_chain's arguments (none).
type VerifyArgs struct{}

// VerifyOutput is verify_chain's result.
type VerifyOutput struct {
	OK          bool                `json:"ok"`
	File        string              `json:"file,omitempty"`
	Events      uint64              `json:"events"`
	Checkpoints int                 `json:"checkpoints"`
	Root        string              `json:"root,omitempty"`
	BadSeq      *uint64             `json:"bad_seq,omitempty"`
	Diagnostics []engine.Diagnostic `json:"diagnostics"`
}

func (s *Server) addTools() {
	mcp.AddTool(s.srv, &mcp.Tool{Name: "run_plan", Title: "Run a plan",
		Description: "Admit an RTFS plan under the agent config (the server's, or the one given) and run it in a sandbox. " +
			"Returns the plan's value (canonical RTFS), its output and steps; or, when the config or the plan is refused, " +
			"every reason as diagnostics with code, place and hint."},
		s.runPlan)
	mcp.AddTool(s.srv, &mcp.Tool{Name: "check_plan", Title: "Check a plan without running it",
		Description: "Admit an RTFS plan under the agent config without running anything: every step's derived profile " +
			"(capabilities, network domains and methods, files, environment, limits), the risk tier and budget, or every reason it is refused.",
		Annotations: &mcp.ToolAnnotations{ReadOnlyHint: true}},
		s.checkPlan)
	mcp.AddTool(s.srv, &mcp.Tool{Name: "validate_config", Title: "Validate an agent config",
		Description: "Check an agent config's RTFS text: every error and warning with code, place and hint, and the expanded config when valid.",
		Annotations: &mcp.ToolAnnotations{ReadOnlyHint: true}},
		s.validateConfig)
	mcp.AddTool(s.srv, &mcp.Tool{Name: "get_run", Title: "Show a run",
		Description: "A run's status, value, output, steps and diagnostics.", Annotations: &mcp.ToolAnnotations{ReadOnlyHint: true}},
		s.getRun)
	mcp.AddTool(s.srv, &mcp.Tool{Name: "list_runs", Title: "List runs",
		Description: "Runs, newest first.", Annotations: &mcp.ToolAnnotations{ReadOnlyHint: true}},
		s.listRuns)
	mcp.AddTool(s.srv, &mcp.Tool{Name: "verify_chain", Title: "Verify the causal chain",
		Description: "Recompute every hash, the hash chain, the Merkle root and every checkpoint signature of the server's causal chain (the audit log of every run).",
		Annotations: &mcp.ToolAnnotations{ReadOnlyHint: true}},
		s.verifyChain)
}

// result is a tool result whose text is the diagnostics as the CLI prints
// them (for clients that read only text), flagged as an error when the
// tool's purpose failed.
func result(failed bool, summary string, diags []engine.Diagnostic) *mcp.CallToolResult {
	var b strings.Builder
	b.WriteString(summary)
	for _, d := range diags {
		b.WriteString("\n")
		b.WriteString(d.String())
	}
	return &mcp.CallToolResult{IsError: failed, Content: []mcp.Content{&mcp.TextContent{Text: b.String()}}}
}

func (s *Server) checkPlan(ctx context.Context, _ *mcp.CallToolRequest, in PlanArgs) (*mcp.CallToolResult, CheckOutput, error) {
	out := CheckOutput{Diagnostics: []engine.Diagnostic{}}
	a, done, diags := s.agentFor(in.Config, false)
	if diags != nil {
		out.Diagnostics = diags
		return result(true, "the agent config is refused:", diags), out, nil
	}
	defer done()
	out.Agent = a.ID()
	ad, err := a.Admit(planInput(in))
	if err != nil {
		out.Diagnostics = engine.DiagnosticsOf(err)
		return result(true, fmt.Sprintf("the plan is not admitted under agent %s:", a.ID()), out.Diagnostics), out, nil
	}
	out.Admitted, out.PlanHash, out.Admission = true, ad.Admission.PlanHash, ad.Admission
	return result(false, admissionSummary(ad.Admission), nil), out, nil
}

func admissionSummary(adm *governance.Admission) string {
	var b strings.Builder
	fmt.Fprintf(&b, "admitted: plan %s, risk tier :%s, budget $%.4g / %d tokens / %d ms", adm.PlanHash, adm.Tier, adm.Budget.CostUSD, adm.Budget.Tokens, adm.Budget.TimeMS)
	for _, p := range adm.Profiles {
		fmt.Fprintf(&b, "\nstep %q: capabilities %v", p.Step, p.Capabilities)
		if len(p.Network.Domains) > 0 {
			fmt.Fprintf(&b, ", network %v %v", p.Network.Domains, p.Network.Methods)
		}
		if len(p.Env) > 0 {
			fmt.Fprintf(&b, ", env %v", p.Env)
		}
		if p.Dynamic {
			b.WriteString(", calls chosen at run time within its declared effects")
		}
	}
	return b.String()
}

func planInput(in PlanArgs) engine.PlanInput {
	file := in.File
	if file == "" {
		file = "plan.rtfs"
	}
	return engine.PlanInput{Source: []byte(in.Plan), File: file, Approvals: in.Approvals}
}

func (s *Server) validateConfig(_ context.Context, _ *mcp.CallToolRequest, in ConfigArgs) (*mcp.CallToolResult, ConfigOutput, error) {
	file := in.File
	if file == "" {
		file = "agent.config.rtfs"
	}
	var out ConfigOutput
	if len(in.Config) > engine.MaxConfigBytes {
		out.Diagnostics = []engine.Diagnostic{{Code: "CONFIG_TOO_LARGE", Severity: "error", Message: fmt.Sprintf("the config is larger than %d bytes", engine.MaxConfigBytes)}}
		return result(true, "the config is not valid:", out.Diagnostics), out, nil
	}
	res := config.Load([]byte(in.Config), file, config.RTFSEvaluator{})
	out.Diagnostics = engine.ConfigDiagnostics(res.Diags)
	out.Errors, out.Warnings = res.Diags.Count(config.SeverityError), res.Diags.Count(config.SeverityWarning)
	out.Valid = !res.Diags.HasErrors() && res.Config != nil
	if out.Valid {
		out.Expanded = config.Canonical(res.Expanded)
		return result(false, fmt.Sprintf("valid (%d warning(s))", out.Warnings), out.Diagnostics), out, nil
	}
	return result(true, "the config is not valid:", out.Diagnostics), out, nil
}
