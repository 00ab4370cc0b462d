package firecracker_test

import (
	"context"
	"errors"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/ccos-project/ccos/config"
	"github.com/ccos-project/ccos/control"
	"github.com/ccos-project/ccos/image"
	"github.com/ccos-project/ccos/internal/testenv"
	"github.com/ccos-project/ccos/sandbox"
	"github.com/ccos-project/ccos/sandbox/firecracker"
	"github.com/ccos-project/ccos/sandbox/firecracker/contract"
	"github.com/ccos-project/ccos/sandbox/firecracker/fcapi"
	"github.com/ccos-project/ccos/vmspec"
)

func loadAPI(t *testing.T) *contract.API {
	t.Helper()
	api, err := contract.Load(testenv.Shared(t, contract.SharedFile))
	if err != nil {
		t.Fatal(err)
	}
	return api
}

// exampleVM synthesises the VM of one of the repository's example configs.
func exampleVM(t *testing.T, name string) fcapi.VMConfig {
	t.Helper()
	res, err := config.LoadFile(filepath.Join("..", "..", "examples", name), config.RTFSEvaluator{})
	if err != nil {
		t.Fatal(err)
	}
	if res.Diags.HasErrors() {
		t.Fatalf("%s: %v", name, res.Diags)
	}
	vm, err := vmspec.Firecracker(res.Config, vmspec.Host{BaseDir: "/srv/ccos", RuntimeDir: "/run/ccos"})
	if err != nil {
		t.Fatal(err)
	}
	return *vm
}

func TestAPISequence(t *testing.T) {
	api := loadAPI(t)
	tests := []struct {
		example string
		want    []string
	}{
		{"microvm.rtfs", []string{"/logger", "/metrics", "/machine-config", "/boot-source", "/drives/rootfs",
			"/network-interfaces/eth0", "/vsock", "/entropy", "/actions"}},
		{"microvm-min.rtfs", []string{"/logger", "/metrics", "/machine-config", "/boot-source", "/drives/rootfs",
			"/vsock", "/entropy", "/actions"}},
	}
	for _, tt := range tests {
		t.Run(tt.example, func(t *testing.T) {
			fake := newFakeAPI(t, api)
			vm := exampleVM(t, tt.example)
			steps := firecracker.APISteps(vm)
			if err := firecracker.Configure(context.Background(), fcapi.NewClient(fake.socket), steps); err != nil {
				t.Fatal(err)
			}
			var paths []string
			for _, r := range fake.got() {
				if r.Method != http.MethodPut {
					t.Errorf("%s %s: only PUT is used before boot", r.Method, r.Path)
				}
				paths = append(paths, r.Path)
			}
			if !reflect.DeepEqual(paths, tt.want) {
				t.Fatalf("requests\n got %v\nwant %v", paths, tt.want)
			}
			last := fake.got()[len(paths)-1]
			if string(last.Body) != `{"action_type":"InstanceStart"}` {
				t.Fatalf("last request body %s", last.Body)
			}
			if len(steps) != len(tt.want) {
				t.Fatalf("%d steps for %d requests", len(steps), len(tt.want))
			}
		})
	}
}

func TestAPIErrors(t *testing.T) {
	api := loadAPI(t)
	vm := exampleVM(t, "microvm-min.rtfs")
	tests := []struct {
		name     string
		path     string
		fail     failure
		step     string
		fault    string
		status   int
		requests int
	}{
		{"fault message", "/boot-source", failure{400, `{"fault_message": "The kernel file cannot be opened: No such file or directory (os error 2)"}`},
			"put-boot-source", "The kernel file cannot be opened: No such file or directory (os error 2)", 400, 4},
		{"server error without JSON", "/vsock", failure{500, "internal error\n"}, "put-vsock", "internal error", 500, 6},
		{"start refused", "/actions", failure{400, `{"fault_message": "Cannot start microvm that was already started"}`},
			"instance-start", "Cannot start microvm that was already started", 400, 8},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fake := newFakeAPI(t, api)
			fake.fail[tt.path] = tt.fail
			err := firecracker.Configure(context.Background(), fcapi.NewClient(fake.socket), firecracker.APISteps(vm))
			var se *firecracker.StepError
			var ae *fcapi.APIError
			if !errors.As(err, &se) || !errors.As(err, &ae) || !errors.Is(err, fcapi.ErrAPI) {
				t.Fatalf("err = %v, want a StepError wrapping an APIError", err)
			}
			if se.Step != tt.step || ae.FaultMessage != tt.fault || ae.Status != tt.status || ae.Path != tt.path {
				t.Fatalf("got step %q, %+v", se.Step, ae)
			}
			if n := len(fake.got()); n != tt.requests {
				t.Fatalf("%d requests, want %d (the sequence stops at the failure)", n, tt.requests)
			}
		})
	}
	t.Run("no socket", func(t *testing.T) {
		c := fcapi.NewClient(filepath.Join(t.TempDir(), "absent.sock"))
		err := c.PutMachineConfig(context.Background(), fcapi.MachineConfiguration{VCPUCount: 1, MemSizeMiB: 128})
		if err == nil || errors.Is(err, fcapi.ErrAPI) || !strings.Contains(err.Error(), "absent.sock") {
			t.Fatalf("err = %v", err)
		}
	})
}

// TestRequestBodiesMatchContract sends every model with every optional
// field set, and checks each body against its definition directly too.
func TestRequestBodiesMatchContract(t *testing.T) {
	api := loadAPI(t)
	bodies := []struct {
		def string
		v   any
	}{
		{"BootSource", fcapi.BootSource{KernelImagePath: "/k", BootArgs: "panic=1", InitrdPath: "/i"}},
		{"Drive", fcapi.Drive{DriveID: "rootfs", PathOnHost: "/r", IsRootDevice: true, IsReadOnly: true, CacheType: "Writeback", IOEngine: "Async"}},
		{"MachineConfiguration", fcapi.MachineConfiguration{VCPUCount: 2, MemSizeMiB: 512, HugePages: "2M"}},
		{"NetworkInterface", fcapi.NetworkInterface{IfaceID: "eth0", HostDevName: "ccos0123456789", GuestMAC: "06:00:00:00:00:01"}},
		{"Vsock", fcapi.Vsock{GuestCID: 3, UDSPath: "/v.sock"}},
		{"Logger", fcapi.Logger{LogPath: "/l", Level: "Warning", ShowLevel: true, ShowLogOrigin: true}},
		{"Metrics", fcapi.Metrics{MetricsPath: "/m"}},
		{"Balloon", fcapi.Balloon{AmountMiB: 0, DeflateOnOOM: true, StatsPollingIntervalS: 1}},
		{"EntropyDevice", fcapi.EntropyDevice{}},
		{"InstanceActionInfo", fcapi.InstanceActionInfo{ActionType: fcapi.ActionInstanceStart}},
		{"InstanceActionInfo", fcapi.InstanceActionInfo{ActionType: fcapi.ActionSendCtrlAltDel}},
		{"Error", fcapi.Error{FaultMessage: "x"}},
	}
	for _, b := range bodies {
		if err := api.ValidateValue(b.def, b.v); err != nil {
			t.Errorf("%T: %v", b.v, err)
		}
	}
}

func TestStartStepsOrder(t *testing.T) {
	var names []string
	for _, s := range firecracker.StartSteps() {
		names = append(names, s.Name)
	}
	want := []string{"check-available", "check-spec", "prepare-jail", "spawn-jailer", "wait-api-socket", "configure-vm", "connect-control"}
	if !reflect.DeepEqual(names, want) {
		t.Fatalf("start steps %v, want %v", names, want)
	}
}

func TestUnavailableHere(t *testing.T) {
	p := firecracker.New(firecracker.Options{Firecracker: "ccos-no-such-firecracker", Jailer: "ccos-no-such-jailer"})
	ok, reason := p.Available()
	if ok {
		t.Fatal("available without binaries")
	}
	for _, want := range []string{"no firecracker binary", "no jailer binary", "no VM configured"} {
		if !strings.Contains(reason, want) {
			t.Errorf("reason %q lacks %q", reason, want)
		}
	}
	if _, err := os.Stat(firecracker.KVMDevice); err != nil && !strings.Contains(reason, "no /dev/kvm") {
		t.Errorf("reason %q does not name the missing /dev/kvm", reason)
	}
	_, err := p.Start(context.Background(), sandbox.Spec{ID: "t1"})
	var se *firecracker.StepError
	if !errors.Is(err, sandbox.ErrUnavailable) || !errors.As(err, &se) || se.Step != "check-available" {
		t.Fatalf("Start = %v, want the unavailable reason from check-available", err)
	}
	if !strings.Contains(err.Error(), "no jailer binary") {
		t.Fatalf("Start error %q does not say why", err)
	}
}

func TestUnconfiguredSaysWhy(t *testing.T) {
	p := firecracker.New(firecracker.Options{})
	if ok, reason := p.Available(); !ok && reason == "" {
		t.Fatal("unavailable without a reason")
	}
}

// TestBoot boots a real VM from an image built here (the real /init, the
// installed cloud kernel) and runs a plan in it. It needs what this host
// lacks: KVM that can run a VM, and the firecracker and jailer binaries.
func TestBoot(t *testing.T) {
	if err := firecracker.CheckKVM(); err != nil {
		t.Skipf("skipping the boot test: %v", err)
	}
	for _, b := range []string{"firecracker", "jailer"} {
		if _, err := exec.LookPath(b); err != nil {
			t.Skipf("skipping the boot test: no %s binary on PATH", b)
		}
	}
	dir := t.TempDir()
	initBin := filepath.Join(dir, "ccos-init")
	build := exec.Command("go", "build", "-trimpath", "-o", initBin, "github.com/ccos-project/ccos/cmd/ccos-init")
	build.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH=amd64")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("building /init: %v\n%s", err, out)
	}
	initData, err := os.ReadFile(initBin)
	if err != nil {
		t.Fatal(err)
	}
	cfgPath := filepath.Join("..", "..", "examples", "microvm-min.rtfs")
	img, err := image.Build(context.Background(), image.Inputs{Init: initData, ConfigFile: cfgPath, Vsock: true}, filepath.Join(dir, "img"))
	if err != nil {
		t.Fatal(err)
	}
	vm := exampleVM(t, "microvm-min.rtfs")
	vm.BootSource.KernelImagePath, vm.BootSource.InitrdPath, vm.Drives[0].PathOnHost = img.Kernel, img.Initramfs, img.Rootfs
	p := firecracker.New(firecracker.Options{VM: &vm, ChrootBase: t.TempDir()})
	box, err := p.Start(context.Background(), sandbox.Spec{ID: "ccos-boot-test", Limits: sandbox.Limits{Deadline: time.Minute}})
	if err != nil {
		t.Fatal(err)
	}
	defer box.Kill()
	c := control.NewConn(box.Control(), control.HostSide, 0)
	m, err := c.Recv()
	if err != nil {
		t.Fatalf("no hello: %v\n%s", err, box.Log())
	}
	h, ok := m.Body.(*control.Hello)
	if !ok || h.Measurements["rootfs"] != img.Measurements.Rootfs {
		t.Fatalf("first message %+v, want a hello measuring the rootfs %s", m, img.Measurements.Rootfs)
	}
	if err := box.Kill(); err != nil {
		t.Fatal(err)
	}
	var ee *sandbox.ExitError
	if err := box.Wait(); !errors.As(err, &ee) || ee.Reason != sandbox.ExitKilled {
		t.Fatalf("Wait after Kill = %v; log:\n%s", err, box.Log())
	}
}
