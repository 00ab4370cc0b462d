//go:build linux

package qemu

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/ccos-project/ccos/capability"
	"github.com/ccos-project/ccos/config"
	"github.com/ccos-project/ccos/control"
	"github.com/ccos-project/ccos/governance"
	"github.com/ccos-project/ccos/orchestrator"
	"github.com/ccos-project/ccos/plan"
	"github.com/ccos-project/ccos/rtfs"
	"github.com/ccos-project/ccos/sandbox"
)

func provider(name string, cfg *config.Config) *Provider {
	img := images[name]
	return New(Options{Config: cfg, Image: func(context.Context) (Image, error) { return img, nil }})
}

func TestAvailable(t *testing.T) {
	if ok, why := provider("guest", nil).Available(); !ok || !strings.Contains(why, "accelerator") {
		t.Errorf("Available() = %v, %q", ok, why)
	}
	if ok, why := New(Options{}).Available(); ok || !strings.Contains(why, "image") {
		t.Errorf("without an image: %v, %q", ok, why)
	}
	if ok, why := New(Options{Binary: "/nonexistent/qemu", Image: provider("guest", nil).o.Image}).Available(); ok || !strings.Contains(why, DebianPackages) {
		t.Errorf("without QEMU: %v, %q", ok, why)
	}
}

// A plan runs in a real VM end to end: steps, a workdir file, output; the
// host's measurements and the guest's claim agree.
func TestPlanEndToEnd(t *testing.T) {
	src := `(plan "vm" :body (do
	  (step "write" (call :ccos.io.write-file "note.txt" "inside the VM"))
	  (step "read" (println "read back") (call :ccos.io.read-file "note.txt"))))`
	p, err := plan.Read([]byte(src), "vm.rtfs")
	if err != nil {
		t.Fatal(err)
	}
	res := config.Load([]byte(`(-> (profile:minimal "agent.vm") (assoc-in [:capabilities :fs] {:enabled true :paths ["/work"]}) (assoc-in [:features] [:fs]))`), "cfg", config.RTFSEvaluator{})
	if res.Diags.HasErrors() {
		t.Fatal(res.Diags)
	}
	caps := capability.Builtins(nil)
	adm, err := governance.Admit(p, res.Config, caps, nil)
	if err != nil {
		t.Fatal(err)
	}
	rep, err := orchestrator.Run(context.Background(), orchestrator.Request{Plan: p, Admission: adm,
		Provider: provider("guest", nil), Caps: caps, Spec: sandbox.Spec{Limits: sandbox.Limits{Deadline: 60 * time.Second}}})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Error != nil || rtfs.Print(rep.Value) != `"inside the VM"` || rep.Output != "read back\n" {
		t.Fatalf("report: value %s error %+v output %q", rtfs.Print(rep.Value), rep.Error, rep.Output)
	}
	if rep.Measurements["rootfs"] == "" || rep.Measurements["kernel"] == "" || rep.Measurements["initrd"] == "" {
		t.Errorf("measurements: %v", rep.Measurements)
	}
	t.Logf("startup %v, total %v", rep.Startup, rep.Total)
}

// The VM cannot write its rootfs or device, sees no host files, shares
// and network, and its workdir is bounded; QEMU itself runs unprivileged
// under its seccomp filter.
func TestEscapes(t *testing.T) {
	p := provider("escape", nil)
	sb, err := p.Start(context.Background(), sandbox.Spec{ID: "escape", Limits: sandbox.Limits{Deadline: 60 * time.Second}})
	if err != nil {
		t.Fatal(err)
	}
	defer sb.Kill()
	pid := sb.(*box).cmd.Process.Pid
	status, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"Uid:\t65534\t65534\t65534\t65534", "Seccomp:\t2"} {
		if !strings.Contains(string(status), want) {
			t.Errorf("QEMU's /proc status lacks %q", want)
		}
	}
	sc := bufio.NewScanner(sb.Control())
	seen := 0
	for sc.Scan() {
		line := sc.Text()
		if line == "done" {
			break
		}
		seen++
		if !strings.HasPrefix(line, "contained ") {
			t.Errorf("%s", line)
		} else {
			t.Log(line)
		}
	}
	if seen < 9 {
		t.Fatalf("only %d checks reported (%v)\n%s", seen, sc.Err(), sb.Log())
	}
	sb.Control().Close()
	if err := sb.Wait(); err != nil {
		t.Errorf("wait: %v", err)
	}
}

// A guest that never ends is killed at the deadline, and everything of the
// VM is removed.
func TestDeadline(t *testing.T) {
	p := provider("hold", nil)
	dir := runtimeDir(t)
	p.o.RuntimeDir = dir
	sb, err := p.Start(context.Background(), sandbox.Spec{ID: "hold", Limits: sandbox.Limits{Deadline: 3 * time.Second}})
	if err != nil {
		t.Fatal(err)
	}
	err = sb.Wait()
	var ee *sandbox.ExitError
	if !errors.As(err, &ee) || ee.Reason != sandbox.ExitDeadline {
		t.Fatalf("wait: %v", err)
	}
	if left, _ := os.ReadDir(dir); len(left) != 0 {
		t.Errorf("runtime files left: %v", left)
	}
}

// Kill ends a running VM through QMP (or SIGKILL) and cleans up.
func TestKill(t *testing.T) {
	p := provider("hold", nil)
	dir := runtimeDir(t)
	p.o.RuntimeDir = dir
	sb, err := p.Start(context.Background(), sandbox.Spec{ID: "kill", Limits: sandbox.Limits{Deadline: time.Minute}})
	if err != nil {
		t.Fatal(err)
	}
	pid := sb.(*box).cmd.Process.Pid
	sb.Kill()
	var ee *sandbox.ExitError
	if err := sb.Wait(); !errors.As(err, &ee) || ee.Reason != sandbox.ExitKilled {
		t.Fatalf("wait: %v", err)
	}
	if _, err := os.Stat("/proc/" + strconv.Itoa(pid)); err == nil {
		t.Error("QEMU still runs")
	}
	if left, _ := os.ReadDir(dir); len(left) != 0 {
		t.Errorf("runtime files left: %v", left)
	}
}

// With attestation on, a rootfs that differs from :expect_rootfs_hash is
// refused before anything boots, and the error names both hashes.
func TestAttestationMismatchRefusesBoot(t *testing.T) {
	want := "sha256:" + strings.Repeat("ab", 32)
	cfg := &config.Config{AgentID: "agent.att", MicroVM: &config.MicroVM{
		Rootfs:      config.Rootfs{RO: true},
		Resources:   config.Resources{VCPUs: 1, MemMB: 128},
		Attestation: config.Attestation{Enabled: true, ExpectRootfsHash: &want}}}
	p := provider("guest", cfg)
	dir := runtimeDir(t)
	p.o.RuntimeDir = dir
	_, err := p.Start(context.Background(), sandbox.Spec{ID: "att"})
	var ae *sandbox.AttestationError
	if !errors.As(err, &ae) {
		t.Fatalf("err = %v, want an attestation error", err)
	}
	got, _ := measureFile(images["guest"].Rootfs)
	if !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), got) {
		t.Errorf("error does not name both hashes: %v (actual %s)", err, got)
	}
	if left, _ := os.ReadDir(dir); len(left) != 0 {
		t.Errorf("something was set up: %v", left)
	}
	// The right hash boots.
	cfg.MicroVM.Attestation.ExpectRootfsHash = &got
	sb, err := p.Start(context.Background(), sandbox.Spec{ID: "att-ok"})
	if err != nil {
		t.Fatal(err)
	}
	sb.Kill()
	sb.Wait()
}

// A kernel QEMU cannot boot ends the sandbox with QEMU's own message in
// the log; nothing hangs.
func TestBadKernel(t *testing.T) {
	img := images["guest"]
	img.Kernel = img.Rootfs
	p := New(Options{Image: func(context.Context) (Image, error) { return img, nil }})
	_, err := p.Start(context.Background(), sandbox.Spec{ID: "bad"})
	if err == nil || !strings.Contains(err.Error(), "before it was ready") && !strings.Contains(err.Error(), "QEMU exited before connecting") {
		t.Fatalf("err = %v", err)
	}
	if !strings.Contains(err.Error(), "qemu: linux kernel") {
		t.Errorf("the error lacks QEMU's own message: %v", err)
	}
}

// A runtime directory QEMU's user cannot reach is refused with a clear
// error.
func TestRuntimeDirNotTraversable(t *testing.T) {
	p := provider("guest", nil)
	p.o.RuntimeDir = t.TempDir() // 0700, owned by root
	_, err := p.Start(context.Background(), sandbox.Spec{ID: "perm"})
	if err == nil || !strings.Contains(err.Error(), "not reachable") {
		t.Fatalf("err = %v", err)
	}
}

// runtimeDir is a test directory QEMU's unprivileged user can traverse.
func runtimeDir(t *testing.T) string {
	dir := t.TempDir()
	for d := dir; d != "/" && d != os.TempDir(); d = filepath.Dir(d) {
		if err := os.Chmod(d, 0o711); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func measureFile(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	_, meas, err := New(Options{}).openMeasured(Image{Kernel: path, Initrd: path, Rootfs: path})
	if err != nil {
		return "", err
	}
	return meas["rootfs"], nil
}

// A guest without a console (console=none, as production configs ask)
// boots and speaks the protocol.
func TestNoConsole(t *testing.T) {
	cfg := &config.Config{AgentID: "agent.quiet", MicroVM: &config.MicroVM{Kernel: config.Kernel{Cmdline: "console=none"},
		Rootfs: config.Rootfs{RO: true}, Resources: config.Resources{VCPUs: 1, MemMB: 128}}}
	sb, err := provider("guest", cfg).Start(context.Background(), sandbox.Spec{ID: "quiet", Limits: sandbox.Limits{Deadline: time.Minute}})
	if err != nil {
		t.Fatal(err)
	}
	defer sb.Kill()
	c := control.NewConn(sb.Control(), control.HostSide, 0)
	if m, err := c.Recv(); err != nil || m.Type != control.TypeHello {
		t.Fatalf("first message: %+v %v\n%s", m, err, sb.Log())
	}
}

// With :devices :nic the guest's NIC ends in a namespace of its own where
// only the proxy listens: the guest reaches the proxy and nothing else, and
// the namespace is gone with the VM.
func TestNICReachesOnlyTheProxy(t *testing.T) {
	ns := "ccos-test-proxy"
	cfg := &config.Config{AgentID: "agent.nic", MicroVM: &config.MicroVM{Rootfs: config.Rootfs{RO: true},
		Resources: config.Resources{VCPUs: 1, MemMB: 128}, Devices: config.Devices{NIC: config.NIC{Enabled: true, ProxyNS: &ns}}}}
	var seen []string
	var mu sync.Mutex
	p := provider("nic", cfg)
	p.o.Proxy = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		seen = append(seen, r.Method+" "+r.URL.String())
		mu.Unlock()
		io.WriteString(w, "answered via the proxy")
	})
	sb, err := p.Start(context.Background(), sandbox.Spec{ID: "nic", Limits: sandbox.Limits{Deadline: time.Minute}})
	if err != nil {
		t.Fatal(err)
	}
	defer sb.Kill()
	nsName := sb.(*box).nic.name
	if _, err := os.Stat("/var/run/netns/" + nsName); err != nil {
		t.Errorf("namespace %s: %v", nsName, err)
	}
	sc := bufio.NewScanner(sb.Control())
	checks := 0
	for sc.Scan() && sc.Text() != "done" {
		checks++
		if !strings.HasPrefix(sc.Text(), "contained ") {
			t.Error(sc.Text())
		} else {
			t.Log(sc.Text())
		}
	}
	if checks != 4 {
		t.Fatalf("%d checks (%v)\n%s", checks, sc.Err(), sb.Log())
	}
	mu.Lock()
	if len(seen) != 1 || seen[0] != "GET http://origin.test/hello" {
		t.Errorf("the proxy saw %v", seen)
	}
	mu.Unlock()
	sb.Control().Close()
	sb.Wait()
	if _, err := os.Stat("/var/run/netns/" + nsName); err == nil {
		t.Errorf("namespace %s left behind", nsName)
	}
}

// A NIC without a proxy behind it is refused.
func TestNICWithoutProxyRefused(t *testing.T) {
	ns := "ccos-test-noproxy"
	cfg := &config.Config{AgentID: "agent.nic", MicroVM: &config.MicroVM{Rootfs: config.Rootfs{RO: true},
		Resources: config.Resources{VCPUs: 1, MemMB: 128}, Devices: config.Devices{NIC: config.NIC{Enabled: true, ProxyNS: &ns}}}}
	_, err := provider("nic", cfg).Start(context.Background(), sandbox.Spec{ID: "noproxy"})
	if !errors.Is(err, ErrNoProxy) {
		t.Fatalf("err = %v", err)
	}
}

// The host's end of the control channel breaks in the middle of a plan;
// QEMU reconnects and the link resumes: the plan finishes with every step
// and output line once.
func TestControlChannelReconnects(t *testing.T) {
	src := `(plan "vm" :body (do (step "a" (println "one") (call :ccos.math.add 1 2)) (step "b" (println "two") (call :ccos.string.concat "x" "y"))))`
	p, err := plan.Read([]byte(src), "vm.rtfs")
	if err != nil {
		t.Fatal(err)
	}
	res := config.Load([]byte(`(profile:minimal "agent.vm")`), "cfg", config.RTFSEvaluator{})
	caps := capability.Builtins(nil)
	adm, err := governance.Admit(p, res.Config, caps, nil)
	if err != nil {
		t.Fatal(err)
	}
	prov := &cuttingProvider{Provider: provider("guest", nil)}
	rep, err := orchestrator.Run(context.Background(), orchestrator.Request{Plan: p, Admission: adm, Provider: prov, Caps: caps,
		Spec: sandbox.Spec{Limits: sandbox.Limits{Deadline: 90 * time.Second}}})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Error != nil || rtfs.Print(rep.Value) != `"xy"` || rep.Output != "one\ntwo\n" || len(rep.Steps) != 2 {
		t.Fatalf("value %s error %+v output %q steps %v", rtfs.Print(rep.Value), rep.Error, rep.Output, rep.Steps)
	}
	if n := prov.box.link.Attaches; n < 2 {
		t.Errorf("the link was attached %d time(s): the cut did not happen", n)
	}
}

// cuttingProvider breaks the host's control connection of each VM right
// after it is ready, before the plan is sent.
type cuttingProvider struct {
	*Provider
	box *box
}

func (c *cuttingProvider) Start(ctx context.Context, sp sandbox.Spec) (sandbox.Sandbox, error) {
	sb, err := c.Provider.Start(ctx, sp)
	if err != nil {
		return nil, err
	}
	c.box = sb.(*box)
	c.box.link.DropTransport()
	return sb, nil
}

// The Firecracker control path of the guest's /init (listen on a vsock
// port, accept the host's connection) works in the real guest kernel: the
// test guest connects to it over vsock loopback, as this host has no vsock
// device to connect from.
func TestGuestVsockListener(t *testing.T) {
	sb, err := provider("vsock", nil).Start(context.Background(), sandbox.Spec{ID: "vsock", Limits: sandbox.Limits{Deadline: time.Minute}})
	if err != nil {
		t.Fatal(err)
	}
	defer sb.Kill()
	sc := bufio.NewScanner(sb.Control())
	for sc.Scan() && sc.Text() != "done" {
		if !strings.HasPrefix(sc.Text(), "ok ") {
			t.Errorf("%s\n%s", sc.Text(), sb.Log())
		}
	}
}

// With a snapshot directory, the first Start makes a template of a booted,
// warmed-up guest, and every Start clones it: plans run the same, and the
// template's measurements are the sandbox's.
func TestSnapshotStart(t *testing.T) {
	src := `(plan "snap" :body (step "a" (println "restored") (call :ccos.math.add 40 2)))`
	p, err := plan.Read([]byte(src), "snap.rtfs")
	if err != nil {
		t.Fatal(err)
	}
	res := config.Load([]byte(`(profile:minimal "agent.snap")`), "cfg", config.RTFSEvaluator{})
	caps := capability.Builtins(nil)
	adm, err := governance.Admit(p, res.Config, caps, nil)
	if err != nil {
		t.Fatal(err)
	}
	prov := provider("guest", nil)
	prov.o.SnapshotDir = t.TempDir()
	for i := 0; i < 2; i++ {
		rep, err := orchestrator.Run(context.Background(), orchestrator.Request{Plan: p, Admission: adm, Provider: prov, Caps: caps,
			Spec: sandbox.Spec{Limits: sandbox.Limits{Deadline: 2 * time.Minute}}})
		if err != nil {
			t.Fatalf("run %d: %v", i, err)
		}
		if rep.Error != nil || rtfs.Print(rep.Value) != "42" || rep.Output != "restored\n" {
			t.Fatalf("run %d: value %s error %+v output %q", i, rtfs.Print(rep.Value), rep.Error, rep.Output)
		}
		if !strings.HasPrefix(rep.Measurements[measTemplateMemory], "sha256-pages:") || !strings.HasPrefix(rep.Measurements[measTemplateState], "sha256:") || rep.Measurements["rootfs"] == "" {
			t.Errorf("run %d: measurements %v", i, rep.Measurements)
		}
		t.Logf("run %d: startup %v", i, rep.Startup)
	}
	for _, ext := range []string{".mem", ".state", ".json"} {
		if files, _ := filepath.Glob(filepath.Join(prov.o.SnapshotDir, "*"+ext)); len(files) != 1 {
			t.Errorf("template files %s: %v", ext, files)
		}
	}
}

// Clones of one template do not share random numbers, an identity or a
// workdir: each is handed fresh entropy, a hostname and a machine id of
// its own before anything runs, and mounts an empty workdir.
func TestClonesAreFreshMachines(t *testing.T) {
	prov := provider("random", nil)
	prov.o.SnapshotDir = t.TempDir()
	seen := map[string]bool{}
	for i := 0; i < 3; i++ {
		sb, err := prov.Start(context.Background(), sandbox.Spec{ID: "rnd", Limits: sandbox.Limits{Deadline: time.Minute}})
		if err != nil {
			t.Fatal(err)
		}
		b := sb.(*box)
		sc := bufio.NewScanner(sb.Control())
		var lines []string
		for sc.Scan() && sc.Text() != "done" {
			lines = append(lines, sc.Text())
		}
		sb.Kill()
		sb.Wait()
		if len(lines) != 3 || !strings.HasPrefix(lines[0], "random ") {
			t.Fatalf("clone %d said %q\n%s", i, lines, sb.Log())
		}
		if want := "identity " + b.hostname + " " + b.machineID; lines[1] != want || b.hostname == "" || len(b.machineID) != 32 {
			t.Errorf("clone %d: %q, host gave %q", i, lines[1], want)
		}
		if lines[2] != "workdir 0" {
			t.Errorf("clone %d sees another clone's workdir: %q", i, lines[2])
		}
		for _, l := range lines[:2] {
			if seen[l] {
				t.Fatalf("two clones share %q", l)
			}
			seen[l] = true
		}
	}
}

// Clones that write over their RAM leave the template as it was measured:
// its memory is a sealed memfd that they map copy on write, and that not
// even the host can write any more.
func TestTemplateUnchangedByClones(t *testing.T) {
	prov := provider("scribble", nil)
	prov.o.SnapshotDir = t.TempDir()
	for i := 0; i < 2; i++ {
		sb, err := prov.Start(context.Background(), sandbox.Spec{ID: "scribble", Limits: sandbox.Limits{Deadline: time.Minute}})
		if err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(sb.Control())
		if !sc.Scan() || !strings.HasPrefix(sc.Text(), "scribbled ") {
			t.Fatalf("clone %d: %q %v\n%s", i, sc.Text(), sc.Err(), sb.Log())
		}
		sb.Kill()
		sb.Wait()
	}
	if len(prov.templates) != 1 {
		t.Fatalf("%d templates", len(prov.templates))
	}
	for _, tm := range prov.templates {
		got, err := tm.measure()
		if err != nil {
			t.Fatal(err)
		}
		if got[measTemplateMemory] != tm.meas[measTemplateMemory] || got[measTemplateState] != tm.meas[measTemplateState] {
			t.Errorf("the template changed: %v, made as %v", got, tm.meas)
		}
		if _, err := tm.mem.WriteAt([]byte{1}, 4096); !errors.Is(err, syscall.EPERM) {
			t.Errorf("writing the sealed template memory: %v, want EPERM", err)
		}
		if err := tm.checkSealed(); err != nil {
			t.Error(err)
		}
	}
}

// A saved template whose memory or device state was changed after it was
// made is refused by measurement: no clone starts from it.
func TestChangedTemplateRefused(t *testing.T) {
	dir := t.TempDir()
	prov := provider("random", nil)
	prov.o.SnapshotDir = dir
	sb, err := prov.Start(context.Background(), sandbox.Spec{ID: "first", Limits: sandbox.Limits{Deadline: time.Minute}})
	if err != nil {
		t.Fatal(err)
	}
	sb.Kill()
	sb.Wait()
	for _, ext := range []string{".mem", ".state"} {
		t.Run(ext, func(t *testing.T) {
			files, _ := filepath.Glob(filepath.Join(dir, "*"+ext))
			if len(files) != 1 {
				t.Fatalf("template files: %v", files)
			}
			orig, err := os.ReadFile(files[0])
			if err != nil {
				t.Fatal(err)
			}
			changed := slices.Clone(orig)
			// One byte in the first page that holds data.
			i := slices.IndexFunc(changed, func(b byte) bool { return b != 0 })
			changed[i] ^= 0xff
			if err := os.WriteFile(files[0], changed, 0o600); err != nil {
				t.Fatal(err)
			}
			defer os.WriteFile(files[0], orig, 0o600)
			fresh := provider("random", nil) // a new process: nothing held in memory
			fresh.o.SnapshotDir = dir
			_, err = fresh.Start(context.Background(), sandbox.Spec{ID: "changed", Limits: sandbox.Limits{Deadline: time.Minute}})
			var ae *sandbox.AttestationError
			if !errors.As(err, &ae) || !strings.Contains(ae.Artifact, ext) || ae.Expected == ae.Actual {
				t.Fatalf("err = %v, want an attestation error naming the %s file", err, ext)
			}
			t.Log(err)
		})
	}
	// Restored, it loads and clones again.
	fresh := provider("random", nil)
	fresh.o.SnapshotDir = dir
	sb, err = fresh.Start(context.Background(), sandbox.Spec{ID: "again", Limits: sandbox.Limits{Deadline: time.Minute}})
	if err != nil {
		t.Fatal(err)
	}
	sb.Kill()
	sb.Wait()
}

// The page digest depends on the bytes only: a sparse file and a dense
// one with the same bytes measure the same, and any change shows.
func TestPageDigest(t *testing.T) {
	dir := t.TempDir()
	const size = 64 << 10
	dense := make([]byte, size)
	dense[5000], dense[40000] = 1, 2
	a := filepath.Join(dir, "dense")
	if err := os.WriteFile(a, dense, 0o600); err != nil {
		t.Fatal(err)
	}
	sparse, err := os.Create(filepath.Join(dir, "sparse"))
	if err != nil {
		t.Fatal(err)
	}
	sparse.Truncate(size)
	sparse.WriteAt([]byte{1}, 5000)
	sparse.WriteAt([]byte{2}, 40000)
	fa, _ := os.Open(a)
	defer fa.Close()
	da, err := pageDigest(fa, size, nil)
	if err != nil {
		t.Fatal(err)
	}
	var pages []int64
	db, err := pageDigest(sparse, size, func(off int64, _ []byte) error { pages = append(pages, off); return nil })
	if err != nil {
		t.Fatal(err)
	}
	if da != db || !slices.Equal(pages, []int64{4096, 36864}) {
		t.Errorf("dense %s, sparse %s, pages %v", da, db, pages)
	}
	sparse.WriteAt([]byte{3}, 60000)
	if dc, _ := pageDigest(sparse, size, nil); dc == da {
		t.Error("a changed byte did not change the digest")
	}
	sparse.Close()
}

// With snapshots on, a pool keeps warm clones: each run takes a clone that
// never ran anything, a clone handed out is never taken back, and a
// waiting clone that dies (here: QEMU killed) is replaced by a new one.
func TestPoolKeepsWarmClones(t *testing.T) {
	prov := provider("random", nil)
	prov.o.SnapshotDir = t.TempDir()
	prov.o.RuntimeDir = runtimeDir(t)
	pool := sandbox.NewPool(prov, sandbox.Spec{Limits: sandbox.Limits{Deadline: time.Minute}}, 1)
	defer pool.Close()
	waitReady := func() {
		deadline := time.Now().Add(2 * time.Minute)
		var seen error
		for pool.Stats().Ready == 0 {
			// A failed start is retried by the pool; report it only if
			// the pool never fills.
			if err := pool.Stats().LastFillError; err != nil && err != seen {
				seen = err
				t.Logf("a pooled start failed (the pool retries): %v", err)
			}
			if time.Now().After(deadline) {
				t.Fatalf("the pool did not fill (last error: %v)", seen)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	take := func() *box {
		waitReady()
		sb, err := pool.Start(context.Background(), sandbox.Spec{Limits: sandbox.Limits{Deadline: time.Minute}})
		if err != nil {
			t.Fatal(err)
		}
		b := sb.(*box)
		if tl, _ := TimelineOf(b); !tl.Clone {
			t.Fatal("the pool handed out a booted guest, not a clone")
		}
		return b
	}
	first := take()
	first.Kill()
	first.Wait()
	second := take()
	if second == first || second.hostname == first.hostname {
		t.Fatal("the pool handed out the same clone twice")
	}
	second.Kill()
	second.Wait()
	// A waiting clone that dies leaves the pool and is replaced.
	waitReady()
	died := pool.Stats().Died
	// The killed clones' QEMUs may still be exiting, and the waiting
	// one's may not be listed yet on a loaded host: wait for exactly one.
	var pids []int
	for end := time.Now().Add(20 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if pids = qemusUnder(prov.o.RuntimeDir); len(pids) == 1 || time.Now().After(end) {
			break
		}
	}
	if len(pids) != 1 {
		t.Fatalf("QEMU processes of the pool: %v", pids)
	}
	syscall.Kill(pids[0], syscall.SIGKILL)
	deadline := time.Now().Add(time.Minute)
	for pool.Stats().Died == died {
		if time.Now().After(deadline) {
			t.Fatal("the dead clone stayed in the pool")
		}
		time.Sleep(10 * time.Millisecond)
	}
	third := take()
	defer func() { third.Kill(); third.Wait() }()
	if third.hostname == second.hostname {
		t.Fatal("a dead clone was handed out")
	}
}

// qemusUnder returns the QEMU processes whose command line names dir.
func qemusUnder(dir string) []int {
	var out []int
	procs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, p := range procs {
		b, err := os.ReadFile(p)
		if err != nil || !strings.Contains(string(b), dir) || !strings.HasPrefix(string(b), "qemu-system") {
			continue
		}
		if pid, err := strconv.Atoi(filepath.Base(filepath.Dir(p))); err == nil {
			out = append(out, pid)
		}
	}
	return out
}
