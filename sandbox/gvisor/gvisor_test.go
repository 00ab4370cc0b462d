//go:build linux

package gvisor

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ccos-project/ccos/sandbox"
)

// outcome is what one sandbox run produced.
type outcome struct {
	reply string // the guest's answer, empty when it ended before answering
	err   error  // what Wait returned
	log   []byte // the guest's standard error, as kept
	dir   string // the sandbox's private directory (gone after Wait)
	cg    []string
}

// hostile is a provider whose guest is the hostile test program.
func hostile() *Provider { return &Provider{Binary: hostileBinary, Raw: true} }

// run starts a sandbox of the hostile guest, with the attack (if any)
// written to its capabilities directory, sends a ping and collects the
// outcome.
func run(t *testing.T, spec sandbox.Spec, attack string) outcome {
	t.Helper()
	if spec.ID == "" {
		spec.ID = testID(t)
	}
	if attack != "" {
		spec.CapabilitiesDir = t.TempDir()
		if err := os.WriteFile(filepath.Join(spec.CapabilitiesDir, "attack"), []byte(attack), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	sb, err := hostile().Start(context.Background(), spec)
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	g := sb.(*gvSandbox)
	o := outcome{dir: g.dir}
	o.cg = g.cg.Dirs()
	if attack == "" {
		if _, err := fmt.Fprintln(sb.Control(), "ping"); err != nil {
			t.Logf("send ping: %v", err)
		}
	}
	o.reply, _ = bufio.NewReader(sb.Control()).ReadString('\n')
	o.reply = strings.TrimSpace(o.reply)
	o.err = sb.Wait()
	sb.Control().Close()
	o.log = sb.Log()
	return o
}

// testID names the test's sandboxes so that leftovers can be found.
func testID(t *testing.T) string {
	return "test-" + strings.NewReplacer("/", "-", " ", "_").Replace(t.Name())
}

// requireCleanedUp proves that nothing of the sandbox is left on the host.
func requireCleanedUp(t *testing.T, o outcome) {
	t.Helper()
	for _, p := range append([]string{o.dir}, o.cg...) {
		if _, err := os.Stat(p); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s is left after Wait (stat: %v)", p, err)
		}
	}
}

// requireNormalRun proves that the provider still works after an attack.
func requireNormalRun(t *testing.T) {
	t.Helper()
	o := run(t, sandbox.Spec{ID: testID(t) + "-after"}, "")
	if o.reply != "pong" || o.err != nil {
		t.Fatalf("normal run after the attack: reply %q, err %v, log %q", o.reply, o.err, o.log)
	}
	requireCleanedUp(t, o)
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
	ok, reason := (&Provider{Binary: ccosBinary}).Available()
	if !ok {
		t.Fatalf("gvisor provider unavailable on this machine: %s", reason)
	}
	t.Logf("available: %s", reason)
	for _, want := range []string{"release", "platform", "--network=none"} {
		if !strings.Contains(reason, want) {
			t.Errorf("Available detail %q does not mention %q", reason, want)
		}
	}
	if p := (&Provider{}); p.Name() != Name {
		t.Errorf("provider name %q", p.Name())
	}
}

func TestUnavailableReasons(t *testing.T) {
	tests := []struct {
		name string
		p    *Provider
		want string
	}{
		{"runsc missing", &Provider{Runsc: "runsc-not-installed-here", Binary: hostileBinary}, `Debian package "runsc"`},
		{"runsc too old", &Provider{Runsc: fakeRunsc(t, "runsc version 0.0~20200101.0"), Binary: hostileBinary}, "too old"},
		{"runsc without a date", &Provider{Runsc: fakeRunsc(t, "runsc version dev"), Binary: hostileBinary}, "cannot read a release date"},
		{"unknown platform", &Provider{Platform: "no-such-platform", Binary: hostileBinary}, `platform "no-such-platform" was asked for`},
		{"guest binary missing", &Provider{Binary: "/nonexistent/ccos"}, "guest binary"},
		{"guest binary not an ELF file", &Provider{Binary: fakeRunsc(t, "x")}, "not an ELF executable"},
		{"guest binary dynamically linked", &Provider{Binary: "/bin/sh"}, "dynamically linked"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ok, reason := tc.p.Available()
			if ok || !strings.Contains(reason, tc.want) {
				t.Fatalf("Available = %v, %q; want false and a reason with %q", ok, reason, tc.want)
			}
			_, err := tc.p.Start(context.Background(), sandbox.Spec{ID: testID(t)})
			if !errors.Is(err, sandbox.ErrUnavailable) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Start = %v; want ErrUnavailable with %q", err, tc.want)
			}
		})
	}
}

// fakeRunsc writes a script that answers --version with version.
func fakeRunsc(t *testing.T, version string) string {
	path := filepath.Join(t.TempDir(), "runsc")
	script := fmt.Sprintf("#!/bin/sh\necho '%s'\n", version)
	if err := os.WriteFile(path, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestChoosePlatform(t *testing.T) {
	tests := []struct {
		platforms []string
		want      string
	}{
		{[]string{"kvm", "ptrace", "systrap"}, "systrap"},
		{[]string{"ptrace"}, "ptrace"},
		{[]string{"kvm", "ptrace"}, map[bool]string{true: "kvm", false: "ptrace"}[kvmUsable() == ""]},
	}
	for _, tc := range tests {
		got, why := choosePlatform(tc.platforms)
		if got != tc.want || !strings.HasPrefix(why, got) {
			t.Errorf("choosePlatform(%v) = %q, %q; want %q", tc.platforms, got, why, tc.want)
		}
	}
}

func TestPingAndCleanup(t *testing.T) {
	o := run(t, sandbox.Spec{}, "")
	if o.reply != "pong" || o.err != nil {
		t.Fatalf("reply %q, err %v, log %q", o.reply, o.err, o.log)
	}
	requireCleanedUp(t, o)
}

func TestIdentity(t *testing.T) {
	o := run(t, sandbox.Spec{}, "identity")
	if o.err != nil {
		t.Fatalf("err %v, log %q", o.err, o.log)
	}
	for _, want := range []string{"Uid=1000,1000,1000,1000", "Gid=1000,1000,1000,1000", "CapPrm=0000000000000000",
		"CapEff=0000000000000000", "CapBnd=0000000000000000", "hostname=ccos-sandbox",
		"root=capabilities,ccos,dev,proc,sys,tmp,work ", "wd=/work", "env=HOME=/ "} {
		if !strings.Contains(o.reply+" ", want) {
			t.Errorf("identity %q lacks %q", o.reply, want)
		}
	}
}

// TestEscapes runs each attack of the hostile guest; each must be
// contained, with the expected error, and a normal sandbox must work right
// after.
func TestEscapes(t *testing.T) {
	secret := filepath.Join(t.TempDir(), "host-secret")
	if err := os.WriteFile(secret, []byte("secret"), 0o644); err != nil {
		t.Fatal(err)
	}
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
	port := fmt.Sprint(ln.Addr().(*net.TCPAddr).Port)

	tests := []struct {
		name   string
		attack string
		lim    sandbox.Limits
		reason sandbox.ExitReason // "" for a clean exit
		reply  string             // prefix of the expected reply
		check  func(t *testing.T, o outcome)
	}{
		{name: "write outside /work", attack: "write-outside", reply: "contained /escape:"},
		{name: "read host files", attack: "read-host " + secret, reply: "contained /etc/shadow"},
		{name: "network", attack: "network " + port, reply: "contained dial-127.0.0.1:" + port,
			check: func(t *testing.T, o outcome) {
				select {
				case c := <-accepted:
					c.Close()
					t.Fatal("the host listener accepted a connection from the sandbox")
				case <-time.After(100 * time.Millisecond):
				}
			}},
		{name: "mount, ptrace and other syscalls", attack: "syscalls", reply: "contained mount:"},
		{name: "fork bomb", attack: "fork-bomb", lim: sandbox.Limits{PIDs: 32, Deadline: 60 * time.Second}, reason: sandbox.ExitStatus,
			check: func(t *testing.T, o outcome) {
				if ee := requireExit(t, o.err, sandbox.ExitStatus); !strings.Contains(ee.Detail, "pids limit of 128 host tasks") {
					t.Errorf("detail %q does not name the pids limit", ee.Detail)
				}
			}},
		{name: "memory", attack: "alloc 1024", lim: sandbox.Limits{MemoryBytes: 192 << 20, Deadline: 60 * time.Second}, reason: sandbox.ExitMemory},
		{name: "deadline", attack: "spin", lim: sandbox.Limits{Deadline: 3 * time.Second}, reason: sandbox.ExitDeadline},
		{name: "workdir size", attack: "fill-work", lim: sandbox.Limits{WorkdirBytes: 8 << 20},
			reply: "contained workdir full after 8 MiB: no space left on device"},
		{name: "stderr flood", attack: "stderr-flood 2048", lim: sandbox.Limits{LogBytes: 4096, Deadline: 120 * time.Second}, reply: "wrote 2048 MiB",
			check: func(t *testing.T, o outcome) {
				if len(o.log) != 4096 {
					t.Errorf("kept %d bytes of log, want 4096", len(o.log))
				}
			}},
		{name: "exit status", attack: "exit 7", reason: sandbox.ExitStatus, reply: "exiting",
			check: func(t *testing.T, o outcome) {
				if ee := requireExit(t, o.err, sandbox.ExitStatus); ee.Status != 7 {
					t.Errorf("status %d, want 7", ee.Status)
				}
			}},
		{name: "crash", attack: "crash", reason: sandbox.ExitSignal},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			start := time.Now()
			o := run(t, sandbox.Spec{Limits: tc.lim}, tc.attack)
			t.Logf("%v: reply %q, err %v", time.Since(start).Round(time.Millisecond), o.reply, o.err)
			if strings.HasPrefix(o.reply, "ESCAPED") {
				t.Fatalf("escaped: %s", o.reply)
			}
			if !strings.HasPrefix(o.reply, tc.reply) {
				t.Errorf("reply %q, want it to start with %q (log %.300q)", o.reply, tc.reply, o.log)
			}
			if tc.reason == "" && o.err != nil {
				t.Errorf("Wait = %v, want a clean exit (log %.300q)", o.err, o.log)
			}
			if tc.reason != "" {
				requireExit(t, o.err, tc.reason)
			}
			if tc.check != nil {
				tc.check(t, o)
			}
			requireCleanedUp(t, o)
			requireNormalRun(t)
		})
	}
}

// TestLimitsWritten checks the cgroup a running sandbox sits in: the limits
// are the ones asked for and runsc's processes are in it.
func TestLimitsWritten(t *testing.T) {
	lim := sandbox.Limits{MemoryBytes: 200 << 20, PIDs: 40, CPUPercent: 50}
	spec := sandbox.Spec{ID: testID(t), Limits: lim, CapabilitiesDir: t.TempDir()}
	if err := os.WriteFile(filepath.Join(spec.CapabilitiesDir, "attack"), []byte("hold"), 0o644); err != nil {
		t.Fatal(err)
	}
	sb, err := hostile().Start(context.Background(), spec)
	if err != nil {
		t.Fatal(err)
	}
	defer sb.Control().Close()
	defer sb.Kill()
	if reply, _ := bufio.NewReader(sb.Control()).ReadString('\n'); reply != "ready\n" {
		t.Fatalf("reply %q, log %q", reply, sb.Log())
	}
	cg := sb.(*gvSandbox).cg
	files := []struct{ controller, file, want string }{
		{"memory", "memory.limit_in_bytes", fmt.Sprint(200 << 20)},
		{"pids", "pids.max", fmt.Sprint(40 + pidsOverhead)},
		{"cpu", "cpu.cfs_quota_us", "50000"},
		{"cpu", "cpu.cfs_period_us", "100000"},
	}
	if l, _ := cachedLayout(); l.Version == 2 {
		files = []struct{ controller, file, want string }{
			{"memory", "memory.max", fmt.Sprint(200 << 20)},
			{"pids", "pids.max", fmt.Sprint(40 + pidsOverhead)},
			{"cpu", "cpu.max", "50000 100000"},
		}
	}
	for _, f := range files {
		b, err := os.ReadFile(filepath.Join(cg.Dir(f.controller), f.file))
		if got := strings.TrimSpace(string(b)); err != nil || got != f.want {
			t.Errorf("%s = %q (%v), want %q", f.file, got, err, f.want)
		}
	}
	if n := len(cg.PIDs()); n < 2 {
		t.Errorf("%d processes in the sandbox's cgroup, want the sentry and the gofer at least", n)
	}
}

func TestKill(t *testing.T) {
	spec := sandbox.Spec{ID: testID(t), CapabilitiesDir: t.TempDir()}
	if err := os.WriteFile(filepath.Join(spec.CapabilitiesDir, "attack"), []byte("spin"), 0o644); err != nil {
		t.Fatal(err)
	}
	sb, err := hostile().Start(context.Background(), spec)
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(500 * time.Millisecond)
	for i := 0; i < 3; i++ {
		if err := sb.Kill(); err != nil {
			t.Fatalf("Kill #%d: %v", i+1, err)
		}
	}
	requireExit(t, sb.Wait(), sandbox.ExitKilled)
	sb.Control().Close()
	g := sb.(*gvSandbox)
	requireCleanedUp(t, outcome{dir: g.dir, cg: []string{g.cg.Dir("memory"), g.cg.Dir("pids"), g.cg.Dir("cpu")}})
	if err := g.cmd.Process.Signal(syscall.Signal(0)); err == nil {
		t.Errorf("runsc (pid %d) still runs after Kill", g.cmd.Process.Pid)
	}
}

func TestStartContextCancelled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	sb, err := hostile().Start(ctx, sandbox.Spec{ID: testID(t)})
	if err != nil {
		t.Fatal(err)
	}
	cancel()
	ee := requireExit(t, sb.Wait(), sandbox.ExitKilled)
	if !strings.Contains(ee.Detail, "context") {
		t.Errorf("detail %q does not name the context", ee.Detail)
	}
	sb.Control().Close()
}

func TestSetupFailure(t *testing.T) {
	// A capabilities directory that vanishes after the checks makes runsc
	// fail to build the sandbox: Wait must say so, as a setup failure.
	dir := t.TempDir()
	spec := sandbox.Spec{ID: testID(t), CapabilitiesDir: filepath.Join(dir, "caps")}
	if err := os.Mkdir(spec.CapabilitiesDir, 0o755); err != nil {
		t.Fatal(err)
	}
	st := &starter{p: hostile(), ctx: context.Background(), spec: spec}
	for _, s := range startSteps {
		if s.name == "start-runsc" {
			if err := os.Remove(spec.CapabilitiesDir); err != nil {
				t.Fatal(err)
			}
		}
		if err := s.run(st); err != nil {
			st.undo()
			t.Fatalf("%s: %v", s.name, err)
		}
	}
	sb := st.watch()
	ee := requireExit(t, sb.Wait(), sandbox.ExitSetup)
	if !strings.Contains(ee.Detail, "runsc") {
		t.Errorf("detail %q does not carry runsc's message", ee.Detail)
	}
	sb.Control().Close()
}
