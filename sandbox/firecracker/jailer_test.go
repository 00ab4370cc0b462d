package firecracker_test

import (
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/ccos-project/ccos/sandbox/firecracker"
)

func TestJailCommand(t *testing.T) {
	base := firecracker.Jail{Jailer: "/usr/bin/jailer", Firecracker: "/usr/bin/firecracker", ID: "agent-ops-vm-e2faa973", UID: 123, GID: 100}
	tests := []struct {
		name    string
		mod     func(j *firecracker.Jail)
		want    []string
		wantErr error
	}{
		{"minimal", func(*firecracker.Jail) {}, []string{"/usr/bin/jailer", "--id", "agent-ops-vm-e2faa973",
			"--exec-file", "/usr/bin/firecracker", "--uid", "123", "--gid", "100"}, nil},
		{"everything", func(j *firecracker.Jail) {
			j.CgroupVersion = 2
			j.Cgroups = []string{"memory.max=335544320", "pids.max=64"}
			j.ChrootBase = "/var/lib/ccos/jail"
			j.NetNS = "/var/run/netns/egress-proxy-ns"
			j.ResourceLimits = []string{"no-file=1024"}
			j.FirecrackerArgs = []string{"--api-sock", "/api.sock"}
		}, []string{"/usr/bin/jailer", "--id", "agent-ops-vm-e2faa973", "--exec-file", "/usr/bin/firecracker",
			"--uid", "123", "--gid", "100", "--cgroup-version", "2", "--cgroup", "memory.max=335544320",
			"--cgroup", "pids.max=64", "--chroot-base-dir", "/var/lib/ccos/jail", "--netns", "/var/run/netns/egress-proxy-ns",
			"--resource-limit", "no-file=1024", "--", "--api-sock", "/api.sock"}, nil},
		{"dotted id", func(j *firecracker.Jail) { j.ID = "agent.ops" }, nil, firecracker.ErrJailID},
		{"long id", func(j *firecracker.Jail) { j.ID = strings.Repeat("a", 65) }, nil, firecracker.ErrJailID},
		{"empty id", func(j *firecracker.Jail) { j.ID = "" }, nil, firecracker.ErrJailID},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			j := base
			tt.mod(&j)
			got, err := j.Command()
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("err = %v, want %v", err, tt.wantErr)
				}
				return
			}
			if err != nil || !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("Command() =\n%q, %v\nwant\n%q", got, err, tt.want)
			}
		})
	}
	for _, bad := range []func(j *firecracker.Jail){
		func(j *firecracker.Jail) { j.Firecracker = "firecracker" },
		func(j *firecracker.Jail) { j.CgroupVersion = 3 },
		func(j *firecracker.Jail) { j.UID = -1 },
	} {
		j := base
		bad(&j)
		if _, err := j.Command(); err == nil {
			t.Errorf("accepted %+v", j)
		}
	}
	if got := base.RootDir(); got != "/srv/jailer/firecracker/agent-ops-vm-e2faa973/root" {
		t.Errorf("RootDir = %s", got)
	}
}
