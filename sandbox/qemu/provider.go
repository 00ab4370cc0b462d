// Package qemu is the sandbox provider that runs the ccos guest in a QEMU
// `-M microvm` virtual machine: a real Linux kernel, an initramfs whose
// /init is the static guest (cmd/ccos-init), and a read-only squashfs
// rootfs on virtio-blk holding the agent config and the capability store.
//
// The host side of one sandbox:
//
//  1. resolves the guest image (Options.Image; ccos builds and caches it
//     with package image) and opens its three files;
//  2. measures them with sha256 through the open descriptors (attestation)
//     and, when the config's :microvm :attestation is enabled, refuses to
//     boot if the rootfs differs from :expect_rootfs_hash, naming both;
//  3. listens on a Unix socket for the control channel and synthesises the
//     QEMU command line from the config (vmspec): KVM when it is
//     usable here, else TCG; QEMU's own seccomp sandbox on; the console to
//     a log file; the image files passed as inherited descriptors, so the
//     VM boots exactly the bytes that were measured;
//  4. starts QEMU as an unprivileged user (nobody) in its own process
//     group, killed with the host process;
//  5. accepts QEMU's connection to the control socket: the guest's "ctl"
//     virtio-serial port. That connection is the sandbox's only channel.
//
// Kill asks QEMU to quit over QMP and kills its process group if it does
// not; the VM's runtime directory is removed at the end.
package qemu

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"sync"
	"time"

	"github.com/ccos-project/ccos/config"
	"github.com/ccos-project/ccos/sandbox"
)

// Name is the provider's name in the registry and on the command line.
const Name = "qemu"

// DebianPackages provide QEMU and the guest kernel.
const DebianPackages = "qemu-system-x86 linux-image-cloud-amd64"

// Image is a guest image: kernel, initramfs and read-only rootfs.
type Image struct {
	Kernel, Initrd, Rootfs string
}

// Options configure the provider.
type Options struct {
	// Config supplies :microvm (resources, kernel command line, devices,
	// attestation). Without it, or without :microvm, the guest gets one
	// vCPU, the sandbox's memory limit and no NIC.
	Config *config.Config
	// Image returns the guest image to boot; nil makes the provider
	// unavailable (there is nothing to boot).
	Image func(ctx context.Context) (Image, error)
	// ImageReady, when set, tells Available whether Image can deliver
	// without building anything (the kernel and tools are installed), and
	// if not, why.
	ImageReady func() (bool, string)
	// Binary is the QEMU program; "qemu-system-x86_64" from PATH when
	// empty.
	Binary string
	// Accel forces "kvm" or "tcg"; empty chooses KVM when it is usable
	// (see KVMUsable), else TCG.
	Accel string
	// RuntimeDir holds one directory per VM; os.TempDir() when empty. Its
	// paths must stay short: Unix socket paths are limited to 107 bytes.
	RuntimeDir string
	// UID and GID QEMU runs as; 65534 (nobody) when zero. QEMU never runs
	// as root.
	UID, GID uint32
	// SnapshotDir, when set, makes Start clone guests from a template
	// instead of booting each one: a booted, warmed-up guest whose RAM is
	// a sealed memfd that each clone maps private (copy on write), and
	// whose device state is all a clone restores. The template is made on
	// first use (keyed by the image's measurements and the command line),
	// kept in memory for the provider's life, and saved here so that the
	// next process loads it instead of booting one; VMs with a NIC always
	// boot.
	SnapshotDir string
	// TBSizeMiB bounds the translated-code cache of each QEMU under TCG
	// (-accel tcg,tb-size=N), part of its private memory (about 6 MiB in
	// a clone that has said hello); QEMU's default when zero.
	TBSizeMiB int
	// Proxy is the egress proxy a guest NIC ends at (see nicNet); a config
	// that enables :microvm :devices :nic is refused without it.
	Proxy http.Handler
	// BootTimeout bounds the wait for QEMU's control connection and then
	// for the guest's first message (Start returns a booted guest); 60 s
	// when zero (a TCG boot on a loaded host takes seconds).
	BootTimeout time.Duration
}

// Provider starts QEMU microVM sandboxes.
type Provider struct {
	o Options
	// measured remembers image measurements by file identity (see
	// measure).
	measured sync.Map // fileID -> string
	// tmplMu guards templates and makes one template at a time.
	tmplMu    sync.Mutex
	templates map[string]*template // by templateKey
}

// New returns a provider with the given options.
func New(o Options) *Provider {
	if o.UID == 0 {
		o.UID = 65534
	}
	if o.GID == 0 {
		o.GID = 65534
	}
	if o.BootTimeout <= 0 {
		o.BootTimeout = 60 * time.Second
	}
	return &Provider{o: o}
}

// Name returns "qemu".
func (*Provider) Name() string { return Name }

// Options returns the provider's options.
func (p *Provider) Options() Options { return p.o }

func (p *Provider) binary() string {
	if p.o.Binary != "" {
		return p.o.Binary
	}
	return "qemu-system-x86_64"
}

// Available reports whether QEMU is installed and there is an image to
// boot.
func (p *Provider) Available() (bool, string) {
	if _, err := exec.LookPath(p.binary()); err != nil {
		return false, fmt.Sprintf("%s not found (install the Debian packages %s)", p.binary(), DebianPackages)
	}
	if p.o.Image == nil {
		return false, "no guest image source configured (ccos builds one from the installed Debian kernel; install linux-image-cloud-amd64)"
	}
	image := "guest image"
	if p.o.ImageReady != nil {
		ok, why := p.o.ImageReady()
		if !ok {
			return false, why
		}
		image = why
	}
	accel, why := p.accel()
	return true, fmt.Sprintf("%s, accelerator %s (%s); %s", p.binary(), accel, why, image)
}

// accel chooses the accelerator and says why.
func (p *Provider) accel() (string, string) {
	if p.o.Accel != "" {
		return p.o.Accel, "forced"
	}
	if ok, why := KVMUsable(); ok {
		return "kvm", why
	}
	_, why := KVMUsable()
	return "tcg", why
}

// KVMUsable reports whether QEMU can use KVM here: /dev/kvm opens and the
// CPU advertises hardware virtualisation (vmx or svm). On a nested guest
// that exposes /dev/kvm without the flags (this project's CI machine),
// KVM_CREATE_VM succeeds but a VM never runs, so the flags decide.
func KVMUsable() (bool, string) {
	f, err := os.OpenFile("/dev/kvm", os.O_RDWR, 0)
	if err != nil {
		return false, "no usable /dev/kvm: " + err.Error()
	}
	f.Close()
	if ok, why := sandbox.CPUVirtualization(); !ok {
		return false, "/dev/kvm exists but " + why
	}
	return true, "/dev/kvm and hardware virtualisation"
}

// tscKHz is the host's TSC frequency for tsc_early_khz: without it about
// one TCG boot in four hangs calibrating the TSC. 0 when unknown.
func tscKHz() int {
	b, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		k, v, ok := strings.Cut(line, ":")
		if !ok || strings.TrimSpace(k) != "cpu MHz" {
			continue
		}
		var mhz float64
		if _, err := fmt.Sscan(strings.TrimSpace(v), &mhz); err == nil && mhz > 0 {
			return int(mhz * 1000)
		}
	}
	return 0
}
