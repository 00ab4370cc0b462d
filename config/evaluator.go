package config

import (
	"context"
	"time"

	"github.com/ccos-project/ccos/rtfs"
)

// RTFSEvaluator evaluates configs written as expressions (profile calls,
// threading forms) with the RTFS interpreter: a fresh interpreter per
// config, the profile prelude first, no host (a config cannot take steps or
// call capabilities), and tight limits, since a config may come from an
// agent.
type RTFSEvaluator struct {
	// Limits bound the evaluation; zero fields take ConfigLimits.
	Limits rtfs.Limits
}

// ConfigLimits are the limits for evaluating a config: far more than any
// profile needs, far less than would let a hostile config stall the host.
func ConfigLimits() rtfs.Limits {
	return rtfs.Limits{Timeout: 2 * time.Second, MaxSteps: 1_000_000, MaxDepth: 200,
		MaxCollection: 100_000, MaxOutput: 64 << 10}
}

// EvalConfig implements Evaluator.
func (e RTFSEvaluator) EvalConfig(prelude []rtfs.Value, form rtfs.Value) (rtfs.Value, error) {
	lim := e.Limits.Or(ConfigLimits())
	in := rtfs.New(rtfs.Options{Limits: lim})
	forms := append(append(make([]rtfs.Value, 0, len(prelude)+1), prelude...), form)
	return in.EvalForms(context.Background(), forms)
}
