//go:build linux

package process

import (
	"strings"
	"testing"

	"github.com/ccos-project/ccos/sandbox"
)

func TestParseLayout(t *testing.T) {
	const hybridMounts = `32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
39 31 0:36 / /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
`
	tests := []struct {
		name, mountinfo, self string
		want                  map[string]string // controller -> own directory
		wantV2                string
		wantErr               string
	}{
		{
			name:      "hybrid uses v1, nested own cgroup",
			mountinfo: hybridMounts,
			self:      "8:pids:/\n4:memory:/jobs/abc\n1:cpu:/\n0::/\n",
			want: map[string]string{
				"memory": "/sys/fs/cgroup/memory/jobs/abc",
				"pids":   "/sys/fs/cgroup/pids",
				"cpu":    "/sys/fs/cgroup/cpu",
			},
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
			wantErr:   `cgroup v1 controller "pids" is not mounted (needed for the Limits.PIDs limit)`,
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
			got, err := parseLayout(tt.mountinfo, tt.self)
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
				if got.version != 2 || got.v2 != tt.wantV2 {
					t.Fatalf("got v%d %q, want v2 %q", got.version, got.v2, tt.wantV2)
				}
				return
			}
			if got.version != 1 {
				t.Fatalf("got v%d, want v1", got.version)
			}
			for c, dir := range tt.want {
				if got.v1[c] != dir {
					t.Errorf("%s: %q, want %q", c, got.v1[c], dir)
				}
			}
		})
	}
}

func TestBoundedLog(t *testing.T) {
	l := &sandbox.LogBuffer{Max: 10}
	for _, w := range []string{"hello ", "world, ", "and more"} {
		if n, err := l.Write([]byte(w)); n != len(w) || err != nil {
			t.Fatalf("Write(%q) = %d, %v", w, n, err)
		}
	}
	if got := string(l.Bytes()); got != "hello worl" {
		t.Fatalf("kept %q, want %q", got, "hello worl")
	}
}

func TestCgroupName(t *testing.T) {
	n := cgroupName("run/../../etc 42")
	if strings.ContainsAny(n, "/ ") || !strings.HasPrefix(n, "ccos-run_.._.._etc_42-") {
		t.Fatalf("cgroupName = %q", n)
	}
}
