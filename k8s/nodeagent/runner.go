package nodeagent

import (
	"context"

	"github.com/ccos-project/ccos/config"
	"github.com/ccos-project/ccos/engine"
	"github.com/ccos-project/ccos/k8s/api/v1alpha1"
	"github.com/ccos-project/ccos/orchestrator"
)

// Runner runs plans on this node: what a node agent needs of the run
// engine. Run is called concurrently, up to the agent's capacity.
type Runner interface {
	// Offers says what this node can run.
	Offers() Offers
	// Run runs one job to its end. It returns an Outcome when the plan ran
	// (successfully or with a plan error) and an error when it could not
	// run: an *engine.ConfigError for an invalid config, an
	// *engine.AdmissionError for a plan not admitted, any other error for
	// a failed sandbox.
	Run(ctx context.Context, job Job) (*Outcome, error)
}

// Offers is what a node can run.
type Offers struct {
	// Isolation maps each isolation mode this node can give to the provider
	// that gives it here. A mode missing from the map is never claimed.
	Isolation map[v1alpha1.Isolation]string
	// Providers are the available providers, best first.
	Providers []string
}

// Job is one attempt at an AgentRun.
type Job struct {
	// ID names the attempt, NAMESPACE_NAME_ATTEMPT (no Kubernetes name
	// holds "_"): the sandbox, the causal chain's session and file.
	ID string
	// Config is the AgentConfig's text; ConfigFile names it in diagnostics
	// (agentconfig/NAMESPACE/NAME); ConfigKey identifies this version of
	// it (UID/resourceVersion).
	Config     []byte
	ConfigFile string
	ConfigKey  string
	// Isolation is the mode the run gets: the config's, or the AgentRun's
	// when that is stronger.
	Isolation v1alpha1.Isolation
	// Plan is the plan text; PlanFile names it (agentrun/NAMESPACE/NAME).
	Plan      []byte
	PlanFile  string
	Approvals []string
	// Calls is the run's call journal, kept in the AgentRun: the record of
	// side-effecting calls must be built on it
	// (orchestrator.NewCallRecordWith).
	Calls orchestrator.CallJournal
}

// Outcome is how a plan ended.
type Outcome struct {
	// Value is the plan's value (canonical RTFS) when it succeeded; Error
	// the plan's error when it failed.
	Value, Error    string
	Output          string
	OutputTruncated bool
	Steps           []v1alpha1.StepSummary
	Provider        string
	PlanHash        string
	// Checkpoint is the signed note of the run's causal chain at its end.
	Checkpoint []byte
	// InDoubt are the keys of side-effecting calls an earlier attempt
	// started and never finished: they were not run again.
	InDoubt []string
}

// effectiveIsolation is the mode a run gets: the AgentRun's when it is at
// least as strong as the config's (the engine's order), else the
// config's.
func effectiveIsolation(asked, configured v1alpha1.Isolation) v1alpha1.Isolation {
	if asked != "" && engine.ModeStrength(config.IsolationMode(asked)) >= engine.ModeStrength(config.IsolationMode(configured)) {
		return asked
	}
	return configured
}

// LoadConfig loads an AgentConfig's text as `ccos config validate` does
// and returns the config (nil when invalid) and every diagnostic (errors
// and warnings).
func LoadConfig(text []byte, file string) (*config.Config, config.Diagnostics) {
	res := config.Load(text, file, config.RTFSEvaluator{})
	if res.Diags.HasErrors() {
		return nil, res.Diags
	}
	return res.Config, res.Diags
}

// DiagnosticLines formats diagnostics one per line, as
// `file:line:col: CODE: message (hint: ...)`, errors first.
func DiagnosticLines(diags config.Diagnostics) []string {
	var errs, warns []string
	for _, d := range diags {
		if d.Severity == config.SeverityError {
			errs = append(errs, d.String())
		} else {
			warns = append(warns, d.String())
		}
	}
	return append(errs, warns...)
}

// ConfigFile is the name an AgentConfig's text has in diagnostics.
func ConfigFile(namespace, name string) string { return "agentconfig/" + namespace + "/" + name }

// PlanFile is the name an AgentRun's plan has in diagnostics.
func PlanFile(namespace, name string) string { return "agentrun/" + namespace + "/" + name }
