package vmspec_test

import (
	"encoding/json"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/ccos-project/ccos/config"
	"github.com/ccos-project/ccos/internal/testenv"
	"github.com/ccos-project/ccos/sandbox/firecracker/contract"
	"github.com/ccos-project/ccos/vmspec"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

var host = vmspec.Host{BaseDir: "/srv/ccos", RuntimeDir: "/run/ccos", TSCKHz: 2400000, CCOSBinary: "/usr/local/bin/ccos", CapabilitiesDir: "/srv/ccos/capabilities"}

// examples are the repository's microVM configs.
var examples = []string{"microvm.rtfs", "microvm-min.rtfs", "microvm-networked.rtfs"}

func load(t *testing.T, name string) *config.Config {
	t.Helper()
	res, err := config.LoadFile(filepath.Join("..", "examples", name), config.RTFSEvaluator{})
	if err != nil {
		t.Fatal(err)
	}
	if res.Diags.HasErrors() {
		t.Fatalf("%s: %v", name, res.Diags)
	}
	return res.Config
}

func loadAPI(t *testing.T) *contract.API {
	t.Helper()
	api, err := contract.Load(testenv.Shared(t, contract.SharedFile))
	if err != nil {
		t.Fatal(err)
	}
	return api
}

// TestFirecrackerMatchesContract validates every document synthesised from
// the examples against FullVmConfiguration, and compares it with its golden
// file.
func TestFirecrackerMatchesContract(t *testing.T) {
	api := loadAPI(t)
	for _, name := range examples {
		t.Run(name, func(t *testing.T) {
			doc, err := vmspec.Firecracker(load(t, name), host)
			if err != nil {
				t.Fatal(err)
			}
			b, err := json.MarshalIndent(doc, "", "  ")
			if err != nil {
				t.Fatal(err)
			}
			if err := api.Validate("FullVmConfiguration", b); err != nil {
				t.Fatal(err)
			}
			golden(t, strings.TrimSuffix(name, ".rtfs")+".firecracker.json", append(b, '\n'))
		})
	}
}

func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	p := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(p, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(p)
	if err != nil {
		t.Fatalf("%v (run go test -update)", err)
	}
	if string(got) != string(want) {
		t.Fatalf("%s differs from the golden file:\n%s", name, got)
	}
}

func TestFirecrackerProperties(t *testing.T) {
	cfg := load(t, "microvm.rtfs")
	doc, err := vmspec.Firecracker(cfg, host)
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := json.Marshal(doc)
	var sections map[string]json.RawMessage
	_ = json.Unmarshal(raw, &sections)
	if _, ok := sections["balloon"]; ok {
		t.Error("the document has a balloon")
	}
	if !strings.Contains(string(sections["machine-config"]), `"smt":false`) {
		t.Errorf("smt is not written as false: %s", sections["machine-config"])
	}
	root := doc.Drives[0]
	if !root.IsRootDevice || !root.IsReadOnly || root.PathOnHost != "/srv/ccos/images/agent-rootfs.img" {
		t.Errorf("root drive %+v", root)
	}
	if doc.BootSource.InitrdPath != "/srv/ccos/images/agent-rootfs.initrd" {
		t.Errorf("initrd %q", doc.BootSource.InitrdPath)
	}
	args := strings.Fields(doc.BootSource.BootArgs)
	for _, want := range []string{"console=none", "panic=1", "reboot=k", "ccos.control=vsock:1024"} {
		if !slices.Contains(args, want) {
			t.Errorf("boot args %q lack %q", doc.BootSource.BootArgs, want)
		}
	}
	if m := doc.MachineConfig; m.VCPUCount != 1 || m.MemSizeMiB != 256 {
		t.Errorf("machine %+v", m)
	}
	dir := "/run/ccos/vm/" + vmspec.VMName(cfg.AgentID, "") + "/"
	if doc.Vsock == nil || doc.Vsock.GuestCID != 3 || !strings.HasPrefix(doc.Vsock.UDSPath, dir) {
		t.Errorf("vsock %+v, want cid 3 under %s", doc.Vsock, dir)
	}
	if n := doc.NetworkInterfaces; len(n) != 1 || len(n[0].HostDevName) > 15 {
		t.Errorf("network interfaces %+v", n)
	}
}

func TestNames(t *testing.T) {
	tests := []struct {
		id, instance, want string
	}{
		{"agent-1", "", "agent-1"},
		{"agent-1", "blue", "agent-1-blue"},
		{"agent.ops.vm", "", "agent-ops-vm-e2faa973"},
		{strings.Repeat("x", 80), "green", strings.Repeat("x", 32) + "-"},
		{"Agent_ONE", "Blue!", "agent-one-"},
	}
	for _, tt := range tests {
		got := vmspec.VMName(tt.id, tt.instance)
		if !strings.HasPrefix(got, tt.want) {
			t.Errorf("VMName(%q, %q) = %q", tt.id, tt.instance, got)
		}
		if len(got) > 64 || strings.Trim(got, "abcdefghijklmnopqrstuvwxyz0123456789-") != "" {
			t.Errorf("VMName(%q, %q) = %q is not a jailer id", tt.id, tt.instance, got)
		}
		if tap := vmspec.TapName(got); len(tap) > 15 {
			t.Errorf("TapName(%q) = %q is longer than 15 bytes", got, tap)
		}
	}
	if vmspec.VMName("agent.ops", "") == vmspec.VMName("agent-ops", "") {
		t.Error("sanitising made two agent ids collide")
	}
	if vmspec.VMName("a", "blue") == vmspec.VMName("a", "green") || vmspec.TapName("a-blue") == vmspec.TapName("a-green") {
		t.Error("two instances share a name")
	}
	if vmspec.VMName("agent.ops.vm", "") != "agent-ops-vm-e2faa973" {
		t.Errorf("VMName is not stable: %s", vmspec.VMName("agent.ops.vm", ""))
	}
}

func TestSynthesisErrors(t *testing.T) {
	tests := []struct {
		name    string
		mod     func(c *config.Config, h *vmspec.Host)
		wantErr error
		field   string
	}{
		{"no microvm", func(c *config.Config, _ *vmspec.Host) { c.MicroVM = nil }, vmspec.ErrNoMicroVM, ":microvm"},
		{"writable rootfs", func(c *config.Config, _ *vmspec.Host) { c.MicroVM.Rootfs.RO = false }, vmspec.ErrWritableRootfs, ":rootfs :ro"},
		{"rw boot arg", func(c *config.Config, _ *vmspec.Host) { c.MicroVM.Kernel.Cmdline = "console=none rw" }, vmspec.ErrReservedBootArg, `"rw"`},
		{"init boot arg", func(c *config.Config, _ *vmspec.Host) { c.MicroVM.Kernel.Cmdline = "init=/bin/sh" }, vmspec.ErrReservedBootArg, "init=/bin/sh"},
		{"ccos boot arg", func(c *config.Config, _ *vmspec.Host) { c.MicroVM.Kernel.Cmdline = "ccos.control=tcp" }, vmspec.ErrReservedBootArg, "ccos.control"},
		{"no vsock", func(c *config.Config, _ *vmspec.Host) { c.MicroVM.Devices.Vsock.Enabled = false }, vmspec.ErrNoControlChannel, ":vsock"},
		{"nic without proxy ns", func(c *config.Config, _ *vmspec.Host) { c.MicroVM.Devices.NIC.ProxyNS = nil }, vmspec.ErrNoProxyNS, ":proxy_ns"},
		{"long runtime dir", func(_ *config.Config, h *vmspec.Host) { h.RuntimeDir = "/" + strings.Repeat("r", 90) }, vmspec.ErrPathTooLong, "107"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := load(t, "microvm.rtfs")
			h := host
			tt.mod(cfg, &h)
			_, err := vmspec.Firecracker(cfg, h)
			if !errors.Is(err, tt.wantErr) || !strings.Contains(err.Error(), tt.field) {
				t.Fatalf("err = %v, want %v naming %s", err, tt.wantErr, tt.field)
			}
		})
	}
}

func TestStepLists(t *testing.T) {
	tests := []struct {
		got, want []string
	}{
		{vmspec.StepNames(vmspec.FirecrackerSteps()), []string{"require-microvm", "boot-source", "drives", "machine-config",
			"network-interfaces", "vsock", "logger", "metrics", "entropy"}},
		{vmspec.StepNames(vmspec.QEMUSteps()), []string{"require-microvm", "machine", "sandbox", "resources", "boot", "rootfs",
			"control-channel", "network", "monitor-and-console"}},
		{vmspec.StepNames(vmspec.OCISteps()), []string{"process", "root", "mounts", "namespaces", "resources", "hardening"}},
	}
	for _, tt := range tests {
		if !reflect.DeepEqual(tt.got, tt.want) {
			t.Errorf("steps %v, want %v", tt.got, tt.want)
		}
	}
}

func TestQEMU(t *testing.T) {
	for _, name := range examples {
		t.Run(name, func(t *testing.T) {
			argv, err := vmspec.QEMU(load(t, name), host)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := json.MarshalIndent(argv, "", "  ")
			golden(t, strings.TrimSuffix(name, ".rtfs")+".qemu.json", append(b, '\n'))
		})
	}
	cfg := load(t, "microvm-min.rtfs")
	h := host
	h.Accel = "tcg"
	argv, err := vmspec.QEMU(cfg, h)
	if err != nil {
		t.Fatal(err)
	}
	line := strings.Join(argv, " ")
	for _, want := range []string{
		"-M microvm,x-option-roms=off,isa-serial=on,rtc=on", "-accel tcg -cpu max", "-nodefaults -no-user-config -nographic -no-reboot",
		"-sandbox on,", "-m 256 -smp 1", "tsc_early_khz=2400000", "panic=-1 reboot=t", "readonly=on",
		"-device virtio-serial-device", "server=off", "virtserialport,chardev=c0,name=ctl", "-qmp unix:", "-serial file:",
	} {
		if !strings.Contains(line, want) {
			t.Errorf("command line lacks %q:\n%s", want, line)
		}
	}
	if i := slices.Index(argv, "-append"); i < 0 || strings.Count(argv[i+1], "console=") != 1 {
		t.Errorf("-append %v: want exactly the config's console", argv)
	}
	cfg.MicroVM.Resources.MemMB = 64
	if _, err := vmspec.QEMU(cfg, h); !errors.Is(err, vmspec.ErrTooLittleMemory) {
		t.Errorf("64 MiB: err = %v", err)
	}
	h.Accel = "hvf"
	cfg.MicroVM.Resources.MemMB = 128
	if _, err := vmspec.QEMU(cfg, h); err == nil {
		t.Error("accepted accelerator hvf")
	}
}

// A snapshot template maps its RAM file shared; a clone maps the same file
// private and waits for migrate-incoming; TCG's code cache is bounded.
func TestQEMUTemplateAndClone(t *testing.T) {
	cfg := load(t, "microvm-min.rtfs")
	h := host
	h.Accel, h.TBSizeMiB, h.MemoryBackend, h.MemoryShared, h.Hold = "tcg", 16, "/proc/self/fd/7", true, true
	tmpl, err := vmspec.QEMU(cfg, h)
	if err != nil {
		t.Fatal(err)
	}
	h.MemoryShared, h.Incoming = false, "defer"
	clone, err := vmspec.QEMU(cfg, h)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		argv       []string
		want, lack []string
	}{
		{tmpl, []string{"memory-backend=ram0", "-accel tcg,tb-size=16", "memory-backend-file,id=ram0,mem-path=/proc/self/fd/7,size=256M,share=on", "ccos.hold=1"}, []string{"-incoming"}},
		{clone, []string{"memory-backend=ram0", "mem-path=/proc/self/fd/7,size=256M,share=off", "-incoming defer"}, []string{"share=on"}},
	} {
		line := strings.Join(c.argv, " ")
		for _, w := range c.want {
			if !strings.Contains(line, w) {
				t.Errorf("lacks %q:\n%s", w, line)
			}
		}
		for _, w := range c.lack {
			if strings.Contains(line, w) {
				t.Errorf("has %q:\n%s", w, line)
			}
		}
	}
}

func TestOCI(t *testing.T) {
	cfg := load(t, "microvm.rtfs")
	s, err := vmspec.OCI(cfg, host)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := json.MarshalIndent(s, "", "  ")
	golden(t, "microvm.oci.json", append(b, '\n'))
	if !s.Root.Readonly || !s.Process.NoNewPrivileges || !reflect.DeepEqual(s.Process.Args, []string{"/ccos", "guest"}) {
		t.Errorf("root/process: %+v %+v", s.Root, s.Process)
	}
	if c := s.Process.Capabilities; c == nil || len(c.Bounding)+len(c.Effective)+len(c.Permitted)+len(c.Inheritable)+len(c.Ambient) != 0 {
		t.Errorf("capabilities not dropped: %+v", c)
	}
	for _, ns := range s.Linux.Namespaces {
		if ns.Path != "" {
			t.Errorf("namespace %s joins %s", ns.Type, ns.Path)
		}
	}
	if !slices.ContainsFunc(s.Linux.Namespaces, func(n specs.LinuxNamespace) bool { return n.Type == "network" }) {
		t.Error("no new network namespace")
	}
	if got := *s.Linux.Resources.Memory.Limit; got != 256<<20 {
		t.Errorf("memory limit %d", got)
	}
	mounts := map[string][]string{}
	for _, m := range s.Mounts {
		mounts[m.Destination] = m.Options
	}
	if !slices.Contains(mounts["/ccos"], "ro") || !slices.Contains(mounts["/capabilities"], "ro") {
		t.Errorf("binds not read-only: %v", mounts)
	}
	if _, ok := mounts["/work"]; !ok {
		t.Error("no /work tmpfs")
	}
	h := host
	h.CCOSBinary = ""
	if _, err := vmspec.OCI(cfg, h); !errors.Is(err, vmspec.ErrNoCCOSBinary) {
		t.Errorf("no binary: %v", err)
	}
}
