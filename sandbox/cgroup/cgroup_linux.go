//go:build linux

package cgroup

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Controllers are the controllers every sandbox group gets limits in.
var Controllers = []string{"memory", "pids", "cpu"}

// cpuPeriodMicros is the CFS period against which CPUPercent is applied.
const cpuPeriodMicros = 100000

// Limits are what a group enforces.
type Limits struct {
	MemoryBytes int64 // memory (and memory+swap) limit
	PIDs        int   // tasks (threads included) the group may hold
	CPUPercent  int   // CPU time per period, in percent of one CPU
}

// Layout is where this process's cgroups are.
type Layout struct {
	// Version is 1 or 2.
	Version int
	// hierarchies maps each v1 hierarchy this process is in (by its
	// controller list, such as "cpu,cpuacct" or "name=systemd") to this
	// process's group directory in it; for v2 the single key "".
	hierarchies map[string]string
	// limit maps each of Controllers to the directory in which groups for
	// its limit are made (the same directory for v2).
	limit map[string]string
}

// Find reads /proc/self/mountinfo and /proc/self/cgroup.
func Find() (*Layout, error) {
	mountinfo, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return nil, fmt.Errorf("read mountinfo: %w", err)
	}
	self, err := os.ReadFile("/proc/self/cgroup")
	if err != nil {
		return nil, fmt.Errorf("read /proc/self/cgroup: %w", err)
	}
	return ParseLayout(string(mountinfo), string(self))
}

// ParseLayout finds the layout from the text of /proc/self/mountinfo and
// /proc/self/cgroup.
func ParseLayout(mountinfo, self string) (*Layout, error) {
	v1, unified := mounts(mountinfo)
	own, ownV2 := ownGroups(self)
	l := &Layout{hierarchies: map[string]string{}, limit: map[string]string{}}
	for key, path := range own {
		m, ok := v1.find(strings.Split(key, ","))
		if !ok {
			continue
		}
		dir := filepath.Join(m.point, strings.TrimPrefix(path, m.root))
		l.hierarchies[key] = dir
		for _, c := range strings.Split(key, ",") {
			if slices.Contains(Controllers, c) {
				l.limit[c] = dir
			}
		}
	}
	for _, c := range Controllers {
		if _, mounted := v1.find([]string{c}); mounted {
			if _, ok := l.limit[c]; !ok {
				return nil, fmt.Errorf("cgroup v1 controller %q is mounted but /proc/self/cgroup has no entry for it", c)
			}
		}
	}
	if len(l.limit) > 0 {
		l.Version = 1
		for _, c := range Controllers {
			if _, ok := l.limit[c]; !ok {
				return nil, fmt.Errorf("cgroup v1 controller %q is not mounted (needed for the %s limit)", c, limitOf(c))
			}
		}
		return l, nil
	}
	if unified.point == "" {
		return nil, errors.New("no cgroup v1 controller and no cgroup v2 hierarchy is mounted")
	}
	l.Version = 2
	dir := filepath.Join(unified.point, strings.TrimPrefix(ownV2, unified.root))
	l.hierarchies = map[string]string{"": dir}
	for _, c := range Controllers {
		l.limit[c] = dir
	}
	return l, nil
}

// Dir returns this process's group directory for controller.
func (l *Layout) Dir(controller string) string { return l.limit[controller] }

// limitOf names the limit a controller enforces.
func limitOf(controller string) string {
	switch controller {
	case "memory":
		return "memory (Limits.MemoryBytes)"
	case "pids":
		return "process (Limits.PIDs)"
	}
	return "CPU (Limits.CPUPercent)"
}

type mountPoint struct {
	root, point string
	options     []string // super options: controllers, name=..., rw
}

type v1Mounts []mountPoint

// find returns the mount of the hierarchy that holds all the controllers.
func (ms v1Mounts) find(controllers []string) (mountPoint, bool) {
	for _, m := range ms {
		all := true
		for _, c := range controllers {
			all = all && slices.Contains(m.options, c)
		}
		if all {
			return m, true
		}
	}
	return mountPoint{}, false
}

// mounts returns the v1 hierarchies mounted and the v2 mount.
func mounts(data string) (v1Mounts, mountPoint) {
	var v1 v1Mounts
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
		m := mountPoint{root: f[3], point: f[4], options: strings.Split(g[2], ",")}
		switch g[0] {
		case "cgroup2":
			if v2.point == "" {
				v2 = m
			}
		case "cgroup":
			v1 = append(v1, m)
		}
	}
	return v1, v2
}

// ownGroups returns this process's path in each v1 hierarchy (by controller
// list) and its v2 path.
func ownGroups(data string) (map[string]string, string) {
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
		v1[parts[1]] = parts[2]
	}
	return v1, v2
}

// Check reports why sandbox groups cannot be made here, or nil.
func (l *Layout) Check() error {
	if l.Version == 2 {
		dir := l.hierarchies[""]
		have, err := os.ReadFile(filepath.Join(dir, "cgroup.controllers"))
		if err != nil {
			return fmt.Errorf("cgroup v2: %w", err)
		}
		for _, c := range Controllers {
			if !slices.Contains(strings.Fields(string(have)), c) {
				return fmt.Errorf("cgroup v2 controller %q is not available in %s (needed for the %s limit)", c, dir, limitOf(c))
			}
		}
		return writable(dir)
	}
	for _, c := range Controllers {
		if err := writable(l.limit[c]); err != nil {
			return fmt.Errorf("cgroup v1 controller %q (the %s limit): %w", c, limitOf(c), err)
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

// Group is one sandbox's set of cgroup directories.
type Group struct {
	layout *Layout
	name   string
	dirs   []string // the directories this package created, in order
}

// New creates the group name (a relative path) under this process's own
// groups and writes its limits; on any error it removes the directories it
// created (and nothing else). An existing group of that name is an error,
// never joined.
func New(l *Layout, name string, lim Limits) (*Group, error) {
	g := &Group{layout: l, name: name}
	if err := g.create(lim); err != nil {
		for i := len(g.dirs) - 1; i >= 0; i-- {
			unix.Rmdir(g.dirs[i]) // empty: nothing has joined it yet
		}
		return nil, err
	}
	return g, nil
}

func (g *Group) create(lim Limits) error {
	if g.layout.Version == 2 {
		if err := enableV2Controllers(g.layout.hierarchies[""]); err != nil {
			return err
		}
	}
	for _, c := range Controllers {
		dir := g.Dir(c)
		if slices.Contains(g.dirs, dir) {
			continue
		}
		if err := os.Mkdir(dir, 0o755); err != nil {
			return fmt.Errorf("create the %s cgroup: %w", c, err)
		}
		g.dirs = append(g.dirs, dir)
	}
	return g.setLimits(lim)
}

// Name returns the group's path relative to this process's groups (an OCI
// bundle's cgroupsPath).
func (g *Group) Name() string { return g.name }

// Dir returns the group's directory for controller.
func (g *Group) Dir(controller string) string {
	return filepath.Join(g.layout.limit[controller], g.name)
}

func enableV2Controllers(dir string) error {
	have, _ := os.ReadFile(filepath.Join(dir, "cgroup.subtree_control"))
	var add []string
	for _, c := range Controllers {
		if !slices.Contains(strings.Fields(string(have)), c) {
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

// setting is one cgroup file to write; optional ones may be missing (no
// swap accounting, say).
type setting struct {
	controller, file, value string
	optional                bool
}

// setLimits writes the limits. Swap is capped at the memory limit (v1
// memsw) or disabled (v2) and swappiness set to 0 where the kernel has
// them, so that the memory limit cannot be stretched by swapping; on v2,
// memory.oom.group makes an OOM kill take the whole group.
func (g *Group) setLimits(lim Limits) error {
	mem := strconv.FormatInt(lim.MemoryBytes, 10)
	pids := strconv.Itoa(lim.PIDs)
	quota := strconv.Itoa(lim.CPUPercent * cpuPeriodMicros / 100)
	period := strconv.Itoa(cpuPeriodMicros)
	settings := []setting{
		{"memory", "memory.limit_in_bytes", mem, false},
		{"memory", "memory.memsw.limit_in_bytes", mem, true},
		{"memory", "memory.swappiness", "0", true},
		{"pids", "pids.max", pids, false},
		{"cpu", "cpu.cfs_period_us", period, false},
		{"cpu", "cpu.cfs_quota_us", quota, false},
	}
	if g.layout.Version == 2 {
		settings = []setting{
			{"memory", "memory.max", mem, false},
			{"memory", "memory.swap.max", "0", true},
			{"memory", "memory.oom.group", "1", true},
			{"pids", "pids.max", pids, false},
			{"cpu", "cpu.max", quota + " " + period, false},
		}
	}
	for _, s := range settings {
		err := writeFile(g.Dir(s.controller), s.file, s.value)
		if err != nil && !(s.optional && errors.Is(err, os.ErrNotExist)) {
			return fmt.Errorf("set cgroup limit %s to %s: %w", s.file, s.value, err)
		}
	}
	return nil
}

// Attach moves pid (and all its threads) into every directory of the
// group. The writes run concurrently: each migration waits for an RCU
// grace period (cgroup_threadgroup_rwsem), and concurrent writers share
// one.
func (g *Group) Attach(pid int) error {
	errs := make([]error, len(g.dirs))
	var wg sync.WaitGroup
	for i, d := range g.dirs {
		wg.Go(func() {
			if err := writeFile(d, "cgroup.procs", strconv.Itoa(pid)); err != nil {
				errs[i] = fmt.Errorf("attach to cgroup %s: %w", d, err)
			}
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}

// OOMKills returns how many processes the memory limit killed.
func (g *Group) OOMKills() int {
	file := "memory.oom_control"
	if g.layout.Version == 2 {
		file = "memory.events"
	}
	return counter(filepath.Join(g.Dir("memory"), file), "oom_kill")
}

// PIDsRefused returns how many times the pids limit refused a new task.
func (g *Group) PIDsRefused() int {
	return counter(filepath.Join(g.Dir("pids"), "pids.events"), "max")
}

// counter reads the "name value" line of a cgroup events file.
func counter(file, name string) int {
	data, err := os.ReadFile(file)
	if err != nil {
		return 0
	}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		if k, v, ok := strings.Cut(sc.Text(), " "); ok && k == name {
			n, _ := strconv.Atoi(strings.TrimSpace(v))
			return n
		}
	}
	return 0
}

// PIDs lists the host processes in the group.
func (g *Group) PIDs() []int { return procs(g.Dir("pids")) }

// Kill SIGKILLs every process in the group (cgroup.kill on v2 when the
// kernel has it).
func (g *Group) Kill() {
	for _, d := range g.Dirs() {
		if g.layout.Version == 2 && writeFile(d, "cgroup.kill", "1") == nil {
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

// Dirs returns every directory of the group: those created here and the
// group's place in every other hierarchy of this process, where a runtime
// that joins the group (runsc) makes the groups of the other controllers
// and leaves them behind when it is killed. Remove removes them all.
func (g *Group) Dirs() []string {
	dirs := slices.Clone(g.dirs)
	for _, d := range g.layout.hierarchies {
		if p := filepath.Join(d, g.name); !slices.Contains(dirs, p) {
			dirs = append(dirs, p)
		}
	}
	return dirs
}

// Remove kills what is left and removes every directory of the group,
// retrying for up to two seconds while the kernel still counts exiting
// tasks in it. It returns the first directory it could not remove.
func (g *Group) Remove() error {
	dirs := g.Dirs()
	pause := 50 * time.Microsecond
	deadline := time.Now().Add(2 * time.Second)
	for {
		var left []string
		var last error
		for i := len(dirs) - 1; i >= 0; i-- {
			err := unix.Rmdir(dirs[i])
			if err == nil || errors.Is(err, unix.ENOENT) {
				continue
			}
			left = append(left, dirs[i])
			if last == nil || !errors.Is(err, unix.EBUSY) {
				last = fmt.Errorf("remove cgroup %s: %w", dirs[i], err)
			}
		}
		if len(left) == 0 {
			g.dirs = nil
			return nil
		}
		if time.Now().After(deadline) || !errors.Is(last, unix.EBUSY) {
			return last
		}
		slices.Reverse(left)
		dirs = left
		g.Kill()
		time.Sleep(pause)
		pause = min(2*pause, 10*time.Millisecond)
	}
}

func writeFile(dir, file, value string) error {
	return os.WriteFile(filepath.Join(dir, file), []byte(value), 0)
}
