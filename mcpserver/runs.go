package mcpserver

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"sync"
	"time"

	"github.com/ccos-project/ccos/config"
	"github.com/ccos-project/ccos/engine"
	"github.com/ccos-project/ccos/supervisor"
	"github.com/ccos-project/ccos/supervisor/client"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// Status of a call the engine refused before anything ran.
const (
	StatusNotAdmitted   = "not_admitted"
	StatusInvalidConfig = "invalid_config"
)

// agentFor returns the agent a call runs or checks under: the server's,
// or one loaded from the client's config text in an engine of its own
// (done closes it). Refusals are diagnostics.
func (s *Server) agentFor(cfgText string, forRun bool) (*engine.Agent, func(), []engine.Diagnostic) {
	if cfgText == "" {
		return s.o.Agent, func() {}, nil
	}
	switch {
	case s.o.ClientEngine == nil:
		return nil, nil, []engine.Diagnostic{{Code: CodeClientConfig, Severity: "error",
			Message: "this server runs plans only under its own agent config", Hint: "leave out config"}}
	case forRun && !s.o.AllowClientConfig:
		return nil, nil, []engine.Diagnostic{{Code: CodeClientConfig, Severity: "error",
			Message: "this server runs plans only under its own agent config; check_plan and validate_config accept one, run_plan does not",
			Hint:    "leave out config, or ask the operator to start ccos mcp with --allow-client-config"}}
	case s.o.Supervisor != nil && forRun:
		return nil, nil, []engine.Diagnostic{{Code: CodeClientConfig, Severity: "error",
			Message: "runs go to a supervisor, which runs plans under the configs of its own agents", Hint: "leave out config; name the agent instead"}}
	case len(cfgText) > engine.MaxConfigBytes:
		return nil, nil, []engine.Diagnostic{{Code: "CONFIG_TOO_LARGE", Severity: "error", Message: fmt.Sprintf("the config is larger than %d bytes", engine.MaxConfigBytes)}}
	}
	eng, err := s.o.ClientEngine()
	if err != nil {
		return nil, nil, engine.DiagnosticsOf(err)
	}
	o := s.o.ClientAgent
	rec, err := s.o.Agent.Recorder()
	if err != nil {
		eng.Close()
		return nil, nil, engine.DiagnosticsOf(err)
	}
	o.Recorder = rec
	server := s.o.Agent.Config().Config
	o.Rules = func(c *config.Config) config.Diagnostics { return OperatorOnly(c, server) }
	a, err := eng.LoadAgent([]byte(cfgText), clientConfigFile, o)
	if err != nil {
		eng.Close()
		return nil, nil, engine.DiagnosticsOf(err)
	}
	return a, func() { eng.Close() }, nil
}

// clientConfigFile names a config a client sends in diagnostics.
const clientConfigFile = "config.rtfs"

func (s *Server) runPlan(ctx context.Context, req *mcp.CallToolRequest, in PlanArgs) (*mcp.CallToolResult, RunOutput, error) {
	if s.o.Supervisor != nil && in.Config == "" {
		return s.submit(ctx, in)
	}
	out := RunOutput{Diagnostics: []engine.Diagnostic{}}
	a, done, diags := s.agentFor(in.Config, true)
	if diags != nil {
		out.Status, out.Diagnostics = StatusInvalidConfig, diags
		return result(true, "the agent config is refused:", diags), out, nil
	}
	defer done()
	ctx, cancel := context.WithTimeout(ctx, s.o.RunTimeout)
	defer cancel()
	id := engine.NewRunID()
	submitted := time.Now().UTC()
	res, err := a.Run(ctx, engine.RunRequest{ID: id, PlanInput: planInput(in)})
	out = runOutput(a.ID(), id, res, err)
	s.runs.put(record{out: out, submitted: submitted})
	return result(!out.OK, summary(out), out.Diagnostics), out, nil
}

// runOutput is the result of an engine run.
func runOutput(agent, id string, res *engine.RunResult, err error) RunOutput {
	out := RunOutput{RunID: id, Agent: agent, Diagnostics: []engine.Diagnostic{}}
	var ae *engine.AdmissionError
	if errors.As(err, &ae) {
		out.Status, out.Diagnostics = StatusNotAdmitted, engine.DiagnosticsOf(err)
		return out
	}
	if res != nil {
		out.Plan, out.PlanHash, out.Provider, out.Value = res.Plan, res.PlanHash, res.Provider, res.Value
		out.Output, out.OutputTruncated, out.InDoubt = res.Output, res.OutputTruncated, res.InDoubt
		for _, st := range res.Steps {
			out.Steps = append(out.Steps, Step{Name: st.Name, OK: st.OK, Error: st.Error})
		}
		if res.Error != nil {
			out.Diagnostics = append(out.Diagnostics, engine.PlanErrorDiagnostic(res.Error))
		}
	}
	switch {
	case err != nil:
		out.Status, out.Failure = string(supervisor.StatusFailed), err.Error()
		out.Diagnostics = append(out.Diagnostics, engine.DiagnosticsOf(err)...)
	case len(out.InDoubt) > 0:
		out.Status = string(supervisor.StatusInDoubt)
	case res != nil && res.OK():
		out.Status, out.OK = string(supervisor.StatusSucceeded), true
	default:
		out.Status = string(supervisor.StatusFailed)
	}
	return out
}

func summary(out RunOutput) string {
	switch {
	case out.OK && out.Value != nil:
		s := fmt.Sprintf("run %s succeeded; value: %s", out.RunID, *out.Value)
		if out.Output != "" {
			s += "\noutput:\n" + out.Output
		}
		return s
	case out.Status == StatusNotAdmitted:
		return "the plan is not admitted:"
	case out.Status == string(supervisor.StatusQueued) || out.Status == string(supervisor.StatusRunning):
		return fmt.Sprintf("run %s is %s", out.RunID, out.Status)
	}
	s := fmt.Sprintf("run %s %s", out.RunID, out.Status)
	if out.Failure != "" {
		s += ": " + out.Failure
	}
	if out.Output != "" {
		s += "\noutput:\n" + out.Output
	}
	return s
}

// submit runs a plan through the supervisor: submitted (admitted there),
// then waited for.
func (s *Server) submit(ctx context.Context, in PlanArgs) (*mcp.CallToolResult, RunOutput, error) {
	agent := in.Agent
	if agent == "" {
		agent = s.o.SupervisorAgent
	}
	out := RunOutput{Agent: agent, Diagnostics: []engine.Diagnostic{}}
	pi := planInput(in)
	run, err := s.o.Supervisor.Submit(ctx, agent, supervisor.Submission{Plan: in.Plan, File: pi.File, Approvals: in.Approvals})
	if err != nil {
		out.Status, out.Diagnostics = supervisorError(err)
		return result(true, "the supervisor refused the plan:", out.Diagnostics), out, nil
	}
	ctx, cancel := context.WithTimeout(ctx, s.o.RunTimeout)
	defer cancel()
	if done, err := s.o.Supervisor.Wait(ctx, run.ID); err == nil {
		run = done
	}
	out = supervisorRun(run)
	return result(!out.OK, summary(out), out.Diagnostics), out, nil
}

// supervisorError turns a supervisor's refusal into diagnostics.
func supervisorError(err error) (string, []engine.Diagnostic) {
	var ae *client.APIError
	if !errors.As(err, &ae) {
		return string(supervisor.StatusFailed), []engine.Diagnostic{{Code: engine.CodeRun, Severity: "error", Message: err.Error()}}
	}
	if len(ae.Reasons) == 0 {
		return string(supervisor.StatusFailed), []engine.Diagnostic{{Code: ae.Kind, Severity: "error", Message: ae.ErrorBody.Error}}
	}
	var out []engine.Diagnostic
	for _, r := range ae.Reasons {
		d := engine.Diagnostic{Code: r.Rule, Severity: "error", Message: r.Message, Hint: r.Hint, Step: r.Step, Value: r.Value}
		if w, ok := engine.ParsePlace(r.Where); ok {
			d.File, d.Line, d.Col = w.File, w.Line, w.Col
		}
		out = append(out, d)
	}
	return StatusNotAdmitted, out
}

func supervisorRun(run *supervisor.Run) RunOutput {
	out := RunOutput{RunID: run.ID, Agent: run.Agent, Status: string(run.Status), Plan: run.Plan, PlanHash: run.PlanHash, Provider: run.Provider,
		Value: run.Value, Output: run.Output, OutputTruncated: run.OutputTruncated, Failure: run.Failure, InDoubt: run.InDoubt,
		Diagnostics: []engine.Diagnostic{}}
	out.OK = run.Status == supervisor.StatusSucceeded
	for _, st := range run.Steps {
		out.Steps = append(out.Steps, Step{Name: st.Name, OK: st.OK, Error: st.Error})
	}
	if run.Error != nil {
		out.Diagnostics = append(out.Diagnostics, engine.PlanErrorDiagnostic(run.Error))
	}
	if run.Failure != "" {
		out.Diagnostics = append(out.Diagnostics, engine.Diagnostic{Code: engine.CodeRun, Severity: "error", Message: run.Failure})
	}
	return out
}

func (s *Server) getRun(ctx context.Context, _ *mcp.CallToolRequest, in GetRunArgs) (*mcp.CallToolResult, RunOutput, error) {
	if s.o.Supervisor != nil {
		run, err := s.o.Supervisor.Get(ctx, in.RunID)
		if err != nil {
			out := RunOutput{RunID: in.RunID}
			out.Status, out.Diagnostics = supervisorError(err)
			return result(true, "no such run:", out.Diagnostics), out, nil
		}
		out := supervisorRun(run)
		return result(false, summary(out), out.Diagnostics), out, nil
	}
	r, ok := s.runs.get(in.RunID)
	if !ok {
		out := RunOutput{RunID: in.RunID, Status: "unknown", Diagnostics: []engine.Diagnostic{{Code: "UNKNOWN_RUN", Severity: "error",
			Message: fmt.Sprintf("this server ran no run %s (it keeps the last %d)", in.RunID, s.runs.max), Hint: "list_runs shows the runs it knows"}}}
		return result(true, "no such run:", out.Diagnostics), out, nil
	}
	return result(false, summary(r.out), r.out.Diagnostics), r.out, nil
}

func (s *Server) listRuns(ctx context.Context, _ *mcp.CallToolRequest, in ListRunsArgs) (*mcp.CallToolResult, ListRunsOutput, error) {
	limit := in.Limit
	if limit <= 0 {
		limit = 20
	}
	limit = min(limit, 200)
	out := ListRunsOutput{Runs: []RunSummary{}}
	if s.o.Supervisor != nil {
		f := supervisor.Filter{Limit: limit}
		if in.Status != "" {
			st, err := supervisor.ParseStatus(in.Status)
			if err != nil {
				return nil, out, err
			}
			f.Status = st
		}
		list, err := s.o.Supervisor.List(ctx, f)
		if err != nil {
			return nil, out, err
		}
		for _, r := range list.Runs {
			out.Runs = append(out.Runs, RunSummary{RunID: r.ID, Agent: r.Agent, Plan: r.Plan, Status: string(r.Status), Submitted: r.Submitted.Format(time.RFC3339)})
		}
	} else {
		for _, r := range s.runs.list(in.Status, limit) {
			out.Runs = append(out.Runs, RunSummary{RunID: r.out.RunID, Agent: r.out.Agent, Plan: r.out.Plan, Status: r.out.Status, Submitted: r.submitted.Format(time.RFC3339)})
		}
	}
	text := fmt.Sprintf("%d run(s)", len(out.Runs))
	for _, r := range out.Runs {
		text += fmt.Sprintf("\n%s %s %s %s", r.RunID, r.Status, r.Agent, r.Plan)
	}
	return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: text}}}, out, nil
}

// record is a run this server ran in its engine.
type record struct {
	out       RunOutput
	submitted time.Time
}

// runStore keeps the last max runs in memory.
type runStore struct {
	mu    sync.Mutex
	max   int
	byID  map[string]record
	order []string
}

func newRunStore(max int) *runStore { return &runStore{max: max, byID: map[string]record{}} }

func (rs *runStore) put(r record) {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	rs.byID[r.out.RunID] = r
	rs.order = append(rs.order, r.out.RunID)
	if len(rs.order) > rs.max {
		delete(rs.byID, rs.order[0])
		rs.order = rs.order[1:]
	}
}

func (rs *runStore) get(id string) (record, bool) {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	r, ok := rs.byID[id]
	return r, ok
}

// list returns runs newest first.
func (rs *runStore) list(status string, limit int) []record {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	var out []record
	for i := len(rs.order) - 1; i >= 0 && len(out) < limit; i-- {
		r := rs.byID[rs.order[i]]
		if status == "" || r.out.Status == status {
			out = append(out, r)
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].submitted.After(out[j].submitted) })
	return out
}
