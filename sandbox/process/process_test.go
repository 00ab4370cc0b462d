//go:build linux

package process

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ccos-project/ccos/sandbox"
	"github.com/ccos-project/ccos/sandbox/cgroup"
)

// outcome is what one sandbox run produced.
type outcome struct {
	reply string // the guest's answer, empty when it ended before answering
	err   error  // what Wait returned
	log   []byte // the guest's standard error, as kept
}

// run starts a sandbox, sends one command and collects the outcome.
func run(t *testing.T, p *Provider, spec sandbox.Spec, command string) outcome {
	t.Helper()
	if spec.ID == "" {
		spec.ID = testID(t)
	}
	sb, err := p.Start(context.Background(), spec)
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	if _, err := fmt.Fprintln(sb.Control(), command); err != nil {
		t.Logf("send %q: %v", command, err)
	}
	reply, _ := bufio.NewReader(sb.Control()).ReadString('\n')
	werr := sb.Wait()
	sb.Control().Close()
	return outcome{strings.TrimSpace(reply), werr, sb.Log()}
}

// testID names the test's sandboxes so that leftovers can be found.
func testID(t *testing.T) string {
	return "test-" + strings.NewReplacer("/", "-", " ", "_").Replace(t.Name())
}

// requireNormalRun proves that the provider still works after an attack.
func requireNormalRun(t *testing.T) {
	t.Helper()
	o := run(t, &Provider{}, sandbox.Spec{ID: testID(t) + "-after"}, "ping")
	reply, err, log := o.reply, o.err, o.log
	if reply != "pong" || err != nil {
		t.Fatalf("normal run after the attack: reply %q, err %v, log %q", reply, err, log)
	}
}

func requireExit(t *testing.T, err error, want sandbox.ExitReason) *sandbox.ExitError {
	t.Helper()
	var ee *sandbox.ExitError
	if !errors.As(err, &ee) {
		t.Fatalf("Wait = %v, want an *ExitError with reason %s", err, want)
	}
	if ee.Reason != want {
		t.Fatalf("Wait = %v, want reason %s", err, want)
	}
	return ee
}

func TestAvailable(t *testing.T) {
	if ok, reason := (&Provider{}).Available(); !ok {
		t.Fatalf("process provider unavailable on this machine: %s", reason)
	}
	if (&Provider{}).Name() != Name {
		t.Fatalf("Name() = %q", (&Provider{}).Name())
	}
}

func TestNormalRun(t *testing.T) {
	o := run(t, &Provider{}, sandbox.Spec{}, "ping")
	reply, err, log := o.reply, o.err, o.log
	if reply != "pong" || err != nil {
		t.Fatalf("reply %q, err %v, log %q", reply, err, log)
	}
}

// TestIdentity checks what the guest is once set up: unprivileged uid, no
// capabilities at all, no_new_privs, seccomp filter mode, its own hostname,
// only lo (up), a root holding only what the guest needs, pid 1 of its own
// pid namespace, in /work.
func TestIdentity(t *testing.T) {
	o := run(t, &Provider{}, sandbox.Spec{CapabilitiesDir: capsDirFor(t)}, "identity")
	reply, err, log := o.reply, o.err, o.log
	if err != nil {
		t.Fatalf("err %v, log %q", err, log)
	}
	wantUID := "Uid=1000,1000,1000,1000"
	if os.Geteuid() != 0 {
		wantUID = "Uid=0,0,0,0"
	}
	for _, want := range []string{
		wantUID, "Groups= ", "CapPrm=0000000000000000", "CapEff=0000000000000000", "CapInh=0000000000000000",
		"CapBnd=0000000000000000", "CapAmb=0000000000000000", "NoNewPrivs=1", "Seccomp=2",
		"hostname=ccos-sandbox", "ifaces=lo:true ", "root=capabilities,ccos,dev,proc,work ", "pid=1 ", "wd=/work ", "sockets=3 ",
	} {
		if !strings.Contains(reply+" ", want) {
			t.Errorf("identity lacks %q:\n%s", want, reply)
		}
	}
}

// TestEscapes runs each attack in its own sandbox; each must be contained
// with a clear result, and a normal sandbox must work right after.
func TestEscapes(t *testing.T) {
	tests := []struct {
		name    string
		limits  sandbox.Limits
		command string
		check   func(t *testing.T, reply string, err error, log []byte)
	}{
		{
			// Only /work is writable: the root, /dev, /proc, the binary and
			// /capabilities give EROFS (or EACCES), host sysctls EACCES.
			name: "write outside workdir", command: "write-outside",
			check: containedWithStatus0,
		},
		{
			// The host's files are not in the sandbox's root at all.
			name: "read host secrets", command: "read-host",
			check: func(t *testing.T, reply string, err error, log []byte) {
				containedWithStatus0(t, reply, err, log)
				if !strings.Contains(reply, "/etc/shadow:no such file or directory") {
					t.Errorf("/etc/shadow should be absent: %s", reply)
				}
			},
		},
		{
			// Denied syscalls fail with EPERM (clone3: ENOSYS).
			name: "denied syscalls", command: "syscalls",
			check: func(t *testing.T, reply string, err error, log []byte) {
				if err != nil {
					t.Fatalf("err %v, log %q", err, log)
				}
				for _, a := range deniedSyscallAttempts {
					want := a.name + "=" + errnoText(a.want)
					if !strings.Contains(" "+reply+" ", " "+want+" ") {
						t.Errorf("want %s, got: %s", want, reply)
					}
				}
			},
		},
		{
			// The pids cgroup stops the fork bomb: forks fail (or the guest
			// dies); the pid namespace takes every bomb down with its init.
			name: "fork bomb", command: "fork-bomb", limits: sandbox.Limits{PIDs: 32},
			check: func(t *testing.T, reply string, err error, log []byte) {
				if strings.HasPrefix(reply, "contained") {
					t.Logf("%s (Wait: %v)", reply, err)
					return
				}
				var ee *sandbox.ExitError
				if !errors.As(err, &ee) {
					t.Fatalf("fork bomb neither reported a failed fork nor ended the guest: %q, %v", reply, err)
				}
				t.Logf("guest ended: %v", err)
			},
		},
		{
			name: "allocate past memory limit", command: "alloc", limits: sandbox.Limits{MemoryBytes: 64 << 20},
			check: func(t *testing.T, reply string, err error, log []byte) {
				ee := requireExit(t, err, sandbox.ExitMemory)
				t.Log(ee)
			},
		},
		{
			name: "spin past deadline", command: "spin", limits: sandbox.Limits{Deadline: time.Second},
			check: func(t *testing.T, reply string, err error, log []byte) {
				requireExit(t, err, sandbox.ExitDeadline)
			},
		},
		{
			// 2 GiB to stderr: the host keeps LogBytes and drains the rest.
			name: "flood stderr", command: "stderr-flood 2048", limits: sandbox.Limits{LogBytes: 64 << 10, Deadline: 2 * time.Minute},
			check: func(t *testing.T, reply string, err error, log []byte) {
				if err != nil || reply != "wrote 2048 MiB" {
					t.Fatalf("reply %q, err %v", reply, err)
				}
				if len(log) != 64<<10 {
					t.Errorf("log holds %d bytes, want exactly LogBytes = %d", len(log), 64<<10)
				}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var before runtime.MemStats
			runtime.ReadMemStats(&before)
			o := run(t, &Provider{}, sandbox.Spec{Limits: tt.limits}, tt.command)
			reply, err, log := o.reply, o.err, o.log
			if strings.HasPrefix(reply, "ESCAPED") {
				t.Fatalf("escape: %s", reply)
			}
			tt.check(t, reply, err, log)
			var after runtime.MemStats
			runtime.ReadMemStats(&after)
			if grew := int64(after.HeapInuse) - int64(before.HeapInuse); grew > 32<<20 {
				t.Errorf("host heap grew by %d bytes", grew)
			}
			requireNormalRun(t)
		})
	}
}

func containedWithStatus0(t *testing.T, reply string, err error, log []byte) {
	t.Helper()
	if err != nil || !strings.HasPrefix(reply, "contained") {
		t.Fatalf("reply %q, err %v, log %q", reply, err, log)
	}
	t.Log(reply)
}

// TestNoNetwork: the guest cannot create an inet socket, so it cannot reach
// a listener of the host on 127.0.0.1; the listener receives nothing.
func TestNoNetwork(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		if c, err := ln.Accept(); err == nil {
			accepted <- c
		}
	}()
	port := ln.Addr().(*net.TCPAddr).Port
	o := run(t, &Provider{}, sandbox.Spec{}, fmt.Sprintf("tcp-connect %d", port))
	reply, werr, log := o.reply, o.err, o.log
	containedWithStatus0(t, reply, werr, log)
	for _, want := range []string{"inet-stream:EPERM", "inet6-stream:EPERM", "netlink:EPERM", "packet:EPERM"} {
		if !strings.Contains(reply, want) {
			t.Errorf("want %s in %s", want, reply)
		}
	}
	// Everything the guest could do is done: the listener must be untouched.
	ln.Close()
	select {
	case c := <-accepted:
		c.Close()
		t.Fatalf("the host listener accepted a connection from %v", c.RemoteAddr())
	default:
	}
	requireNormalRun(t)
}

func TestExitReasons(t *testing.T) {
	t.Run("status", func(t *testing.T) {
		o := run(t, &Provider{}, sandbox.Spec{}, "exit 7")
		err := o.err
		if ee := requireExit(t, err, sandbox.ExitStatus); ee.Status != 7 {
			t.Fatalf("status %d, want 7", ee.Status)
		}
	})
	t.Run("signal", func(t *testing.T) {
		o := run(t, &Provider{}, sandbox.Spec{}, "segfault")
		err := o.err
		if ee := requireExit(t, err, sandbox.ExitSignal); ee.Status != int(syscall.SIGSEGV) {
			t.Fatalf("signal %d, want SIGSEGV", ee.Status)
		}
	})
	t.Run("killed", func(t *testing.T) {
		sb, err := (&Provider{}).Start(context.Background(), sandbox.Spec{ID: testID(t)})
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintln(sb.Control(), "spin")
		for i := 0; i < 3; i++ { // idempotent, from several goroutines
			go sb.Kill()
		}
		if err := sb.Kill(); err != nil {
			t.Fatal(err)
		}
		requireExit(t, sb.Wait(), sandbox.ExitKilled)
		sb.Control().Close()
	})
	t.Run("context", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		sb, err := (&Provider{}).Start(ctx, sandbox.Spec{ID: testID(t)})
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintln(sb.Control(), "spin")
		cancel()
		requireExit(t, sb.Wait(), sandbox.ExitKilled)
		sb.Control().Close()
	})
}

// TestSetupFailure: a failing child step ends the sandbox with ExitSetup
// naming the step, and leaves nothing behind.
func TestSetupFailure(t *testing.T) {
	for _, step := range []string{"wait-for-host", "mount-root-tmpfs", "pivot-root", "drop-uid", "seccomp"} {
		t.Run(step, func(t *testing.T) {
			o := run(t, &Provider{failStep: step}, sandbox.Spec{}, "ping")
			err := o.err
			ee := requireExit(t, err, sandbox.ExitSetup)
			if !strings.Contains(ee.Detail, step) {
				t.Fatalf("detail %q does not name step %s", ee.Detail, step)
			}
		})
	}
	hostErrors := []struct {
		name, capsDir, want string
	}{
		{"capabilities dir missing", "/nonexistent/caps", "check-spec: capabilities dir: stat /nonexistent/caps"},
		{"capabilities dir is a file", "/proc/self/exe", "is not a directory"},
	}
	if os.Geteuid() == 0 {
		private := t.TempDir()
		if err := os.Chmod(private, 0o700); err != nil {
			t.Fatal(err)
		}
		hostErrors = append(hostErrors, struct{ name, capsDir, want string }{
			"capabilities dir not world-readable", private, "needs o+rx"})
	}
	for _, tt := range hostErrors {
		t.Run(tt.name, func(t *testing.T) {
			sb, err := (&Provider{}).Start(context.Background(), sandbox.Spec{ID: testID(t), CapabilitiesDir: tt.capsDir})
			if err == nil {
				sb.Kill()
				sb.Control().Close()
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Start = %v, want an error containing %q", err, tt.want)
			}
		})
	}
}

// TestCapabilitiesReadOnly: /capabilities shows the host directory's files
// and refuses writes.
func TestCapabilitiesReadOnly(t *testing.T) {
	caps := capsDirFor(t)
	if err := os.WriteFile(filepath.Join(caps, "cap.rtfs"), []byte("(cap)"), 0o644); err != nil {
		t.Fatal(err)
	}
	o := run(t, &Provider{}, sandbox.Spec{CapabilitiesDir: caps}, "write-outside")
	reply, err, log := o.reply, o.err, o.log
	containedWithStatus0(t, reply, err, log)
	if !strings.Contains(reply, "/capabilities/escape:read-only file system") {
		t.Errorf("/capabilities should be read-only: %s", reply)
	}
	if _, err := os.Stat(filepath.Join(caps, "escape")); err == nil {
		t.Errorf("the guest wrote into the host's capabilities dir")
	}
}

// TestCgroupsCleanedUp runs sandboxes that end every way and then checks
// that none of their cgroup directories is left.
func TestCgroupsCleanedUp(t *testing.T) {
	id := testID(t)
	runs := []struct {
		provider *Provider
		limits   sandbox.Limits
		command  string
	}{
		{&Provider{}, sandbox.Limits{}, "ping"},
		{&Provider{}, sandbox.Limits{}, "exit 3"},
		{&Provider{}, sandbox.Limits{Deadline: 300 * time.Millisecond}, "spin"},
		{&Provider{}, sandbox.Limits{MemoryBytes: 48 << 20}, "alloc"},
		{&Provider{}, sandbox.Limits{PIDs: 16}, "fork-bomb"},
		{&Provider{failStep: "pivot-root"}, sandbox.Limits{}, "ping"},
	}
	for _, r := range runs {
		o := run(t, r.provider, sandbox.Spec{ID: id, Limits: r.limits}, r.command)
		t.Logf("%s: %q, %v", r.command, o.reply, o.err)
	}
	layout, err := cgroup.Find()
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range cgroup.Controllers {
		d := layout.Dir(c)
		left, _ := filepath.Glob(filepath.Join(d, "ccos-"+id+"-*"))
		if len(left) > 0 {
			t.Errorf("cgroups left behind: %v", left)
		}
	}
	// The host is fine: it can still start processes.
	if err := exec.Command("/bin/true").Run(); err != nil {
		t.Errorf("host cannot start a process: %v", err)
	}
}

// capsDirFor returns a capabilities directory the sandbox may read: t.TempDir
// is 0700 and its parent too, so the world-readable one lives beside them.
func capsDirFor(t *testing.T) string {
	d, err := os.MkdirTemp("", "ccos-caps-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(d) })
	if err := os.Chmod(d, 0o755); err != nil {
		t.Fatal(err)
	}
	return d
}
