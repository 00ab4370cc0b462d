// Package firecracker is the Firecracker microVM sandbox provider: it runs
// the guest in a Firecracker VM started through the jailer, configures it
// over the API socket, and reaches the guest agent over vsock with the
// host-initiated "CONNECT <port>\n" / "OK <port>\n" handshake.
//
// Start-up is a named, ordered list of steps (StartSteps), and the API
// configuration another (APISteps), so that tests and readers see the
// sequence as a list. On a host without /dev/kvm, the firecracker binary or
// the jailer, Available says which is missing and Start fails with that
// reason; nothing falls back to weaker isolation.
//
// What arrives in the VM is described by Options.VM, a --config-file
// document (package vmspec synthesises one from an agent config);
// the provider links its files into the jail and rewrites its paths to the
// jail's view.
package firecracker

import (
	"errors"
	"fmt"
	"os/exec"
	"strings"

	"github.com/ccos-project/ccos/sandbox/firecracker/fcapi"
)

// KVMDevice is the device Firecracker needs.
const KVMDevice = "/dev/kvm"

// ControlPort is the guest vsock port of the control channel; it matches
// vmspec.ControlPort.
const ControlPort = 1024

// Options configure the provider.
type Options struct {
	// Firecracker and Jailer are the binaries, looked up on PATH when
	// they have no slash; "firecracker" and "jailer" when empty.
	Firecracker, Jailer string
	// VM is the machine to boot: kernel, initrd, drives, resources, NIC,
	// vsock CID, with host paths. Nil means no VM is configured, and the
	// provider is not available.
	VM *fcapi.VMConfig
	// NetNS is the network namespace handle the VM joins (the egress
	// proxy's, e.g. /var/run/netns/egress-proxy-ns) when VM has a NIC.
	NetNS string
	// UID and GID are what Firecracker runs as; 65534 when zero.
	UID, GID int
	// ChrootBase is the jailer's chroot base; DefaultChrootBase when empty.
	ChrootBase string
	// CgroupVersion is 1 or 2 (2 when zero).
	CgroupVersion int
	// CheckKVM replaces the host's KVM check (tests that run the start-up
	// steps against a fake Firecracker on hosts without usable KVM).
	CheckKVM func() error
	// VMError is why the config gave no VM (the synthesis failed); the
	// provider is then unavailable and says why.
	VMError error
}

// Provider starts Firecracker microVMs.
type Provider struct {
	opts Options
}

// New returns a provider with the given options.
func New(opts Options) *Provider {
	if opts.Firecracker == "" {
		opts.Firecracker = "firecracker"
	}
	if opts.Jailer == "" {
		opts.Jailer = "jailer"
	}
	if opts.UID == 0 {
		opts.UID = 65534
	}
	if opts.GID == 0 {
		opts.GID = 65534
	}
	if opts.CgroupVersion == 0 {
		opts.CgroupVersion = 2
	}
	return &Provider{opts: opts}
}

// Name returns "firecracker".
func (*Provider) Name() string { return "firecracker" }

// Available reports whether KVM, the firecracker binary, the jailer and a
// VM description are all present, and if not, every one that is missing.
func (p *Provider) Available() (bool, string) {
	missing := p.missing()
	if len(missing) > 0 {
		return false, strings.Join(missing, "; ")
	}
	return true, "KVM, firecracker and jailer present"
}

// ErrNoVM is reported when Options.VM is nil.
var ErrNoVM = errors.New("no VM configured (the host must pass the :microvm synthesis of vmspec in firecracker.Options.VM)")

func (p *Provider) missing() []string {
	var out []string
	check := p.opts.CheckKVM
	if check == nil {
		check = checkKVM
	}
	if err := check(); err != nil {
		out = append(out, err.Error())
	}
	if _, err := exec.LookPath(p.opts.Firecracker); err != nil {
		out = append(out, fmt.Sprintf("no firecracker binary (%q not found on PATH)", p.opts.Firecracker))
	}
	if _, err := exec.LookPath(p.opts.Jailer); err != nil {
		out = append(out, fmt.Sprintf("no jailer binary (%q not found on PATH)", p.opts.Jailer))
	}
	switch {
	case p.opts.VMError != nil:
		out = append(out, "the config's :microvm gives no Firecracker VM: "+p.opts.VMError.Error())
	case p.opts.VM == nil:
		out = append(out, ErrNoVM.Error())
	}
	return out
}
