package process

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ccos-project/ccos/sandbox"
)

// requiredControllers are the cgroup controllers every sandbox needs; a
// missing one fails Start (never a silent run without the limit).
var requiredControllers = []string{"memory", "pids", "cpu"}

// cpuPeriodMicros is the CFS period against which CPUPercent is applied.
const cpuPeriodMicros = 100000

// cgroupLayout is where this process's own cgroups are: sandboxes are created
// beneath them, so that a delegated or nested ccos stays inside its own budget.
type cgroupLayout struct {
	version int               // 1 or 2
	v1      map[string]string // controller -> this process's cgroup directory (v1)
	v2      string            // this process's cgroup directory (v2)
}

// findCgroups reads /proc/self/mountinfo and /proc/self/cgroup. When any
// required controller is mounted as cgroup v1 (hybrid layouts), v1 is used
// for all of them; otherwise the unified v2 hierarchy is used.
func findCgroups() (*cgroupLayout, error) {
	mountinfo, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return nil, fmt.Errorf("read mountinfo: %w", err)
	}
	self, err := os.ReadFile("/proc/self/cgroup")
	if err != nil {
		return nil, fmt.Errorf("read /proc/self/cgroup: %w", err)
	}
	return parseLayout(string(mountinfo), string(self))
}

// parseLayout finds the layout from the text of /proc/self/mountinfo and
// /proc/self/cgroup.
func parseLayout(mountinfo, self string) (*cgroupLayout, error) {
	mounts, unified := cgroupMounts(mountinfo)
	own, ownV2 := ownCgroups(self)
	layout := &cgroupLayout{v1: map[string]string{}}
	for _, c := range requiredControllers {
		if m, ok := mounts[c]; ok {
			path, ok := own[c]
			if !ok {
				return nil, fmt.Errorf("cgroup v1 controller %q is mounted but /proc/self/cgroup has no entry for it", c)
			}
			layout.v1[c] = filepath.Join(m.point, strings.TrimPrefix(path, m.root))
		}
	}
	if len(layout.v1) > 0 {
		layout.version = 1
		for _, c := range requiredControllers {
			if _, ok := layout.v1[c]; !ok {
				return nil, fmt.Errorf("cgroup v1 controller %q is not mounted (needed for the %s limit)", c, limitOf(c))
			}
		}
		return layout, nil
	}
	if unified.point == "" {
		return nil, errors.New("no cgroup v1 controller and no cgroup v2 hierarchy is mounted")
	}
	layout.version = 2
	layout.v2 = filepath.Join(unified.point, strings.TrimPrefix(ownV2, unified.root))
	return layout, nil
}

func limitOf(controller string) string {
	switch controller {
	case "memory":
		return "Limits.MemoryBytes"
	case "pids":
		return "Limits.PIDs"
	default:
		return "Limits.CPUPercent"
	}
}

type mountPoint struct{ root, point string }

// cgroupMounts returns the v1 mount of each controller and the v2 mount.
func cgroupMounts(data string) (map[string]mountPoint, mountPoint) {
	v1 := map[string]mountPoint{}
	var v2 mountPoint
	for line := range strings.Lines(data) {
		pre, post, ok := strings.Cut(strings.TrimSpace(line), " - ")
		if !ok {
			continue
		}
		f, g := strings.Fields(pre), strings.Fields(post)
		if len(f) < 5 || len(g) < 3 {
			continue
		}
		m := mountPoint{root: f[3], point: f[4]}
		switch g[0] {
		case "cgroup2":
			if v2.point == "" {
				v2 = m
			}
		case "cgroup":
			for _, opt := range strings.Split(g[2], ",") {
				if _, seen := v1[opt]; !seen {
					v1[opt] = m
				}
			}
		}
	}
	return v1, v2
}

// ownCgroups returns this process's v1 cgroup path per controller and its v2 path.
func ownCgroups(data string) (map[string]string, string) {
	v1 := map[string]string{}
	v2 := ""
	for line := range strings.Lines(data) {
		parts := strings.SplitN(strings.TrimSpace(line), ":", 3)
		if len(parts) != 3 {
			continue
		}
		if parts[0] == "0" && parts[1] == "" {
			v2 = parts[2]
			continue
		}
		for _, c := range strings.Split(parts[1], ",") {
			v1[c] = parts[2]
		}
	}
	return v1, v2
}

// check reports why sandboxes cannot get their cgroups here, or nil.
func (l *cgroupLayout) check() error {
	if l.version == 2 {
		have, err := os.ReadFile(filepath.Join(l.v2, "cgroup.controllers"))
		if err != nil {
			return fmt.Errorf("cgroup v2: %w", err)
		}
		for _, c := range requiredControllers {
			if !bytes.Contains(append(append([]byte(" "), bytes.TrimSpace(have)...), ' '), []byte(" "+c+" ")) {
				return fmt.Errorf("cgroup v2 controller %q is not available in %s (needed for the %s limit)", c, l.v2, limitOf(c))
			}
		}
		return writable(l.v2)
	}
	for _, c := range requiredControllers {
		if err := writable(l.v1[c]); err != nil {
			return fmt.Errorf("cgroup v1 controller %q: %w", c, err)
		}
	}
	return nil
}

func writable(dir string) error {
	if err := unix.Access(dir, unix.W_OK); err != nil {
		return fmt.Errorf("cgroup directory %s is not writable: %w", dir, err)
	}
	return nil
}

// cgroup is one sandbox's set of cgroup directories.
type cgroup struct {
	version int
	dirs    []string          // every directory created, for attach, kill and removal
	byCtl   map[string]string // controller -> directory
}

// newCgroup creates the sandbox's cgroups under this process's own and
// applies the limits; on any error it removes what it created.
func newCgroup(layout *cgroupLayout, name string, lim sandbox.Limits) (cg *cgroup, err error) {
	cg = &cgroup{version: layout.version, byCtl: map[string]string{}}
	defer func() {
		if err != nil {
			cg.remove()
		}
	}()
	if layout.version == 2 {
		if err := enableV2Controllers(layout.v2); err != nil {
			return nil, err
		}
		dir := filepath.Join(layout.v2, name)
		if err := os.Mkdir(dir, 0o700); err != nil {
			return nil, fmt.Errorf("create cgroup: %w", err)
		}
		cg.dirs = append(cg.dirs, dir)
		for _, c := range requiredControllers {
			cg.byCtl[c] = dir
		}
		return cg, cg.limitV2(lim)
	}
	for _, c := range requiredControllers {
		dir := filepath.Join(layout.v1[c], name)
		if prev := findDir(cg.dirs, dir); prev == "" {
			if err := os.Mkdir(dir, 0o700); err != nil {
				return nil, fmt.Errorf("create %s cgroup: %w", c, err)
			}
			cg.dirs = append(cg.dirs, dir)
		}
		cg.byCtl[c] = dir
	}
	return cg, cg.limitV1(lim)
}

func findDir(dirs []string, dir string) string {
	for _, d := range dirs {
		if d == dir {
			return d
		}
	}
	return ""
}

func enableV2Controllers(dir string) error {
	have, _ := os.ReadFile(filepath.Join(dir, "cgroup.subtree_control"))
	var add []string
	for _, c := range requiredControllers {
		if !strings.Contains(" "+string(bytes.TrimSpace(have))+" ", " "+c+" ") {
			add = append(add, "+"+c)
		}
	}
	if len(add) == 0 {
		return nil
	}
	if err := writeFile(dir, "cgroup.subtree_control", strings.Join(add, " ")); err != nil {
		return fmt.Errorf("enable cgroup v2 controllers %v in %s (a v2 cgroup that holds processes cannot delegate; run ccos in a cgroup of its own): %w", add, dir, err)
	}
	return nil
}

// limitV1 writes the limits into the v1 controllers. Swap is capped at the
// memory limit (memsw) and swappiness set to 0 where the kernel has them, so
// the memory limit cannot be stretched by swapping.
func (cg *cgroup) limitV1(lim sandbox.Limits) error {
	mem, pids, cpu := cg.byCtl["memory"], cg.byCtl["pids"], cg.byCtl["cpu"]
	steps := []struct {
		dir, file, value string
		optional         bool
	}{
		{mem, "memory.limit_in_bytes", strconv.FormatInt(lim.MemoryBytes, 10), false},
		{mem, "memory.memsw.limit_in_bytes", strconv.FormatInt(lim.MemoryBytes, 10), true},
		{mem, "memory.swappiness", "0", true},
		{pids, "pids.max", strconv.Itoa(lim.PIDs), false},
		{cpu, "cpu.cfs_period_us", strconv.Itoa(cpuPeriodMicros), false},
		{cpu, "cpu.cfs_quota_us", strconv.Itoa(lim.CPUPercent * cpuPeriodMicros / 100), false},
	}
	for _, s := range steps {
		if s.optional && !exists(filepath.Join(s.dir, s.file)) {
			continue
		}
		if err := writeFile(s.dir, s.file, s.value); err != nil {
			return fmt.Errorf("set cgroup limit: %w", err)
		}
	}
	return nil
}

// limitV2 writes the limits into the v2 group; memory.oom.group makes an
// OOM kill take the whole sandbox, swap is disabled where it exists.
func (cg *cgroup) limitV2(lim sandbox.Limits) error {
	dir := cg.dirs[0]
	steps := []struct {
		file, value string
		optional    bool
	}{
		{"memory.max", strconv.FormatInt(lim.MemoryBytes, 10), false},
		{"memory.swap.max", "0", true},
		{"memory.oom.group", "1", true},
		{"pids.max", strconv.Itoa(lim.PIDs), false},
		{"cpu.max", fmt.Sprintf("%d %d", lim.CPUPercent*cpuPeriodMicros/100, cpuPeriodMicros), false},
	}
	for _, s := range steps {
		if s.optional && !exists(filepath.Join(dir, s.file)) {
			continue
		}
		if err := writeFile(dir, s.file, s.value); err != nil {
			return fmt.Errorf("set cgroup limit: %w", err)
		}
	}
	return nil
}

// attach moves pid (and all its threads) into every sandbox cgroup. The
// writes run concurrently: each migration waits for an RCU grace period
// (cgroup_threadgroup_rwsem), and concurrent writers share one.
func (cg *cgroup) attach(pid int) error {
	errs := make([]error, len(cg.dirs))
	var wg sync.WaitGroup
	for i, d := range cg.dirs {
		wg.Go(func() {
			if err := writeFile(d, "cgroup.procs", strconv.Itoa(pid)); err != nil {
				errs[i] = fmt.Errorf("attach to cgroup %s: %w", d, err)
			}
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}

// oomKills returns how many processes the memory controller OOM-killed.
func (cg *cgroup) oomKills() int {
	file := "memory.oom_control"
	if cg.version == 2 {
		file = "memory.events"
	}
	data, err := os.ReadFile(filepath.Join(cg.byCtl["memory"], file))
	if err != nil {
		return 0
	}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		if k, v, ok := strings.Cut(sc.Text(), " "); ok && k == "oom_kill" {
			n, _ := strconv.Atoi(strings.TrimSpace(v))
			return n
		}
	}
	return 0
}

// kill SIGKILLs every process in the sandbox's cgroups (cgroup.kill on v2
// when the kernel has it). The pid namespace already dies with its init;
// this also catches anything that escaped being reaped in time.
func (cg *cgroup) kill() {
	for _, d := range cg.dirs {
		if cg.version == 2 && writeFile(d, "cgroup.kill", "1") == nil {
			continue
		}
		for _, pid := range procs(d) {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
	}
}

func procs(dir string) []int {
	data, err := os.ReadFile(filepath.Join(dir, "cgroup.procs"))
	if err != nil {
		return nil
	}
	var out []int
	for _, f := range strings.Fields(string(data)) {
		if n, err := strconv.Atoi(f); err == nil {
			out = append(out, n)
		}
	}
	return out
}

// remove kills what is left and removes every directory, retrying while the
// kernel still counts exiting tasks in the group. It returns the first
// directory it could not remove.
func (cg *cgroup) remove() error {
	var firstErr error
	for i := len(cg.dirs) - 1; i >= 0; i-- {
		d := cg.dirs[i]
		var err error
		pause := 50 * time.Microsecond
		for deadline := time.Now().Add(2 * time.Second); ; {
			err = os.Remove(d)
			if err == nil || errors.Is(err, os.ErrNotExist) {
				err = nil
				break
			}
			if !errors.Is(err, syscall.EBUSY) || time.Now().After(deadline) {
				break
			}
			cg.kill()
			time.Sleep(pause)
			pause = min(2*pause, 10*time.Millisecond)
		}
		if err != nil && firstErr == nil {
			firstErr = fmt.Errorf("remove cgroup: %w", err)
		}
	}
	cg.dirs = nil
	return firstErr
}

func writeFile(dir, file, value string) error {
	return os.WriteFile(filepath.Join(dir, file), []byte(value), 0)
}

func exists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}
