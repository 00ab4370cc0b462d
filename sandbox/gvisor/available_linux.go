//go:build linux

package gvisor

import (
	"bytes"
	"context"
	"debug/elf"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ccos-project/ccos/sandbox/cgroup"
)

// minRelease is the oldest runsc release this provider was tested with
// (Debian 12's package): --network=none, the tmpfs size option, JSON logs
// and joining an existing cgroup all work from it on.
const minRelease = "20221219"

// runscInfo is what one runsc program says about itself.
type runscInfo struct {
	path      string
	release   string   // yyyymmdd
	platforms []string // from "runsc help platforms"
	err       error
}

// runscInfos caches runscInfo per program name: Available runs before
// every sandbox.Start, and asking runsc costs tens of milliseconds.
var runscInfos sync.Map // string -> *runscInfo

var releaseDate = regexp.MustCompile(`(20\d{6})`)

func probeRunsc(name string) *runscInfo {
	if v, ok := runscInfos.Load(name); ok {
		return v.(*runscInfo)
	}
	info := &runscInfo{}
	info.err = info.probe(name)
	v, _ := runscInfos.LoadOrStore(name, info)
	return v.(*runscInfo)
}

func (info *runscInfo) probe(name string) error {
	path, err := exec.LookPath(name)
	if err != nil {
		return fmt.Errorf("%s not found (install the Debian package %q: apt-get install %s): %w", name, DebianPackage, DebianPackage, err)
	}
	info.path = path
	out, err := runQuiet(path, "--version")
	if err != nil {
		return fmt.Errorf("%s --version failed: %w", path, err)
	}
	m := releaseDate.FindString(out)
	if m == "" {
		return fmt.Errorf("cannot read a release date in the output of %s --version (%q); need runsc release %s or newer", path, strings.TrimSpace(out), minRelease)
	}
	if m < minRelease {
		return fmt.Errorf("runsc at %s is release %s, too old: need %s or newer", path, m, minRelease)
	}
	info.release = m
	out, err = runQuiet(path, "help", "platforms")
	if err != nil {
		return fmt.Errorf("%s help platforms failed: %w", path, err)
	}
	info.platforms = strings.Fields(out)
	if !slices.Contains(info.platforms, "ptrace") && !slices.Contains(info.platforms, "systrap") {
		return fmt.Errorf("runsc at %s offers neither the systrap nor the ptrace platform (it lists %v)", path, info.platforms)
	}
	return nil
}

func runQuiet(path string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var out, errOut bytes.Buffer
	cmd := exec.CommandContext(ctx, path, args...)
	cmd.Stdout, cmd.Stderr = &out, &errOut
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("%w: %s", err, strings.TrimSpace(errOut.String()))
	}
	return out.String(), nil
}

// choosePlatform picks systrap if this runsc knows it, kvm when /dev/kvm is
// usable and the CPU shows hardware virtualisation, else ptrace; it says why.
// A /dev/kvm that opens without vmx or svm in the CPU flags is a nested
// hypervisor's emulation: runsc's kvm platform hung on such a host (Debian
// runsc 2022-12-19), so it is not chosen.
func choosePlatform(platforms []string) (name, why string) {
	if slices.Contains(platforms, "systrap") {
		return "systrap", "systrap (seccomp traps, no virtualisation needed)"
	}
	kvmWhy := kvmUsable()
	if slices.Contains(platforms, "kvm") && kvmWhy == "" {
		return "kvm", "kvm (/dev/kvm with hardware virtualisation)"
	}
	if !slices.Contains(platforms, "kvm") {
		kvmWhy = "this runsc has no kvm platform"
	}
	return "ptrace", "ptrace (this runsc has no systrap; no kvm: " + kvmWhy + ")"
}

// kvmUsable returns "" when /dev/kvm can run a guest here, or why not.
func kvmUsable() string {
	f, err := os.OpenFile("/dev/kvm", os.O_RDWR, 0)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return "no /dev/kvm"
		}
		return "cannot open /dev/kvm: " + err.Error()
	}
	f.Close()
	cpu, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		return "cannot read /proc/cpuinfo: " + err.Error()
	}
	for _, line := range strings.Split(string(cpu), "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "flags" {
			flags := strings.Fields(v)
			if slices.Contains(flags, "vmx") || slices.Contains(flags, "svm") {
				return ""
			}
			return "/dev/kvm is present but the CPU flags show neither vmx nor svm (nested emulation, on which runsc's kvm platform hangs)"
		}
	}
	return "no CPU flags in /proc/cpuinfo"
}

// hostCheck is everything Available and Start need to know about the host.
type hostCheck struct {
	runsc    *runscInfo
	platform string
	why      string // the platform and why
	binary   string
	layout   *cgroup.Layout
}

// checkHost reports what this host lacks for gVisor sandboxes, if anything.
func (p *Provider) checkHost() (*hostCheck, error) {
	if os.Geteuid() != 0 {
		return nil, errors.New("runsc needs root here: without --rootless it creates namespaces and cgroups, and --rootless would leave the memory, pids and CPU limits unenforced")
	}
	name := p.Runsc
	if name == "" {
		name = "runsc"
	}
	h := &hostCheck{runsc: probeRunsc(name)}
	if h.runsc.err != nil {
		return nil, h.runsc.err
	}
	h.platform, h.why = choosePlatform(h.runsc.platforms)
	if p.Platform != "" {
		if !slices.Contains(h.runsc.platforms, p.Platform) {
			return nil, fmt.Errorf("platform %q was asked for but %s offers only %v", p.Platform, h.runsc.path, h.runsc.platforms)
		}
		h.platform, h.why = p.Platform, p.Platform+" (set by Provider.Platform)"
	}
	var err error
	if h.binary, err = p.binary(); err != nil {
		return nil, err
	}
	if h.layout, err = cachedLayout(); err != nil {
		return nil, err
	}
	if err := h.layout.Check(); err != nil {
		return nil, err
	}
	if err := runscAgreesOnCgroups(h.layout); err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "ccos-gvisor-check-")
	if err != nil {
		return nil, fmt.Errorf("cannot create bundle directories in %s: %w", os.TempDir(), err)
	}
	os.Remove(dir)
	return h, nil
}

// cachedLayout is this process's cgroup layout, read once.
var cachedLayout = sync.OnceValues(cgroup.Find)

// runscAgreesOnCgroups checks that runsc, which takes the host as cgroup v2
// exactly when /sys/fs/cgroup is a cgroup2 mount, sees the version the
// sandbox's group was made for: otherwise it would join groups where the
// limits are not.
func runscAgreesOnCgroups(l *cgroup.Layout) error {
	var st unix.Statfs_t
	if err := unix.Statfs("/sys/fs/cgroup", &st); err != nil {
		return fmt.Errorf("no cgroup file system at /sys/fs/cgroup: %w", err)
	}
	if runscV2 := st.Type == unix.CGROUP2_SUPER_MAGIC; runscV2 != (l.Version == 2) {
		return fmt.Errorf("runsc would use cgroup v2=%v at /sys/fs/cgroup, but the memory, pids and cpu controllers are in cgroup v%d: the limits could not be enforced", runscV2, l.Version)
	}
	return nil
}

// binary returns the host path of the guest program.
func (p *Provider) binary() (string, error) {
	path := p.Binary
	if path == "" {
		exe, err := os.Executable()
		if err != nil {
			return "", fmt.Errorf("cannot find this program to run as the guest: %w", err)
		}
		path = exe
	}
	fi, err := os.Stat(path)
	if err != nil {
		return "", fmt.Errorf("guest binary: %w", err)
	}
	if !fi.Mode().IsRegular() || fi.Mode().Perm()&0o111 == 0 {
		return "", fmt.Errorf("guest binary %s is not an executable file (mode %v)", path, fi.Mode())
	}
	if err := checkStatic(path); err != nil {
		return "", err
	}
	return path, nil
}

// checkStatic refuses a dynamically linked guest: the sandbox's root holds
// no loader and no libraries.
func checkStatic(path string) error {
	f, err := elf.Open(path)
	if err != nil {
		return fmt.Errorf("guest binary %s is not an ELF executable: %w", path, err)
	}
	defer f.Close()
	for _, prog := range f.Progs {
		if prog.Type == elf.PT_INTERP {
			return fmt.Errorf("guest binary %s is dynamically linked, and the sandbox's root has no loader or libraries: build it with CGO_ENABLED=0", path)
		}
	}
	return nil
}

// Available reports whether gVisor sandboxes can run here and, if not,
// exactly what is missing; when they can, it names the runsc release, the
// platform and why it was chosen.
func (p *Provider) Available() (bool, string) {
	h, err := p.checkHost()
	if err != nil {
		return false, err.Error()
	}
	v := fmt.Sprintf("v%d", h.layout.Version)
	return true, fmt.Sprintf("runsc %s (release %s), platform %s, --network=none, cgroup %s memory, pids and cpu", h.runsc.path, h.runsc.release, h.why, v)
}
