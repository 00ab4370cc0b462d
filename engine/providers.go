package engine

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"

	"github.com/ccos-project/ccos/config"
	"github.com/ccos-project/ccos/image"
	"github.com/ccos-project/ccos/image/initbin"
	"github.com/ccos-project/ccos/sandbox"
	"github.com/ccos-project/ccos/sandbox/firecracker"
	"github.com/ccos-project/ccos/sandbox/gvisor"
	"github.com/ccos-project/ccos/sandbox/process"
	"github.com/ccos-project/ccos/sandbox/qemu"
	"github.com/ccos-project/ccos/sandbox/wasm"
	"github.com/ccos-project/ccos/vmspec"
)

// ProviderEnv is what the sandbox providers of one agent are built from.
type ProviderEnv struct {
	// Config is the agent's loaded config.
	Config *config.Result
	// BaseDir is the directory the config's relative paths are read from.
	BaseDir string
	// Proxy is where a microVM's NIC ends: the egress proxy (nil: the
	// agent has no network).
	Proxy http.Handler
	// VMSnapshots and CacheDir are the engine's options.
	VMSnapshots bool
	CacheDir    string
	Logger      *slog.Logger
}

// ProviderSet builds the providers of one agent. Each call builds new
// instances: nothing is shared between agents or engines.
type ProviderSet func(ProviderEnv) []sandbox.Provider

// DefaultProviders are the host's real providers: process, wasm, gvisor,
// qemu and firecracker, each built for the agent's config.
func DefaultProviders() ProviderSet {
	return func(env ProviderEnv) []sandbox.Provider {
		return []sandbox.Provider{
			&process.Provider{},
			wasm.New(wasm.Options{}),
			&gvisor.Provider{},
			newQEMU(env),
			newFirecracker(env),
		}
	}
}

// isolationStrength orders providers by the isolation they give; a
// provider may replace the config's choice only with one at least as
// strong unless the caller allows weaker isolation.
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

// Strength is how strong a provider's isolation is (0 for unknown ones):
// process and wasm 2, gvisor 3, qemu and firecracker 4.
func Strength(provider string) int { return isolationStrength[provider] }

// ModeStrength is the strength of the weakest provider that implements an
// isolation mode: what a node must at least offer to run it.
func ModeStrength(mode config.IsolationMode) int {
	ps := providersFor[mode]
	if len(ps) == 0 {
		return 0
	}
	return isolationStrength[ps[len(ps)-1]]
}

// ProviderStatus is whether a provider can run here, and why not.
type ProviderStatus struct {
	Provider  string `json:"provider"`
	Available bool   `json:"available"`
	Reason    string `json:"reason"`
	Strength  int    `json:"strength"`
}

func status(ps []sandbox.Provider) []ProviderStatus {
	out := make([]ProviderStatus, 0, len(ps))
	for _, p := range ps {
		ok, why := p.Available()
		out = append(out, ProviderStatus{Provider: p.Name(), Available: ok, Reason: why, Strength: Strength(p.Name())})
	}
	return out
}

// choose picks the provider for a run: the named one if given (refusing
// weaker isolation than the mode's unless allowWeaker), else the best
// available provider for the mode. It never falls back to a weaker kind
// of isolation.
func choose(ps []sandbox.Provider, mode config.IsolationMode, name string, allowWeaker bool) (sandbox.Provider, error) {
	byName := map[string]sandbox.Provider{}
	var names []string
	for _, p := range ps {
		byName[p.Name()] = p
		names = append(names, p.Name())
	}
	wanted := providersFor[mode]
	if name != "" && name != "auto" {
		p, ok := byName[name]
		if !ok {
			return nil, fmt.Errorf("%w %q (known: %s)", sandbox.ErrUnknownProvider, name, strings.Join(names, ", "))
		}
		if Strength(name) < ModeStrength(mode) && !allowWeaker {
			return nil, &WeakerError{Provider: name, Mode: mode, Wanted: wanted}
		}
		if ok, reason := p.Available(); !ok {
			return nil, fmt.Errorf("%w: provider %s is not available here: %s", sandbox.ErrUnavailable, name, reason)
		}
		return p, nil
	}
	if len(wanted) == 0 {
		return nil, fmt.Errorf("the config's :isolation :mode :%s names no known isolation", mode)
	}
	var why []string
	for _, n := range wanted {
		p, ok := byName[n]
		if !ok {
			why = append(why, n+": not built into this ccos")
			continue
		}
		if ok, reason := p.Available(); ok {
			return p, nil
		} else {
			why = append(why, n+": "+reason)
		}
	}
	return nil, fmt.Errorf("%w: no provider for :isolation :mode :%s is available, and ccos does not fall back to weaker isolation (%s)",
		sandbox.ErrUnavailable, mode, strings.Join(why, "; "))
}

// WeakerError refuses a provider that gives weaker isolation than the
// config's mode asks for.
type WeakerError struct {
	Provider string
	Mode     config.IsolationMode
	Wanted   []string
}

func (e *WeakerError) Error() string {
	return fmt.Sprintf("provider %s gives weaker isolation than the config's :isolation :mode :%s (providers: %s); allow weaker isolation explicitly (--allow-weaker) to accept that",
		e.Provider, e.Mode, strings.Join(e.Wanted, ", "))
}

// newQEMU builds the qemu provider of an agent: the config's :microvm,
// where its guest image comes from, the NIC's proxy and snapshot starts.
func newQEMU(env ProviderEnv) sandbox.Provider {
	cfg := env.Config.Config
	snapDir := ""
	if env.VMSnapshots {
		snapDir = filepath.Join(env.cacheDir(), "snapshots")
	}
	return qemu.New(qemu.Options{Config: cfg, Image: guestImage(env), Proxy: env.Proxy, SnapshotDir: snapDir,
		ImageReady: func() (bool, string) { return guestImageReady(cfg, env.BaseDir) }})
}

// newFirecracker builds the firecracker provider of an agent from the
// config's :microvm; a config it cannot describe leaves it unavailable,
// saying why.
func newFirecracker(env ProviderEnv) sandbox.Provider {
	cfg := env.Config.Config
	if cfg.MicroVM == nil {
		return firecracker.New(firecracker.Options{})
	}
	vm, err := vmspec.Firecracker(cfg, vmspec.Host{BaseDir: env.BaseDir})
	if err != nil {
		return firecracker.New(firecracker.Options{VMError: err})
	}
	netns := ""
	if cfg.MicroVM.Devices.NIC.Enabled && cfg.MicroVM.Devices.NIC.ProxyNS != nil {
		netns = filepath.Join("/var/run/netns", *cfg.MicroVM.Devices.NIC.ProxyNS)
	}
	return firecracker.New(firecracker.Options{VM: vm, NetNS: netns})
}

func (env ProviderEnv) cacheDir() string {
	if env.CacheDir != "" {
		return env.CacheDir
	}
	root, err := image.DefaultCacheRoot()
	if err != nil {
		return filepath.Join(os.TempDir(), "ccos-cache")
	}
	return filepath.Dir(root)
}

// guestImage returns where the qemu provider's guest image comes from.
// When the config's :microvm names a kernel and a rootfs that exist (an
// image made by `ccos image build`, the initramfs beside the rootfs), those
// are booted, as attested by :expect_rootfs_hash. Otherwise an image is
// built from the installed Debian kernel, the embedded /init, the config
// and its capability store, and cached; that is logged once.
func guestImage(env ProviderEnv) func(context.Context) (qemu.Image, error) {
	var once sync.Once
	var img qemu.Image
	var err error
	return func(ctx context.Context) (qemu.Image, error) {
		once.Do(func() { img, err = resolveGuestImage(ctx, env) })
		return img, err
	}
}

// configImage returns the config's own image when all its files exist.
func configImage(cfg *config.Config, baseDir string) (qemu.Image, string, bool) {
	if cfg.MicroVM == nil || cfg.MicroVM.Kernel.Image == "" || cfg.MicroVM.Rootfs.Image == "" {
		return qemu.Image{}, "", false
	}
	si, err := vmspec.Host{BaseDir: baseDir}.Image(cfg)
	if err != nil {
		return qemu.Image{}, "", false
	}
	for _, f := range []string{si.Kernel, si.Initrd, si.Rootfs} {
		if _, err := os.Stat(f); err != nil {
			return qemu.Image{}, f, false
		}
	}
	return qemu.Image{Kernel: si.Kernel, Initrd: si.Initrd, Rootfs: si.Rootfs}, "", true
}

// guestImageReady says whether a guest image can be had without a failure:
// the config's own, or one built from the installed kernel with mksquashfs.
func guestImageReady(cfg *config.Config, baseDir string) (bool, string) {
	if img, _, ok := configImage(cfg, baseDir); ok {
		return true, "image " + img.Rootfs + " from the config"
	}
	k, err := image.DefaultKernel()
	if err != nil {
		return false, err.Error()
	}
	if _, err := exec.LookPath("mksquashfs"); err != nil {
		return false, "mksquashfs not found (install the Debian package squashfs-tools)"
	}
	return true, "image built from " + k
}

func resolveGuestImage(ctx context.Context, env ProviderEnv) (qemu.Image, error) {
	cfg := env.Config.Config
	if img, missing, ok := configImage(cfg, env.BaseDir); ok {
		return img, nil
	} else if missing != "" {
		env.Logger.Warn("the config's guest image is incomplete; building one from the installed kernel instead (ccos image build makes a complete one)",
			"missing", missing)
	}
	root, err := image.DefaultCacheRoot()
	if err != nil {
		return qemu.Image{}, err
	}
	if env.CacheDir != "" {
		root = filepath.Join(env.CacheDir, "images")
	}
	in := image.Inputs{ConfigData: GuestConfig(env.Config), NIC: cfg.MicroVM != nil && cfg.MicroVM.Devices.NIC.Enabled,
		Vsock: cfg.MicroVM != nil && cfg.MicroVM.Devices.Vsock.Enabled}
	if in.Init, err = initbin.Bytes(); err != nil {
		return qemu.Image{}, err
	}
	for _, p := range cfg.Marketplace.RegistryPaths {
		if !filepath.IsAbs(p) {
			p = filepath.Join(env.BaseDir, p)
		}
		if fi, err := os.Stat(p); err == nil && fi.IsDir() {
			in.CapabilitiesDir = p
			break
		}
	}
	built, err := image.Cached(ctx, in, root)
	if err != nil {
		return qemu.Image{}, fmt.Errorf("building the guest image: %w", err)
	}
	return qemu.Image{Kernel: built.Kernel, Initrd: built.Initramfs, Rootfs: built.Rootfs}, nil
}
