package wasm

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ccos-project/ccos/sandbox"
)

// startMode starts the test guest and sends it its mode line.
func startMode(t *testing.T, p *Provider, spec sandbox.Spec, mode string) (sandbox.Sandbox, *bufio.Reader) {
	t.Helper()
	sb, err := p.Start(context.Background(), spec)
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() { sb.Kill() })
	// The deadline cases give the guest a second: far more than it needs
	// to read this line, so that the case tests what it names.
	if _, err := io.WriteString(sb.Control(), mode+"\n"); err != nil {
		t.Fatalf("sending mode %q: %v (guest ended: %v)", mode, err, sb.Wait())
	}
	return sb, bufio.NewReader(sb.Control())
}

// roundTrip proves the provider still runs a normal guest.
func roundTrip(t *testing.T, p *Provider) {
	t.Helper()
	sb, r := startMode(t, p, sandbox.Spec{ID: "echo"}, "echo")
	for i := range 3 {
		msg := fmt.Sprintf("ping %d\n", i)
		if _, err := io.WriteString(sb.Control(), msg); err != nil {
			t.Fatalf("echo write: %v", err)
		}
		got, err := r.ReadString('\n')
		if err != nil || got != msg {
			t.Fatalf("echo read = %q, %v; want %q", got, err, msg)
		}
	}
	sb.Control().Close()
	if err := sb.Wait(); err != nil {
		t.Fatalf("echo Wait: %v\nlog: %s", err, sb.Log())
	}
}

// probes reads "NAME ok" / "NAME err: ..." lines up to "end".
func probes(t *testing.T, r *bufio.Reader) map[string]string {
	t.Helper()
	out := map[string]string{}
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			t.Fatalf("reading probes: %v (so far %v)", err, out)
		}
		line = strings.TrimSuffix(line, "\n")
		if line == "end" {
			return out
		}
		name, result, _ := strings.Cut(line, " ")
		out[name] = result
	}
}

func wantReason(t *testing.T, err error, want sandbox.ExitReason) *sandbox.ExitError {
	t.Helper()
	if want == "" {
		if err != nil {
			t.Fatalf("Wait = %v, want a clean exit", err)
		}
		return nil
	}
	var exit *sandbox.ExitError
	if !errors.As(err, &exit) {
		t.Fatalf("Wait = %v (%T), want *sandbox.ExitError %s", err, err, want)
	}
	if exit.Reason != want {
		t.Fatalf("Wait reason = %s (%v), want %s", exit.Reason, exit, want)
	}
	return exit
}

func TestRoundTrip(t *testing.T) {
	roundTrip(t, testWasm)
}

// TestEscapes runs each hostile guest, checks how it ended and what it
// could do, then checks that a normal guest still runs.
func TestEscapes(t *testing.T) {
	token := fmt.Sprintf("ccos-escape-%d", time.Now().UnixNano())
	capDir := t.TempDir()
	if err := os.WriteFile(filepath.Join(capDir, "cap.txt"), []byte("capability"), 0o644); err != nil {
		t.Fatal(err)
	}
	const logBytes = 4096
	tests := []struct {
		name   string
		spec   sandbox.Spec
		mode   string
		check  func(t *testing.T, sb sandbox.Sandbox, r *bufio.Reader)
		reason sandbox.ExitReason
	}{
		{
			name: "files outside /work",
			spec: sandbox.Spec{CapabilitiesDir: capDir},
			mode: "files " + token,
			check: func(t *testing.T, _ sandbox.Sandbox, r *bufio.Reader) {
				got := probes(t, r)
				allowed := map[string]bool{"write-work": true, "read-work": true, "read-capabilities": true}
				for name, result := range got {
					if ok := result == "ok"; ok != allowed[name] {
						t.Errorf("probe %s: %s (allowed: %v)", name, result, allowed[name])
					}
				}
				if len(got) != 18 {
					t.Errorf("got %d probes, want 18: %v", len(got), got)
				}
				for _, dir := range []string{"/", "/etc", "/tmp", os.TempDir(), filepath.Dir(os.TempDir()), capDir, "."} {
					if _, err := os.Lstat(filepath.Join(dir, token)); !errors.Is(err, os.ErrNotExist) {
						t.Errorf("the guest created %s on the host (%v)", filepath.Join(dir, token), err)
					}
				}
			},
		},
		{
			name: "fill the workdir past its quota",
			spec: sandbox.Spec{Limits: sandbox.Limits{WorkdirBytes: 1 << 20}},
			mode: "fill",
			check: func(t *testing.T, _ sandbox.Sandbox, r *bufio.Reader) {
				line, _ := r.ReadString('\n')
				var wrote int
				if _, err := fmt.Sscanf(line, "wrote %d err:", &wrote); err != nil {
					t.Fatalf("fill said %q", line)
				}
				// One block is the file's own entry.
				if wrote > 1<<20-blockSize || wrote < 1<<20-2*64<<10 {
					t.Errorf("wrote %d bytes to /work with a quota of %d", wrote, 1<<20)
				}
				if line, _ := r.ReadString('\n'); !strings.HasPrefix(line, "truncate err: ") || strings.Contains(line, "<nil>") {
					t.Errorf("sparse truncate to 1 TiB: %q", line)
				}
				// With the file removed, empty directories fill the quota
				// at one block each.
				line, _ = r.ReadString('\n')
				var dirs int
				if _, err := fmt.Sscanf(line, "made %d dirs err:", &dirs); err != nil || dirs > 1<<20/blockSize || dirs < 1<<20/blockSize-2 {
					t.Errorf("mkdir until refused: %q", line)
				}
				probes(t, r)
			},
		},
		{
			name:  "network",
			mode:  "", // set by check: needs the listener's port
			check: nil,
		},
		{
			name:   "allocate past the memory limit",
			spec:   sandbox.Spec{Limits: sandbox.Limits{MemoryBytes: 64 << 20}},
			mode:   "alloc",
			reason: sandbox.ExitMemory,
		},
		{
			name:   "spin past the deadline",
			spec:   sandbox.Spec{Limits: sandbox.Limits{Deadline: time.Second}},
			mode:   "spin",
			reason: sandbox.ExitDeadline,
		},
		{
			name:   "sleep past the deadline",
			spec:   sandbox.Spec{Limits: sandbox.Limits{Deadline: time.Second}},
			mode:   "sleep",
			reason: sandbox.ExitDeadline,
		},
		{
			name:   "block on the control channel past the deadline",
			spec:   sandbox.Spec{Limits: sandbox.Limits{Deadline: time.Second}},
			mode:   "block",
			reason: sandbox.ExitDeadline,
		},
		{
			name:   "write stdout nobody reads past the deadline",
			spec:   sandbox.Spec{Limits: sandbox.Limits{Deadline: time.Second}},
			mode:   "stdout",
			reason: sandbox.ExitDeadline,
		},
		{
			name: "killed while blocked",
			mode: "block",
			check: func(t *testing.T, sb sandbox.Sandbox, _ *bufio.Reader) {
				if err := sb.Kill(); err != nil {
					t.Errorf("Kill: %v", err)
				}
			},
			reason: sandbox.ExitKilled,
		},
		{
			name: "gigabytes on stderr",
			spec: sandbox.Spec{Limits: sandbox.Limits{LogBytes: logBytes}},
			mode: "stderr " + strconv.Itoa(4<<30),
			check: func(t *testing.T, sb sandbox.Sandbox, r *bufio.Reader) {
				if line, _ := r.ReadString('\n'); line != fmt.Sprintf("wrote %d\n", 4<<30) {
					t.Errorf("guest said %q", line)
				}
				if err := sb.Wait(); err != nil {
					t.Fatalf("Wait: %v", err)
				}
				if log := sb.Log(); !bytes.Equal(log, bytes.Repeat([]byte("x"), logBytes)) {
					t.Errorf("Log() has %d bytes, want %d x", len(log), logBytes)
				}
			},
		},
		{
			name: "malformed output passes through",
			mode: "garbage {{not a frame",
			check: func(t *testing.T, _ sandbox.Sandbox, r *bufio.Reader) {
				got, err := io.ReadAll(r)
				if want := "{{not a frame\x00\xff\xfe\n\x80"; err != nil || string(got) != want {
					t.Errorf("stdout = %q, %v; want %q", got, err, want)
				}
			},
		},
		{
			name: "no arguments or environment",
			mode: "env",
			check: func(t *testing.T, _ sandbox.Sandbox, r *bufio.Reader) {
				if line, _ := r.ReadString('\n'); line != `args=["ccos-guest"] env=[]`+"\n" {
					t.Errorf("guest sees %q", line)
				}
			},
		},
		{
			name: "real clock",
			mode: "clock",
			check: func(t *testing.T, _ sandbox.Sandbox, r *bufio.Reader) {
				line, _ := r.ReadString('\n')
				sec, err := strconv.ParseInt(strings.TrimSpace(line), 10, 64)
				if d := time.Since(time.Unix(sec, 0)).Abs(); err != nil || d > time.Hour {
					t.Errorf("guest clock says %q, host %d", line, time.Now().Unix())
				}
			},
		},
		{
			name:   "exit status",
			mode:   "exit 7",
			reason: sandbox.ExitStatus,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.name == "network" {
				testNetwork(t)
				roundTrip(t, testWasm)
				return
			}
			sb, r := startMode(t, testWasm, tt.spec, tt.mode)
			if tt.check != nil {
				tt.check(t, sb, r)
			}
			exit := wantReason(t, sb.Wait(), tt.reason)
			if tt.reason == sandbox.ExitStatus && exit.Status != 7 {
				t.Errorf("status = %d, want 7", exit.Status)
			}
			roundTrip(t, testWasm)
		})
	}
}

// testNetwork listens on the host and lets the guest try to reach it and
// to use the wasip1 socket calls (sock_accept, sock_shutdown) on every low
// fd: there is no socket to accept on or shut down, and no import that
// could create one (TestForeignImportRefused).
func testNetwork(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	accepted := 0
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			accepted++
			mu.Unlock()
			c.Close()
		}
	}()
	port := strconv.Itoa(l.Addr().(*net.TCPAddr).Port)
	sb, r := startMode(t, testWasm, sandbox.Spec{}, "net "+port)
	got := probes(t, r)
	wantReason(t, sb.Wait(), "")
	l.Close()
	<-done
	if !strings.HasPrefix(got["dial"], "err: ") {
		t.Errorf("dial to the host: %q, want an error", got["dial"])
	}
	// Go's net package on wasip1 simulates listeners inside the guest
	// process (net_fake.go), so listen may succeed; it reaches nothing on
	// the host, which the raw socket probes below show for the host side.
	if _, ok := got["listen"]; !ok {
		t.Errorf("listen probe missing: %v", got)
	}
	for name, result := range got {
		if strings.HasPrefix(name, "sock_") {
			t.Errorf("%s succeeded: %s", name, result)
		}
	}
	if got["raw-sockets"] != "ok" {
		t.Errorf("socket probe did not finish: %v", got)
	}
	if accepted != 0 {
		t.Errorf("the host listener accepted %d connections from the guest", accepted)
	}
}

func TestForeignImportRefused(t *testing.T) {
	p := New(Options{Source: FileModule(badImport), CacheDir: testCache})
	defer p.Close(context.Background())
	_, err := p.Start(context.Background(), sandbox.Spec{})
	if !errors.Is(err, ErrForeignImport) || !strings.Contains(err.Error(), "wasi_snapshot_preview1.sock_open") {
		t.Fatalf("Start = %v, want ErrForeignImport naming sock_open", err)
	}
	roundTrip(t, testWasm)
}

func TestModuleVerification(t *testing.T) {
	wasm, err := os.ReadFile(testGuest)
	if err != nil {
		t.Fatal(err)
	}
	good, err := os.ReadFile(testGuest + ".sha256")
	if err != nil {
		t.Fatal(err)
	}
	tampered := append(bytes.Clone(wasm), 0)
	tests := []struct {
		name   string
		wasm   []byte // nil: no module file
		digest []byte // nil: no digest file
		want   error
	}{
		{"module missing", nil, good, ErrModuleMissing},
		{"digest missing", wasm, nil, ErrModuleMissing},
		{"module changed after build", tampered, good, ErrModuleDigest},
		{"digest not hex", wasm, []byte("not-a-digest  guest.wasm\n"), ErrModuleDigest},
		{"digest empty", wasm, []byte("\n"), ErrModuleDigest},
		{"digest truncated", wasm, good[:32], ErrModuleDigest},
		{"valid", wasm, good, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "guest.wasm")
			if tt.wasm != nil {
				os.WriteFile(path, tt.wasm, 0o644)
			}
			if tt.digest != nil {
				os.WriteFile(path+".sha256", tt.digest, 0o644)
			}
			p := New(Options{Source: FileModule(path), CacheDir: testCache})
			defer p.Close(context.Background())
			ok, reason := p.Available()
			if ok != (tt.want == nil) {
				t.Fatalf("Available = %v, %q", ok, reason)
			}
			sb, err := p.Start(context.Background(), sandbox.Spec{})
			if tt.want == nil {
				if err != nil {
					t.Fatalf("Start: %v", err)
				}
				sb.Kill()
				return
			}
			if !errors.Is(err, tt.want) {
				t.Fatalf("Start = %v, want %v", err, tt.want)
			}
			if !strings.Contains(reason, tt.want.Error()) {
				t.Errorf("Available reason %q does not say %q", reason, tt.want)
			}
		})
	}
}

func TestStartRefusesBadSpecs(t *testing.T) {
	tests := []struct {
		name string
		spec sandbox.Spec
		want string
	}{
		{"memory above wasm32", sandbox.Spec{Limits: sandbox.Limits{MemoryBytes: 5 << 30}}, "above the"},
		{"memory below the module's minimum", sandbox.Spec{Limits: sandbox.Limits{MemoryBytes: 64 << 10}}, "needs"},
		{"capabilities directory missing", sandbox.Spec{CapabilitiesDir: "/nonexistent/ccos"}, "capabilities directory"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sb, err := testWasm.Start(context.Background(), tt.spec)
			if err == nil {
				sb.Kill()
				t.Fatal("Start succeeded")
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Start = %v, want it to say %q", err, tt.want)
			}
		})
	}
}

func TestStartContextCancelled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	sb, err := testWasm.Start(ctx, sandbox.Spec{})
	if err != nil {
		t.Fatal(err)
	}
	io.WriteString(sb.Control(), "block\n")
	cancel()
	wantReason(t, sb.Wait(), sandbox.ExitKilled)
	if err := sb.Kill(); err != nil {
		t.Errorf("Kill after exit: %v", err)
	}
	if _, err := io.WriteString(sb.Control(), "more\n"); !errors.Is(err, ErrGuestEnded) {
		t.Errorf("write after the end = %v, want ErrGuestEnded", err)
	}
}

func TestConcurrentSandboxes(t *testing.T) {
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() { roundTrip(t, testWasm) })
	}
	wg.Wait()
}

// TestEmbeddedModule checks the provider's default module: with the generated
// module it must start the real guest, which says hello in a control
// frame; without it, it must say how to build it.
func TestEmbeddedModule(t *testing.T) {
	p := New(Options{})
	ok, reason := p.Available()
	if _, err := EmbeddedModule(); errors.Is(err, ErrModuleMissing) {
		if ok || !strings.Contains(reason, "go generate ./sandbox/wasm") {
			t.Fatalf("without a generated module: Available = %v, %q", ok, reason)
		}
		return
	}
	if !ok {
		t.Fatalf("Available = false: %s", reason)
	}
	real := New(Options{CacheDir: testCache})
	defer real.Close(context.Background())
	sb, err := real.Start(context.Background(), sandbox.Spec{ID: "real-guest"})
	if err != nil {
		t.Fatal(err)
	}
	defer sb.Kill()
	var n uint32
	if err := binary.Read(sb.Control(), binary.BigEndian, &n); err != nil || n > 1<<16 {
		t.Fatalf("first frame length %d, %v; log: %s", n, err, sb.Log())
	}
	frame := make([]byte, n)
	if _, err := io.ReadFull(sb.Control(), frame); err != nil || !bytes.Contains(frame, []byte(`"hello"`)) {
		t.Fatalf("first frame %q, %v", frame, err)
	}
	sb.Kill()
	wantReason(t, sb.Wait(), sandbox.ExitKilled)
}

func TestCacheDirChecked(t *testing.T) {
	base := t.TempDir()
	mk := func(name string, mode os.FileMode) string {
		path := filepath.Join(base, name)
		if err := os.Mkdir(path, mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(path, mode); err != nil {
			t.Fatal(err)
		}
		return path
	}
	file := filepath.Join(base, "file")
	os.WriteFile(file, nil, 0o600)
	tests := []struct {
		name string
		dir  string
		want string // "" when the directory is accepted
	}{
		{"private", mk("private", 0o700), ""},
		{"group writable", mk("group", 0o770), "writable by group or others"},
		{"world writable", mk("world", 0o777), "writable by group or others"},
		{"not a directory", file, "not a directory"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := checkCacheDir(tt.dir)
			if tt.want == "" && err != nil || tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)) {
				t.Errorf("checkCacheDir = %v, want %q", err, tt.want)
			}
		})
	}
}

func TestProviderCloseKills(t *testing.T) {
	p := New(Options{Source: FileModule(testGuest), CacheDir: testCache})
	sb, _ := startMode(t, p, sandbox.Spec{}, "block")
	if err := p.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	wantReason(t, sb.Wait(), sandbox.ExitKilled)
	roundTrip(t, p)
	p.Close(context.Background())
}

// unreachableModule is a hand-assembled module whose _start executes
// `unreachable`: a trap, which no Go guest can produce on purpose.
var unreachableModule = []byte{
	0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00, // magic, version 1
	0x01, 0x04, 0x01, 0x60, 0x00, 0x00, // types: () -> ()
	0x03, 0x02, 0x01, 0x00, // functions: one of type 0
	0x07, 0x0a, 0x01, 0x06, '_', 's', 't', 'a', 'r', 't', 0x00, 0x00, // export _start
	0x0a, 0x05, 0x01, 0x03, 0x00, 0x00, 0x0b, // code: unreachable, end
}

func TestTrapIsReported(t *testing.T) {
	path := filepath.Join(t.TempDir(), "trap.wasm")
	if err := os.WriteFile(path, unreachableModule, 0o644); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(unreachableModule)
	if err := os.WriteFile(path+".sha256", []byte(hex.EncodeToString(sum[:])), 0o644); err != nil {
		t.Fatal(err)
	}
	p := New(Options{Source: FileModule(path), CacheDir: testCache})
	defer p.Close(context.Background())
	sb, err := p.Start(context.Background(), sandbox.Spec{})
	if err != nil {
		t.Fatal(err)
	}
	exit := wantReason(t, sb.Wait(), sandbox.ExitSignal)
	if !strings.Contains(exit.Detail, "wasm trap") || !strings.Contains(exit.Detail, "unreachable") {
		t.Errorf("Detail = %q", exit.Detail)
	}
	roundTrip(t, testWasm)
}
