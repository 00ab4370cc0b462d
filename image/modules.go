package image

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strings"
)

// DefaultModules are the kernel modules the guest loads, in load order, for
// a QEMU or Firecracker microVM on the Debian cloud kernel: the virtio core
// and its MMIO transport first, then the console (control channel) and
// block (rootfs) drivers, then the file system of the rootfs.
var DefaultModules = []string{"virtio_ring", "virtio", "virtio_mmio", "virtio_console", "virtio_blk", "squashfs"}

// NICModules are added after the modules of Inputs.Modules when Inputs.NIC
// is set: virtio_net and the failover modules it depends on.
var NICModules = []string{"failover", "net_failover", "virtio_net"}

// VsockModules are the drivers of a virtio vsock control channel
// (Firecracker), added after the others when Inputs.Vsock is set.
var VsockModules = []string{"vsock", "vmw_vsock_virtio_transport_common", "vmw_vsock_virtio_transport"}

// ErrModuleNotFound is returned (wrapped, naming the module and the
// modules.dep read) when a module is neither in modules.dep nor built into
// the kernel.
var ErrModuleNotFound = errors.New("kernel module not found")

// ErrModulesDep is returned (wrapped, with the line) when modules.dep or
// modules.builtin is malformed.
var ErrModulesDep = errors.New("malformed modules.dep")

// ErrModuleCompressed is returned (wrapped) when a module is compressed in a
// format this host cannot decompress; the message names the tool to install.
var ErrModuleCompressed = errors.New("cannot decompress kernel module")

// moduleIndex is what depmod recorded about the modules of one kernel.
type moduleIndex struct {
	// path maps a module name to its file, relative to the modules
	// directory ("kernel/drivers/virtio/virtio.ko").
	path map[string]string
	// deps maps a module name to the names of the modules it needs, as
	// depmod listed them.
	deps map[string][]string
	// builtin holds the modules compiled into the kernel.
	builtin map[string]bool
}

// moduleSuffixes are the file name endings of kernel modules, compressed or
// not.
var moduleSuffixes = []string{".ko", ".ko.gz", ".ko.xz", ".ko.zst"}

// moduleName is the name of the module in file p: its base name without the
// suffix, with '-' written '_' (the kernel treats both alike). ok is false
// when p does not name a module file.
func moduleName(p string) (name string, ok bool) {
	base := path.Base(p)
	for _, s := range moduleSuffixes {
		if n, found := strings.CutSuffix(base, s); found && n != "" {
			return normalizeModule(n), true
		}
	}
	return "", false
}

// normalizeModule spells a module name the way the kernel reports it.
func normalizeModule(name string) string { return strings.ReplaceAll(name, "-", "_") }

// checkModulePath refuses module paths that would leave the modules
// directory.
func checkModulePath(p string) error {
	if p == "" || path.IsAbs(p) || path.Clean(p) != p || p == ".." || strings.HasPrefix(p, "../") {
		return fmt.Errorf("module path %q is not a clean path inside the modules directory", p)
	}
	return nil
}

// parseModulesDep reads depmod's modules.dep: one line per module,
// "path: dep-path dep-path ...", paths relative to the modules directory.
func parseModulesDep(data []byte) (*moduleIndex, error) {
	idx := &moduleIndex{path: map[string]string{}, deps: map[string][]string{}, builtin: map[string]bool{}}
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(nil, 1<<20)
	for line := 1; sc.Scan(); line++ {
		text := strings.TrimSpace(sc.Text())
		if text == "" {
			continue
		}
		file, rest, ok := strings.Cut(text, ":")
		if !ok {
			return nil, fmt.Errorf("%w: line %d: %q has no ':' after the module path", ErrModulesDep, line, text)
		}
		name, err := indexModulePath(file, line)
		if err != nil {
			return nil, err
		}
		if prev, dup := idx.path[name]; dup {
			return nil, fmt.Errorf("%w: line %d: module %s listed twice (%s and %s)", ErrModulesDep, line, name, prev, file)
		}
		var deps []string
		for _, d := range strings.Fields(rest) {
			dn, err := indexModulePath(d, line)
			if err != nil {
				return nil, err
			}
			deps = append(deps, dn)
		}
		idx.path[name] = file
		idx.deps[name] = deps
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrModulesDep, err)
	}
	return idx, nil
}

// indexModulePath checks one path of modules.dep and returns its module.
func indexModulePath(p string, line int) (string, error) {
	if err := checkModulePath(p); err != nil {
		return "", fmt.Errorf("%w: line %d: %v", ErrModulesDep, line, err)
	}
	name, ok := moduleName(p)
	if !ok {
		return "", fmt.Errorf("%w: line %d: %q is not a module file (want one of %s)", ErrModulesDep, line, p, strings.Join(moduleSuffixes, " "))
	}
	return name, nil
}

// parseModulesBuiltin adds the modules of depmod's modules.builtin (one
// path per line) to idx.
func (idx *moduleIndex) parseModulesBuiltin(data []byte) error {
	for i, l := range strings.Split(string(data), "\n") {
		l = strings.TrimSpace(l)
		if l == "" {
			continue
		}
		name, err := indexModulePath(l, i+1)
		if err != nil {
			return fmt.Errorf("modules.builtin: %w", err)
		}
		idx.builtin[name] = true
	}
	return nil
}

// loadModuleIndex reads modules.dep and, when present, modules.builtin of
// the modules directory dir.
func loadModuleIndex(dir string) (*moduleIndex, error) {
	depFile := filepath.Join(dir, "modules.dep")
	data, err := os.ReadFile(depFile)
	if err != nil {
		return nil, fmt.Errorf("%w: reading %s: %w (is the kernel's modules package installed, and depmod run?)", ErrModuleNotFound, depFile, err)
	}
	idx, err := parseModulesDep(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", depFile, err)
	}
	builtin, err := os.ReadFile(filepath.Join(dir, "modules.builtin"))
	switch {
	case err == nil:
		if err := idx.parseModulesBuiltin(builtin); err != nil {
			return nil, fmt.Errorf("%s: %w", filepath.Join(dir, "modules.builtin"), err)
		}
	case !errors.Is(err, os.ErrNotExist):
		return nil, err
	}
	return idx, nil
}

// loadOrder returns the loadable modules of want in an order that loads
// every module after the modules it depends on, and the modules of want
// that are built into the kernel (and so need no loading). It keeps the
// order of want wherever the dependencies allow and adds the dependencies
// want leaves out just before their first dependent.
func (idx *moduleIndex) loadOrder(want []string) (order, builtin []string, err error) {
	const (
		visiting = 1
		done     = 2
	)
	state := map[string]int{}
	var visit func(name string, chain []string) error
	visit = func(name string, chain []string) error {
		switch state[name] {
		case done:
			return nil
		case visiting:
			return fmt.Errorf("%w: modules.dep has a dependency cycle: %s", ErrModulesDep, strings.Join(append(chain, name), " -> "))
		}
		if idx.builtin[name] {
			state[name] = done
			builtin = append(builtin, name)
			return nil
		}
		if _, ok := idx.path[name]; !ok {
			if len(chain) > 0 {
				return fmt.Errorf("%w: %s (needed by %s)", ErrModuleNotFound, name, chain[len(chain)-1])
			}
			return fmt.Errorf("%w: %s", ErrModuleNotFound, name)
		}
		state[name] = visiting
		// depmod lists a module's dependencies so that loading them in
		// reverse order works; visiting them in that order keeps it.
		deps := idx.deps[name]
		next := append(chain[:len(chain):len(chain)], name)
		for i := len(deps) - 1; i >= 0; i-- {
			if err := visit(deps[i], next); err != nil {
				return err
			}
		}
		state[name] = done
		order = append(order, name)
		return nil
	}
	for _, w := range want {
		if err := visit(normalizeModule(w), nil); err != nil {
			return nil, nil, err
		}
	}
	return order, builtin, nil
}

// readModule reads the module file at p and returns it uncompressed: the
// kernel's finit_module needs an ELF object unless the kernel was built to
// decompress modules itself, which Debian's 6.1 kernels are not.
func readModule(p string) ([]byte, error) {
	data, err := os.ReadFile(p)
	if err != nil {
		return nil, err
	}
	switch {
	case strings.HasSuffix(p, ".ko"):
		return data, nil
	case strings.HasSuffix(p, ".ko.gz"):
		zr, err := gzip.NewReader(bytes.NewReader(data))
		if err != nil {
			return nil, fmt.Errorf("%w %s: %w", ErrModuleCompressed, p, err)
		}
		out, err := io.ReadAll(zr)
		if err != nil {
			return nil, fmt.Errorf("%w %s: %w", ErrModuleCompressed, p, err)
		}
		return out, nil
	case strings.HasSuffix(p, ".ko.xz"):
		return decompressWith(p, data, "xz", "xz-utils")
	case strings.HasSuffix(p, ".ko.zst"):
		return decompressWith(p, data, "zstd", "zstd")
	}
	return nil, fmt.Errorf("%w %s: unknown module file suffix", ErrModuleCompressed, p)
}

// decompressWith decompresses data (the content of file p) with the command
// tool, from the Debian package pkg.
func decompressWith(p string, data []byte, tool, pkg string) ([]byte, error) {
	bin, err := exec.LookPath(tool)
	if err != nil {
		return nil, fmt.Errorf("%w %s: it is %s-compressed and %s is not installed (install the Debian package %s)", ErrModuleCompressed, p, tool, tool, pkg)
	}
	cmd := exec.Command(bin, "-d", "-c")
	cmd.Stdin = bytes.NewReader(data)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("%w %s: %s -d: %v: %s", ErrModuleCompressed, p, tool, err, strings.TrimSpace(errb.String()))
	}
	return out.Bytes(), nil
}
