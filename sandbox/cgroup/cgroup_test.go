//go:build linux

package cgroup

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ccos-project/ccos/internal/testenv"
)

func TestParseLayout(t *testing.T) {
	const hybridMounts = `32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
39 31 0:36 / /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,xattr,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
`
	tests := []struct {
		name, mountinfo, self string
		want                  map[string]string // controller -> own directory
		wantHierarchies       int
		wantV2                string
		wantErr               string
	}{
		{
			name:      "hybrid uses v1, nested own cgroup",
			mountinfo: hybridMounts,
			self:      "9:name=systemd:/user.slice\n8:pids:/\n4:memory:/jobs/abc\n1:cpu:/\n0::/\n",
			want: map[string]string{
				"memory": "/sys/fs/cgroup/memory/jobs/abc",
				"pids":   "/sys/fs/cgroup/pids",
				"cpu":    "/sys/fs/cgroup/cpu",
			},
			wantHierarchies: 4, // with name=systemd, where runsc makes groups too
		},
		{
			name:      "co-mounted cpu,cpuacct and a bind-mounted root",
			mountinfo: "32 31 0:29 /outer /sys/fs/cgroup/cpu,cpuacct rw - cgroup cgroup rw,cpu,cpuacct\n35 31 0:32 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory\n39 31 0:36 / /sys/fs/cgroup/pids rw - cgroup cgroup rw,pids\n",
			self:      "3:cpu,cpuacct:/outer/inner\n2:memory:/m\n1:pids:/p\n",
			want: map[string]string{
				"cpu":    "/sys/fs/cgroup/cpu,cpuacct/inner",
				"memory": "/sys/fs/cgroup/memory/m",
				"pids":   "/sys/fs/cgroup/pids/p",
			},
			wantHierarchies: 3,
		},
		{
			name:      "pure v2",
			mountinfo: "30 23 0:26 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw,nsdelegate\n",
			self:      "0::/user.slice/ccos.service\n",
			wantV2:    "/sys/fs/cgroup/user.slice/ccos.service",
		},
		{
			name:      "v1 without pids names the missing controller",
			mountinfo: "35 31 0:32 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory\n32 31 0:29 / /sys/fs/cgroup/cpu rw - cgroup cgroup rw,cpu\n",
			self:      "4:memory:/\n1:cpu:/\n",
			wantErr:   `cgroup v1 controller "pids" is not mounted (needed for the process (Limits.PIDs) limit)`,
		},
		{
			name:      "no cgroups at all",
			mountinfo: "27 1 254:0 / / rw - ext4 /dev/vda rw\n",
			self:      "",
			wantErr:   "no cgroup v1 controller and no cgroup v2 hierarchy is mounted",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseLayout(tt.mountinfo, tt.self)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if tt.wantV2 != "" {
				if got.Version != 2 || got.Dir("memory") != tt.wantV2 || got.hierarchies[""] != tt.wantV2 {
					t.Fatalf("got v%d %+v, want v2 %q", got.Version, got, tt.wantV2)
				}
				return
			}
			if got.Version != 1 || len(got.hierarchies) != tt.wantHierarchies {
				t.Fatalf("got v%d with hierarchies %v", got.Version, got.hierarchies)
			}
			for c, dir := range tt.want {
				if got.Dir(c) != dir {
					t.Errorf("%s: %q, want %q", c, got.Dir(c), dir)
				}
			}
		})
	}
}

// TestGroup makes a real group on this host: limits written, a process
// attached and counted, killed, and every directory removed.
func TestGroup(t *testing.T) {
	l, err := Find()
	if err == nil {
		err = l.Check()
	}
	if err != nil {
		testenv.Missing(t, "no usable cgroups: "+err.Error(), "run the tests as root on a host with the memory, pids and cpu controllers")
	}
	name := fmt.Sprintf("ccos-cgroup-test-%d", os.Getpid())
	g, err := New(l, name, Limits{MemoryBytes: 64 << 20, PIDs: 16, CPUPercent: 50})
	if err != nil {
		t.Fatal(err)
	}
	defer g.Remove()
	if _, err := New(l, name, Limits{MemoryBytes: 64 << 20, PIDs: 16, CPUPercent: 50}); err == nil {
		t.Fatal("an existing group was joined")
	}
	file, want := "pids.max", "16"
	if b, err := os.ReadFile(filepath.Join(g.Dir("pids"), file)); err != nil || strings.TrimSpace(string(b)) != want {
		t.Fatalf("%s = %q, %v", file, b, err)
	}
	cmd := exec.Command("sleep", "60")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	if err := g.Attach(cmd.Process.Pid); err != nil {
		cmd.Process.Kill()
		t.Fatal(err)
	}
	if pids := g.PIDs(); len(pids) != 1 || pids[0] != cmd.Process.Pid {
		t.Errorf("PIDs = %v, want [%d]", pids, cmd.Process.Pid)
	}
	g.Kill()
	if err := cmd.Wait(); err == nil || !strings.Contains(err.Error(), "killed") {
		t.Errorf("sleep ended with %v, want killed", err)
	}
	if err := g.Remove(); err != nil {
		t.Fatal(err)
	}
	for _, d := range g.Dirs() {
		if _, err := os.Stat(d); !os.IsNotExist(err) {
			t.Errorf("%s left behind: %v", d, err)
		}
	}
}
