// Package wasm is the "wasm" sandbox provider: it runs the ccos guest,
// compiled for GOOS=wasip1 GOARCH=wasm, in the wazero WebAssembly runtime
// inside the host process.
//
// The isolation is the WebAssembly machine itself: the guest's only way to
// act on the world is the functions the host links into it, and this
// provider links nothing but wasi_snapshot_preview1, configured with:
//
//   - standard input and output as the control channel (Sandbox.Control),
//     standard error as the bounded diagnostic log (Sandbox.Log);
//   - one preopened directory, /work, backed by a fresh host temporary
//     directory removed when the sandbox ends, in which the guest cannot
//     create symlinks and whose size the provider holds to
//     Limits.WorkdirBytes by charging every write, truncate and new entry
//     before it happens; plus Spec.CapabilitiesDir read-only at
//     /capabilities when set;
//   - no environment and a single argument, the program name;
//   - no sockets: wasip1 cannot create one, and no listener is handed in;
//   - the host's real wall and monotonic clocks, a sleep that ends early
//     when the sandbox is killed, and crypto/rand as its random source
//     (wazero's defaults are a fake clock and a fixed random sequence,
//     which would break the guest's timers and make its maps predictable).
//
// Limits.MemoryBytes bounds the guest's linear memory, Limits.Deadline the
// sandbox's life (wazero stops guest code at the deadline), and
// Limits.LogBytes the standard error kept. Limits.PIDs and CPUPercent do
// not apply: a wasip1 module has one thread and cannot start processes,
// and its CPU use is that of the host goroutine running it.
//
// The guest module comes from a ModuleSource, by default the module that
// `go generate ./sandbox/wasm` built and this package embedded; its sha256
// is checked against the digest recorded at build time before it is
// compiled. Compiled code is cached on disk (Options.CacheDir) and the
// compiled module is kept for the life of the Provider, so a sandbox start
// is an instantiation.
package wasm

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/imports/wasi_snapshot_preview1"

	"github.com/ccos-project/ccos/sandbox"
)

// Name is the provider's name in the sandbox registry.
const Name = "wasm"

// CacheDirEnv names the environment variable that overrides where compiled
// code is cached when Options.CacheDir is empty.
const CacheDirEnv = "CCOS_WASM_CACHE_DIR"

// MaxMemoryBytes is the largest Limits.MemoryBytes the provider accepts:
// the 4 GiB a 32-bit WebAssembly memory can address.
const MaxMemoryBytes = 65536 * pageSize

const pageSize = 65536

// GuestProgramName is the only argument the guest sees (its argv[0]).
const GuestProgramName = "ccos-guest"

// Options configures a Provider.
type Options struct {
	// Source yields the guest module; nil means EmbeddedModule.
	Source ModuleSource
	// CacheDir is where wazero keeps compiled code between runs. Empty
	// means $CCOS_WASM_CACHE_DIR, else os.UserCacheDir()/ccos/wazero; if
	// neither can be used the cache is kept in memory only.
	CacheDir string
}

// Provider runs guests in wazero. Its zero value is not usable; call New.
type Provider struct {
	opts Options

	mu       sync.Mutex
	prepared *prepared
	live     map[*guestSandbox]bool
}

// prepared is the runtime and compiled guest shared by a provider's
// sandboxes.
type prepared struct {
	rt       wazero.Runtime
	compiled wazero.CompiledModule
	// minMemory is the memory the module declares it needs at start.
	minMemory int64
	// sha256 and size describe the verified module.
	sha256 string
	size   int
}

// New returns a provider with the given options. It does no work until
// the first Available or Start.
func New(opts Options) *Provider {
	if opts.Source == nil {
		opts.Source = EmbeddedModule
	}
	return &Provider{opts: opts}
}

// Name implements sandbox.Provider.
func (p *Provider) Name() string { return Name }

// Available implements sandbox.Provider: the provider is available when its
// module source yields a module whose digest matches. It does not compile
// the module, which Start does once; after that it reports on the module
// compiled then.
func (p *Provider) Available() (bool, string) {
	p.mu.Lock()
	prep := p.prepared
	p.mu.Unlock()
	if prep != nil {
		// Start runs what was verified and compiled then, whatever the
		// source would yield now; sandbox.Start asks before every start.
		return true, prep.describe()
	}
	m, err := p.opts.Source()
	if err == nil {
		err = m.Verify()
	}
	if err != nil {
		return false, err.Error()
	}
	return true, describe(m.SHA256, len(m.Wasm))
}

func describe(sha string, size int) string {
	return fmt.Sprintf("wazero; guest module sha256 %s (%d bytes)", sha, size)
}

func (p *prepared) describe() string { return describe(p.sha256, p.size) }

// Close kills the sandboxes still running (their Wait reports
// ExitKilled), then releases the runtime and the compiled module. The
// provider compiles again on the next Start.
func (p *Provider) Close(ctx context.Context) error {
	p.mu.Lock()
	live := p.live
	p.live = nil
	p.mu.Unlock()
	for s := range live {
		s.Kill()
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.prepared == nil {
		return nil
	}
	err := p.prepared.rt.Close(ctx)
	p.prepared = nil
	if err != nil {
		return fmt.Errorf("wasm: closing the runtime: %w", err)
	}
	return nil
}

// prepare loads, verifies and compiles the guest module once.
func (p *Provider) prepare(ctx context.Context) (*prepared, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.prepared != nil {
		return p.prepared, nil
	}
	m, err := p.opts.Source()
	if err != nil {
		return nil, err
	}
	if err := m.Verify(); err != nil {
		return nil, err
	}
	prep, err := compile(ctx, m, p.opts.CacheDir)
	if err != nil {
		return nil, err
	}
	p.prepared = prep
	return prep, nil
}

// compile builds a runtime linked to wasi_snapshot_preview1 alone and
// compiles a verified module in it.
func compile(ctx context.Context, m Module, cacheDir string) (*prepared, error) {
	rt := newRuntime(ctx, cacheDir)
	if _, err := wasi_snapshot_preview1.Instantiate(ctx, rt); err != nil {
		rt.Close(ctx)
		return nil, fmt.Errorf("linking wasi_snapshot_preview1: %w", err)
	}
	compiled, err := rt.CompileModule(ctx, m.Wasm)
	if err != nil {
		rt.Close(ctx)
		return nil, fmt.Errorf("compiling guest module sha256 %s: %w", m.SHA256, err)
	}
	wasiFns := map[string]bool{}
	for name := range rt.Module(wasi_snapshot_preview1.ModuleName).ExportedFunctionDefinitions() {
		wasiFns[name] = true
	}
	if err := checkImports(compiled, wasiFns); err != nil {
		rt.Close(ctx)
		return nil, err
	}
	return &prepared{
		rt:        rt,
		compiled:  compiled,
		minMemory: int64(minMemoryPages(compiled)) * pageSize,
		sha256:    m.SHA256,
		size:      len(m.Wasm),
	}, nil
}

// newRuntime builds the one runtime the provider's sandboxes share. Its
// page limit is the wasm32 ceiling: the per-sandbox limit is memoryLimit.
func newRuntime(ctx context.Context, dir string) wazero.Runtime {
	cfg := wazero.NewRuntimeConfig().
		WithCloseOnContextDone(true).
		WithMemoryLimitPages(MaxMemoryBytes / pageSize)
	if cache := openCache(dir); cache != nil {
		cfg = cfg.WithCompilationCache(cache)
	}
	return wazero.NewRuntimeWithConfig(ctx, cfg)
}

// openCache opens the on-disk compilation cache, or returns nil when no
// directory can be used safely; then every process compiles the module
// once, which costs time, never safety. The cache holds native code that
// runs inside the host process and wazero checks it only with a CRC, so a
// directory that others can write is refused rather than trusted.
func openCache(dir string) wazero.CompilationCache {
	if dir == "" {
		dir = os.Getenv(CacheDirEnv)
	}
	if dir == "" {
		base, err := os.UserCacheDir()
		if err != nil {
			slog.Warn("wasm: no compilation cache directory; compiling in memory", "err", err)
			return nil
		}
		dir = filepath.Join(base, "ccos", "wazero")
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		slog.Warn("wasm: compilation cache unusable; compiling in memory", "dir", dir, "err", err)
		return nil
	}
	if err := checkCacheDir(dir); err != nil {
		slog.Warn("wasm: compilation cache refused; compiling in memory", "dir", dir, "err", err)
		return nil
	}
	cache, err := wazero.NewCompilationCacheWithDir(dir)
	if err != nil {
		slog.Warn("wasm: compilation cache unusable; compiling in memory", "dir", dir, "err", err)
		return nil
	}
	return cache
}

// checkCacheDir refuses a cache directory that someone other than this
// user could write.
func checkCacheDir(dir string) error {
	info, err := os.Stat(dir)
	if err != nil {
		return fmt.Errorf("checking the cache directory: %w", err)
	}
	if !info.IsDir() {
		return fmt.Errorf("%s is not a directory", dir)
	}
	if perm := info.Mode().Perm(); perm&0o022 != 0 {
		return fmt.Errorf("%s is writable by group or others (mode %v)", dir, perm)
	}
	return checkOwner(info)
}

// ErrForeignImport is returned (wrapped) when the guest module imports
// anything other than a function of wasi_snapshot_preview1 that the host
// provides: such a module would ask for a capability this sandbox does
// not grant, so it is refused before it runs.
var ErrForeignImport = errors.New("wasm guest module imports what the sandbox does not provide")

func checkImports(compiled wazero.CompiledModule, wasiFns map[string]bool) error {
	for _, fn := range compiled.ImportedFunctions() {
		mod, name, _ := fn.Import()
		if mod != wasi_snapshot_preview1.ModuleName || !wasiFns[name] {
			return fmt.Errorf("%w: function %s.%s (only %s is linked)", ErrForeignImport, mod, name, wasi_snapshot_preview1.ModuleName)
		}
	}
	for _, mem := range compiled.ImportedMemories() {
		mod, name, _ := mem.Import()
		return fmt.Errorf("%w: memory %s.%s", ErrForeignImport, mod, name)
	}
	return nil
}

func minMemoryPages(compiled wazero.CompiledModule) uint32 {
	var pages uint32
	for _, mem := range compiled.ExportedMemories() {
		pages = max(pages, mem.Min())
	}
	return pages
}

// Start implements sandbox.Provider. It compiles the module on first use
// (from the disk cache when warm), checks the limits against it, prepares
// the workdir and starts the guest; the guest runs until it exits, Kill is
// called, the deadline passes or ctx is cancelled.
func (p *Provider) Start(ctx context.Context, spec sandbox.Spec) (sandbox.Sandbox, error) {
	limits := spec.Limits.WithDefaults()
	if limits.MemoryBytes > MaxMemoryBytes {
		return nil, fmt.Errorf("wasm: memory limit %d bytes is above the %d a wasm32 guest can address", limits.MemoryBytes, int64(MaxMemoryBytes))
	}
	prep, err := p.prepare(ctx)
	if err != nil {
		return nil, fmt.Errorf("wasm: %w", err)
	}
	if prep.minMemory > limits.MemoryBytes {
		return nil, fmt.Errorf("wasm: the guest module needs %d bytes of memory at start, above the limit of %d", prep.minMemory, limits.MemoryBytes)
	}
	s, err := start(ctx, prep, spec, limits)
	if err != nil {
		return nil, err
	}
	p.track(s)
	return s, nil
}

// track records a running sandbox for Close until it ends.
func (p *Provider) track(s *guestSandbox) {
	p.mu.Lock()
	if p.live == nil {
		p.live = map[*guestSandbox]bool{}
	}
	p.live[s] = true
	p.mu.Unlock()
	go func() {
		<-s.done
		p.mu.Lock()
		delete(p.live, s)
		p.mu.Unlock()
	}()
}
