//go:build linux

package gvisor

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ccos-project/ccos/sandbox"
)

// The cgroup controllers whose limits the provider sets; runsc joins the
// sandbox to the groups it finds and creates any other controller's group
// itself.
var limitControllers = []string{"memory", "pids", "cpu"}

// pidsOverhead is what the pids limit allows on top of Limits.PIDs for the
// sandbox's own host tasks: the sentry's and gofer's threads and the ptrace
// stubs' (an idle sandbox counted 34).
const pidsOverhead = 96

// cgroupLayout is where this process's cgroups are.
type cgroupLayout struct {
	v2 bool
	// dirs maps each v1 hierarchy (by its mount's controller list, e.g.
	// "cpu,cpuacct") to this process's group directory in it; for v2 the
	// single key "" is the unified group.
	dirs map[string]string
	// limit maps memory, pids and cpu to the directory holding their group
	// (the same directory for v2).
	limit map[string]string
}

// findCgroups reads /proc/self/cgroup and /proc/self/mountinfo. The host is
// taken as v2 only when /sys/fs/cgroup itself is a cgroup2 mount, the rule
// runsc follows too.
func findCgroups() (*cgroupLayout, error) {
	var st unix.Statfs_t
	if err := unix.Statfs("/sys/fs/cgroup", &st); err != nil {
		return nil, fmt.Errorf("no cgroup file system at /sys/fs/cgroup: %w", err)
	}
	own, err := ownCgroups()
	if err != nil {
		return nil, err
	}
	mounts, err := cgroupMounts()
	if err != nil {
		return nil, err
	}
	l := &cgroupLayout{v2: st.Type == unix.CGROUP2_SUPER_MAGIC, dirs: map[string]string{}, limit: map[string]string{}}
	if l.v2 {
		dir := filepath.Join("/sys/fs/cgroup", own[""])
		l.dirs[""] = dir
		for _, c := range limitControllers {
			l.limit[c] = dir
		}
		return l, nil
	}
	for key, path := range own {
		if key == "" {
			continue
		}
		mnt, ok := mounts.find(strings.Split(key, ","))
		if !ok {
			continue
		}
		l.dirs[key] = filepath.Join(mnt, path)
		for _, c := range strings.Split(key, ",") {
			l.limit[c] = l.dirs[key]
		}
	}
	return l, nil
}

// ownCgroups maps each hierarchy's controller list ("" for v2) to this
// process's path in it.
func ownCgroups() (map[string]string, error) {
	b, err := os.ReadFile("/proc/self/cgroup")
	if err != nil {
		return nil, fmt.Errorf("reading this process's cgroups: %w", err)
	}
	own := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		parts := strings.SplitN(line, ":", 3)
		if len(parts) == 3 {
			own[parts[1]] = parts[2]
		}
	}
	return own, nil
}

// v1Mount is one mounted cgroup v1 hierarchy.
type v1Mount struct {
	dir     string
	options []string // its super options: controllers, name=..., rw, ...
}

type v1Mounts []v1Mount

// find returns the mount point of the hierarchy holding all the controllers.
func (ms v1Mounts) find(controllers []string) (string, bool) {
	for _, m := range ms {
		all := true
		for _, c := range controllers {
			all = all && slices.Contains(m.options, c)
		}
		if all {
			return m.dir, true
		}
	}
	return "", false
}

// cgroupMounts lists the mounted cgroup v1 hierarchies.
func cgroupMounts() (v1Mounts, error) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return nil, fmt.Errorf("reading mounts: %w", err)
	}
	defer f.Close()
	var mounts v1Mounts
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		pre, post, ok := strings.Cut(sc.Text(), " - ")
		fields, postFields := strings.Fields(pre), strings.Fields(post)
		if ok && len(fields) >= 5 && len(postFields) >= 3 && postFields[0] == "cgroup" {
			mounts = append(mounts, v1Mount{dir: fields[4], options: strings.Split(postFields[2], ",")})
		}
	}
	return mounts, sc.Err()
}

// check says which limit this layout cannot enforce, if any.
func (l *cgroupLayout) check() error {
	for _, c := range limitControllers {
		dir, ok := l.limit[c]
		if !ok {
			return fmt.Errorf("the %s cgroup controller is not mounted, so the %s limit cannot be enforced", c, limitName(c))
		}
		if err := unix.Access(dir, unix.W_OK); err != nil {
			return fmt.Errorf("cannot create %s cgroups in %s (%v), so the %s limit cannot be enforced", c, dir, err, limitName(c))
		}
		if l.v2 {
			sub, err := os.ReadFile(filepath.Join(dir, "cgroup.subtree_control"))
			if err != nil || !slices.Contains(strings.Fields(string(sub)), c) {
				return fmt.Errorf("the %s controller is not enabled in %s/cgroup.subtree_control, so the %s limit cannot be enforced", c, dir, limitName(c))
			}
		}
	}
	return nil
}

func limitName(controller string) string {
	switch controller {
	case "memory":
		return "memory"
	case "pids":
		return "process"
	}
	return "CPU"
}

// cgroup is one sandbox's group, under this process's own group in every
// hierarchy.
type cgroup struct {
	layout *cgroupLayout
	name   string // relative path, also the bundle's cgroupsPath
}

// newCgroup creates the group and writes its limits. runsc, finding it
// existing, joins it and leaves its settings alone.
func newCgroup(l *cgroupLayout, name string, lim sandbox.Limits) (*cgroup, error) {
	cg := &cgroup{layout: l, name: name}
	for _, c := range limitControllers {
		if err := os.Mkdir(cg.dir(c), 0o755); err != nil && !errors.Is(err, os.ErrExist) {
			cg.remove()
			return nil, fmt.Errorf("creating the %s cgroup: %w", c, err)
		}
	}
	if err := cg.setLimits(lim); err != nil {
		cg.remove()
		return nil, err
	}
	return cg, nil
}

func (cg *cgroup) dir(controller string) string {
	return filepath.Join(cg.layout.limit[controller], cg.name)
}

// setting is one cgroup file to write; optional ones may be missing (no
// swap accounting, say).
type setting struct {
	controller, file, value string
	optional                bool
}

func (cg *cgroup) setLimits(lim sandbox.Limits) error {
	mem := strconv.FormatInt(lim.MemoryBytes, 10)
	pids := strconv.Itoa(lim.PIDs + pidsOverhead)
	quota := strconv.Itoa(lim.CPUPercent * 1000)
	settings := []setting{
		{"memory", "memory.limit_in_bytes", mem, false},
		{"memory", "memory.memsw.limit_in_bytes", mem, true},
		{"memory", "memory.swappiness", "0", true},
		{"pids", "pids.max", pids, false},
		{"cpu", "cpu.cfs_period_us", "100000", false},
		{"cpu", "cpu.cfs_quota_us", quota, false},
	}
	if cg.layout.v2 {
		settings = []setting{
			{"memory", "memory.max", mem, false},
			{"memory", "memory.swap.max", "0", true},
			{"memory", "memory.oom.group", "1", true},
			{"pids", "pids.max", pids, false},
			{"cpu", "cpu.max", quota + " 100000", false},
		}
	}
	for _, s := range settings {
		err := os.WriteFile(filepath.Join(cg.dir(s.controller), s.file), []byte(s.value), 0)
		if err != nil && !(s.optional && errors.Is(err, os.ErrNotExist)) {
			return fmt.Errorf("setting %s to %s: %w", s.file, s.value, err)
		}
	}
	return nil
}

// pids lists the host processes in the group.
func (cg *cgroup) pids() []int {
	b, _ := os.ReadFile(filepath.Join(cg.dir("pids"), "cgroup.procs"))
	var out []int
	for _, f := range strings.Fields(string(b)) {
		if pid, err := strconv.Atoi(f); err == nil {
			out = append(out, pid)
		}
	}
	return out
}

// kill sends SIGKILL to every process in the group.
func (cg *cgroup) kill() {
	if cg.layout.v2 {
		if os.WriteFile(filepath.Join(cg.dir("pids"), "cgroup.kill"), []byte("1"), 0) == nil {
			return
		}
	}
	for _, pid := range cg.pids() {
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
}

// pidsRefused returns how many times the pids limit refused a new task.
func (cg *cgroup) pidsRefused() int {
	return counter(filepath.Join(cg.dir("pids"), "pids.events"), "max")
}

// oomKills returns how many processes the memory limit killed.
func (cg *cgroup) oomKills() int {
	file := "memory.oom_control"
	if cg.layout.v2 {
		file = "memory.events"
	}
	return counter(filepath.Join(cg.dir("memory"), file), "oom_kill")
}

// counter reads the "name value" line of a cgroup events file.
func counter(file, name string) int {
	b, _ := os.ReadFile(file)
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, name+" "); ok {
			n, _ := strconv.Atoi(strings.TrimSpace(v))
			return n
		}
	}
	return 0
}

// remove kills what is left and removes the group in every hierarchy,
// including the groups runsc made itself for the other controllers (which
// it leaves behind when it is killed). The kernel refuses to remove a group
// until its exiting tasks are gone, so it retries for a while.
func (cg *cgroup) remove() error {
	dirs := map[string]bool{}
	for _, d := range cg.layout.dirs {
		dirs[filepath.Join(d, cg.name)] = true
	}
	for _, c := range limitControllers {
		dirs[cg.dir(c)] = true
	}
	var last error
	for try := 0; try < 200; try++ {
		last = nil
		for d := range dirs {
			err := unix.Rmdir(d)
			if err == nil || errors.Is(err, unix.ENOENT) {
				delete(dirs, d)
				continue
			}
			last = fmt.Errorf("removing cgroup %s: %w", d, err)
		}
		if len(dirs) == 0 {
			return nil
		}
		cg.kill()
		time.Sleep(5 * time.Millisecond)
	}
	return last
}
