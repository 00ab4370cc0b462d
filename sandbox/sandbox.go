// Package sandbox defines the isolation providers that run the ccos guest:
// the Provider interface, the registry, and the limits a sandbox enforces.
//
// A provider starts a Sandbox whose only channel to the host is the control
// connection returned by Control; everything else (network, host files,
// other processes) is closed to it by the provider's isolation. The host
// never trusts what arrives on that connection (see package control).
package sandbox

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"
)

// Limits bounds what one sandbox may use. Zero fields take the defaults of
// DefaultLimits.
type Limits struct {
	// MemoryBytes caps the guest's memory (cgroup, wasm pages, VM size).
	MemoryBytes int64
	// PIDs caps the number of processes and threads in the sandbox.
	PIDs int
	// CPUPercent caps CPU time, in percent of one core.
	CPUPercent int
	// WorkdirBytes sizes the writable scratch directory (a tmpfs).
	WorkdirBytes int64
	// Deadline is the hard wall-clock limit from start to exit; past it the
	// whole sandbox is killed.
	Deadline time.Duration
	// LogBytes caps how much of the guest's diagnostic output the host
	// keeps.
	LogBytes int64
}

// DefaultLimits returns the limits used where a config says nothing.
func DefaultLimits() Limits {
	return Limits{
		MemoryBytes:  256 << 20,
		PIDs:         64,
		CPUPercent:   100,
		WorkdirBytes: 64 << 20,
		Deadline:     30 * time.Second,
		LogBytes:     1 << 20,
	}
}

// WithDefaults returns l with zero fields replaced by the defaults.
func (l Limits) WithDefaults() Limits {
	d := DefaultLimits()
	if l.MemoryBytes <= 0 {
		l.MemoryBytes = d.MemoryBytes
	}
	if l.PIDs <= 0 {
		l.PIDs = d.PIDs
	}
	if l.CPUPercent <= 0 {
		l.CPUPercent = d.CPUPercent
	}
	if l.WorkdirBytes <= 0 {
		l.WorkdirBytes = d.WorkdirBytes
	}
	if l.Deadline <= 0 {
		l.Deadline = d.Deadline
	}
	if l.LogBytes <= 0 {
		l.LogBytes = d.LogBytes
	}
	return l
}

// Spec describes one sandbox to start.
type Spec struct {
	// ID names the sandbox (cgroups, logs); unique per run.
	ID string
	// Limits bounds the sandbox; zero fields take defaults.
	Limits Limits
	// CapabilitiesDir is a host directory made visible read-only to the
	// guest at /capabilities; empty for none.
	CapabilitiesDir string
}

// Sandbox is one running guest.
type Sandbox interface {
	// Control returns the host end of the control channel.
	Control() io.ReadWriteCloser
	// Wait waits until the guest has exited and the sandbox is cleaned up.
	// It returns nil for a clean exit with status 0, otherwise an *ExitError.
	Wait() error
	// Kill ends the guest and everything it started, then cleans up; it is
	// safe to call more than once and from any goroutine.
	Kill() error
	// Log returns the guest's diagnostic output (standard error), at most
	// Limits.LogBytes of it.
	Log() []byte
}

// Holdable is a sandbox that can wait, started, until a run takes it (in a
// Pool): Rearm restarts its deadline at the hand-out, and Done is closed
// when it has ended, so that a pool notices a sandbox that died while
// waiting. Every provider's sandboxes implement it.
type Holdable interface {
	Sandbox
	// Rearm makes the sandbox end deadline from now; false when it has
	// ended or is ending.
	Rearm(deadline time.Duration) bool
	// Done is closed once the sandbox has ended.
	Done() <-chan struct{}
}

// Provider starts sandboxes of one kind of isolation.
type Provider interface {
	// Name is the provider's name as used by --provider and ccos doctor.
	Name() string
	// Available reports whether the provider can run on this host, and if
	// not, why (the missing binary, device or kernel feature).
	Available() (ok bool, reason string)
	// Start starts a guest in a new sandbox.
	Start(ctx context.Context, spec Spec) (Sandbox, error)
}

// ExitReason classifies how a guest ended.
type ExitReason string

// The ways a guest can end other than a clean exit.
const (
	ExitStatus   ExitReason = "exit-status"    // exited with a non-zero status
	ExitSignal   ExitReason = "signal"         // killed by a signal it did not ask for
	ExitDeadline ExitReason = "deadline"       // killed at Limits.Deadline
	ExitMemory   ExitReason = "memory-limit"   // killed for exceeding Limits.MemoryBytes
	ExitKilled   ExitReason = "killed-by-host" // Kill was called
	ExitSetup    ExitReason = "setup-failed"   // the sandbox could not be set up
)

// ExitError says how and why a guest ended badly.
type ExitError struct {
	Reason ExitReason
	// Status is the exit status or signal number, where there is one.
	Status int
	// Detail is a human explanation, e.g. the setup step that failed.
	Detail string
}

func (e *ExitError) Error() string {
	msg := "sandbox: guest ended: " + string(e.Reason)
	if e.Status != 0 {
		msg += fmt.Sprintf(" (%d)", e.Status)
	}
	if e.Detail != "" {
		msg += ": " + e.Detail
	}
	return msg
}

// ErrUnavailable is returned (wrapped, with the reason) when a provider
// cannot run on this host.
var ErrUnavailable = errors.New("sandbox provider unavailable")

// ErrUnknownProvider is returned for a provider name nothing provides.
var ErrUnknownProvider = errors.New("unknown sandbox provider")

// Attested is implemented by sandboxes whose provider measured what the
// guest boots from (kernel, initramfs, rootfs, and a snapshot template's
// memory and device state) before starting it. The values are digests by
// artifact name ("sha256:<hex>" of a file, or another algorithm named
// before the colon, such as the qemu provider's "sha256-pages:" of a
// template's memory); the orchestrator
// records them in the causal chain and compares the guest's own claims
// with them.
type Attested interface {
	Measurements() map[string]string
}

// AttestationError is returned by Start when an artifact's measurement
// differs from the one the config expects: the guest is not booted.
type AttestationError struct {
	Artifact, Expected, Actual string
	// Measurements are all the host measured, for the record.
	Measurements map[string]string
	// Source is where Expected comes from, "the config" when empty;
	// Remedy says what to do, the config's advice when empty.
	Source, Remedy string
}

func (e *AttestationError) Error() string {
	source, remedy := e.Source, e.Remedy
	if source == "" {
		source = "the config"
	}
	if remedy == "" {
		remedy = "rebuild the image, or update :microvm :attestation :expect_rootfs_hash after checking the new image"
	}
	return fmt.Sprintf("attestation failed: %s measures %s but %s expects %s; refusing to boot (%s)",
		e.Artifact, e.Actual, source, e.Expected, remedy)
}

// HostProcesses is implemented by sandboxes that can name the host
// processes they consist of (a VMM, a sandbox kernel), for resource
// accounting.
type HostProcesses interface {
	HostPIDs() []int
}
