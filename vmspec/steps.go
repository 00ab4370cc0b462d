package vmspec

import (
	"fmt"

	"github.com/ccos-project/ccos/config"
)

// Input is what every synthesis step reads.
type Input struct {
	Config *config.Config
	Host   Host
	// Name is VMName of the agent and instance.
	Name string
	// Paths are the VM's runtime paths under Host.RuntimeDir.
	Paths VMPaths
}

// Step is one named step of a synthesiser: it adds its part to the document
// D or fails with an error naming what to fix.
type Step[D any] struct {
	Name string
	Run  func(in *Input, doc *D) error
}

// StepNames lists the names of steps, in order.
func StepNames[D any](steps []Step[D]) []string {
	out := make([]string, len(steps))
	for i, s := range steps {
		out[i] = s.Name
	}
	return out
}

// Build runs steps in order over a zero document.
func Build[D any](cfg *config.Config, h Host, steps []Step[D]) (*D, error) {
	if cfg == nil {
		return nil, fmt.Errorf("spec: no config")
	}
	in := &Input{Config: cfg, Host: h, Name: VMName(cfg.AgentID, h.Instance), Paths: h.Paths(cfg)}
	doc := new(D)
	for _, s := range steps {
		if err := s.Run(in, doc); err != nil {
			return nil, fmt.Errorf("spec: %s: %w", s.Name, err)
		}
	}
	return doc, nil
}

// requireMicroVM is the first step of the VM synthesisers.
func requireMicroVM[D any]() Step[D] {
	return Step[D]{Name: "require-microvm", Run: func(in *Input, _ *D) error {
		if in.Config.MicroVM == nil {
			return fmt.Errorf("%w: a VM target needs :microvm {:kernel ... :rootfs ... :resources ...} (and :orchestrator :isolation :mode :microvm)", ErrNoMicroVM)
		}
		if !in.Config.MicroVM.Rootfs.RO {
			return fmt.Errorf("%w: :microvm :rootfs :ro is false; ccos boots only read-only root file systems (writable state lives in the guest's tmpfs): set :ro true", ErrWritableRootfs)
		}
		return nil
	}}
}
