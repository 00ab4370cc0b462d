package firecracker

import (
	"context"

	"github.com/ccos-project/ccos/sandbox/firecracker/fcapi"
)

// APIStep is one request of the configuration sequence sent to a
// Firecracker API socket.
type APIStep struct {
	// Name says what the step does, e.g. "put-drive rootfs".
	Name string
	Run  func(ctx context.Context, c *fcapi.Client) error
}

// APISteps is the ordered request sequence that configures and starts the
// VM described by vm: logger and metrics first (so later failures are
// logged), then machine, boot source, drives, network interfaces, vsock,
// entropy, and finally the InstanceStart action. It never sends a balloon.
func APISteps(vm fcapi.VMConfig) []APIStep {
	var steps []APIStep
	add := func(name string, run func(ctx context.Context, c *fcapi.Client) error) {
		steps = append(steps, APIStep{Name: name, Run: run})
	}
	if l := vm.Logger; l != nil {
		add("put-logger", func(ctx context.Context, c *fcapi.Client) error { return c.PutLogger(ctx, *l) })
	}
	if m := vm.Metrics; m != nil {
		add("put-metrics", func(ctx context.Context, c *fcapi.Client) error { return c.PutMetrics(ctx, *m) })
	}
	add("put-machine-config", func(ctx context.Context, c *fcapi.Client) error { return c.PutMachineConfig(ctx, vm.MachineConfig) })
	add("put-boot-source", func(ctx context.Context, c *fcapi.Client) error { return c.PutBootSource(ctx, vm.BootSource) })
	for _, d := range vm.Drives {
		add("put-drive "+d.DriveID, func(ctx context.Context, c *fcapi.Client) error { return c.PutDrive(ctx, d) })
	}
	for _, n := range vm.NetworkInterfaces {
		add("put-network-interface "+n.IfaceID, func(ctx context.Context, c *fcapi.Client) error { return c.PutNetworkInterface(ctx, n) })
	}
	if v := vm.Vsock; v != nil {
		add("put-vsock", func(ctx context.Context, c *fcapi.Client) error { return c.PutVsock(ctx, *v) })
	}
	if e := vm.Entropy; e != nil {
		add("put-entropy", func(ctx context.Context, c *fcapi.Client) error { return c.PutEntropy(ctx, *e) })
	}
	add("instance-start", func(ctx context.Context, c *fcapi.Client) error { return c.Action(ctx, fcapi.ActionInstanceStart) })
	return steps
}

// Configure runs the steps in order and stops at the first failure, which
// it returns wrapped with the step's name.
func Configure(ctx context.Context, c *fcapi.Client, steps []APIStep) error {
	for _, s := range steps {
		if err := s.Run(ctx, c); err != nil {
			return &StepError{Step: s.Name, Err: err}
		}
	}
	return nil
}

// StepError names the start-up or API step that failed.
type StepError struct {
	Step string
	Err  error
}

func (e *StepError) Error() string { return "firecracker: " + e.Step + ": " + e.Err.Error() }

// Unwrap returns the step's error.
func (e *StepError) Unwrap() error { return e.Err }
