package image

import (
	"bytes"
	"context"
	"debug/elf"
	"encoding/json"
	"errors"
	"io/fs"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ccos-project/ccos/internal/testenv"
)

func TestBuild(t *testing.T) {
	needMksquashfs(t)
	k := newFakeKernel(t, "6.1.0-99-test")
	in := testInputs(t, k)
	in.NIC = true
	img, err := Build(context.Background(), in, filepath.Join(t.TempDir(), "out"))
	if err != nil {
		t.Fatal(err)
	}
	if err := img.Verify(); err != nil {
		t.Fatal(err)
	}
	kernel, _ := os.ReadFile(k.Kernel)
	if got, _ := os.ReadFile(img.Kernel); !bytes.Equal(got, kernel) {
		t.Fatal("vmlinuz differs from the kernel it was copied from")
	}
	wantModules := append(slices.Clone(DefaultModules), NICModules...)
	m := img.Manifest
	if m.KernelVersion != "6.1.0-99-test" || !slices.Equal(m.Modules, wantModules) || m.RootfsCompression != "zstd" ||
		m.Init != digestOf(in.Init) || m.Epoch != in.Epoch || m.Measurements != img.Measurements {
		t.Fatalf("manifest %+v", m)
	}
	opened, err := Open(img.Dir)
	if err != nil || opened.Manifest.Measurements != img.Measurements || opened.Rootfs != img.Rootfs {
		t.Fatalf("Open: %+v, %v", opened, err)
	}
	t.Run("initramfs", func(t *testing.T) { checkInitramfs(t, img, in, wantModules) })
	t.Run("rootfs", func(t *testing.T) { checkRootfs(t, img, in) })
}

// checkInitramfs reads the initramfs back and checks every member.
func checkInitramfs(t *testing.T, img *Image, in Inputs, modules []string) {
	data, err := os.ReadFile(img.Initramfs)
	if err != nil {
		t.Fatal(err)
	}
	members, err := readCPIO(data)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	got := map[string]cpioMember{}
	for _, m := range members {
		names = append(names, m.Name)
		got[m.Name] = m
		if m.Mtime != uint32(in.Epoch) || m.UID != 0 || m.GID != 0 {
			t.Errorf("%s: mtime %d uid %d gid %d", m.Name, m.Mtime, m.UID, m.GID)
		}
	}
	want := []string{"dev", "dev/console", "dev/null", "init", "lib", "lib/modules"}
	var order strings.Builder
	for _, mod := range modules {
		want = append(want, "lib/modules/"+mod+".ko")
		order.WriteString("/lib/modules/" + mod + ".ko\n")
	}
	want = append(want, "lib/modules/order", "proc", "run", "store", "sys", "tmp", "work")
	slices.Sort(want)
	if !slices.Equal(names, want) {
		t.Fatalf("members\n%q\nwant\n%q", names, want)
	}
	if m := got["init"]; m.Mode != modeReg|0o755 || !bytes.Equal(m.Data, in.Init) {
		t.Errorf("init: mode %o, %d bytes", m.Mode, len(m.Data))
	}
	if m := got[strings.TrimPrefix(GuestModuleOrder, "/")]; string(m.Data) != order.String() {
		t.Errorf("order file:\n%s\nwant\n%s", m.Data, order.String())
	}
	if m := got["lib/modules/virtio_mmio.ko"]; string(m.Data) != "\x7fELF fake module virtio_mmio" {
		t.Errorf("virtio_mmio.ko holds %q", m.Data)
	}
	if m := got["dev/console"]; m.Mode != modeChar|0o600 || m.RdevMajor != 5 || m.RdevMinor != 1 {
		t.Errorf("dev/console: %+v", m)
	}
}

// checkRootfs lists and extracts the squashfs with unsquashfs.
func checkRootfs(t *testing.T, img *Image, in Inputs) {
	testenv.Tool(t, "unsquashfs", "install the Debian package squashfs-tools (scripts/test does)")
	list := exec.Command("unsquashfs", "-lln", img.Rootfs)
	list.Env = append(os.Environ(), "TZ=UTC")
	out, err := list.CombinedOutput()
	if err != nil {
		t.Fatalf("unsquashfs -lln: %v\n%s", err, out)
	}
	// Lines read "MODE UID/GID SIZE DATE TIME PATH".
	got := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		f := strings.Fields(line)
		if len(f) != 6 || f[1] != "0/0" || f[3]+" "+f[4] != "2023-11-14 22:13" {
			t.Errorf("listing line %q: want owner 0/0 and the epoch's time", line)
			continue
		}
		got[strings.TrimPrefix(f[5], "squashfs-root")] = f[0]
	}
	want := map[string]string{
		"":                                  "drwxr-xr-x",
		"/agent.config.rtfs":                "-rw-r--r--",
		"/capabilities":                     "drwxr-xr-x",
		"/capabilities/bin":                 "drwxr-xr-x",
		"/capabilities/bin/tool":            "-rwxr-xr-x",
		"/capabilities/contracts":           "drwxr-xr-x",
		"/capabilities/contracts/http.rtfs": "-rw-r--r--",
		"/capabilities/empty":               "drwxr-xr-x",
	}
	if !maps.Equal(got, want) {
		t.Errorf("rootfs holds %v, want %v", got, want)
	}
	dir := filepath.Join(t.TempDir(), "x")
	if out, err := exec.Command("unsquashfs", "-no-xattrs", "-d", dir, img.Rootfs).CombinedOutput(); err != nil {
		t.Fatalf("unsquashfs: %v\n%s", err, out)
	}
	config, _ := os.ReadFile(in.ConfigFile)
	if got, _ := os.ReadFile(filepath.Join(dir, "agent.config.rtfs")); !bytes.Equal(got, config) {
		t.Errorf("agent.config.rtfs = %q", got)
	}
	out, err = exec.Command("unsquashfs", "-s", img.Rootfs).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "Compression zstd") {
		t.Errorf("unsquashfs -s: %v\n%s", err, out)
	}
}

func TestBuildReproducible(t *testing.T) {
	needMksquashfs(t)
	k := newFakeKernel(t, "6.1.0-99-test")
	in := testInputs(t, k)
	a, err := Build(context.Background(), in, filepath.Join(t.TempDir(), "a"))
	if err != nil {
		t.Fatal(err)
	}
	// What must not matter: file times and group/other permission bits of
	// the inputs, and the output directory.
	tool := filepath.Join(in.CapabilitiesDir, "bin", "tool")
	if err := os.Chmod(tool, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(filepath.Join(in.CapabilitiesDir, "contracts", "http.rtfs"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(in.ConfigFile, time.Unix(1234, 0), time.Unix(1234, 0)); err != nil {
		t.Fatal(err)
	}
	b, err := Build(context.Background(), in, filepath.Join(t.TempDir(), "deeper", "b"))
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{KernelFile, InitramfsFile, RootfsFile, ManifestFile} {
		x, _ := os.ReadFile(filepath.Join(a.Dir, f))
		y, _ := os.ReadFile(filepath.Join(b.Dir, f))
		if len(x) == 0 || !bytes.Equal(x, y) {
			t.Errorf("%s differs between two builds of the same inputs", f)
		}
	}
	// Building over an image replaces it with the same bytes.
	again, err := Build(context.Background(), in, a.Dir)
	if err != nil || again.Measurements != a.Measurements {
		t.Fatalf("rebuilt in place: %+v, %v", again, err)
	}
	if entries, _ := os.ReadDir(a.Dir); len(entries) != 4 {
		t.Errorf("%s holds %d files, want 4", a.Dir, len(entries))
	}
	in.Epoch++
	c, err := Build(context.Background(), in, filepath.Join(t.TempDir(), "c"))
	if err != nil {
		t.Fatal(err)
	}
	if c.Measurements.Initramfs == a.Measurements.Initramfs || c.Measurements.Rootfs == a.Measurements.Rootfs {
		t.Error("another epoch gave the same initramfs or rootfs")
	}
}

func TestBuildErrors(t *testing.T) {
	needMksquashfs(t)
	k := newFakeKernel(t, "6.1.0-99-test")
	base := testInputs(t, k)
	link := t.TempDir()
	if err := os.Symlink("/etc/passwd", filepath.Join(link, "passwd")); err != nil {
		t.Fatal(err)
	}
	unversioned := filepath.Join(t.TempDir(), "bzImage")
	mustWrite(t, unversioned, []byte("k"), 0o644)
	brokenModules := newFakeKernel(t, "6.1.0-98-test")
	if err := os.Remove(filepath.Join(brokenModules.ModulesDir, "kernel/fs/squashfs/squashfs.ko")); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		change func(*Inputs)
		path   string // PATH for the build, when set
		is     error
		want   string
	}{
		{"missing kernel", func(in *Inputs) { in.KernelPath = "/nonexistent/vmlinuz-1" }, "", ErrKernelNotFound, "/nonexistent/vmlinuz-1"},
		{"kernel is a directory", func(in *Inputs) { in.KernelPath = t.TempDir() }, "", ErrKernelNotFound, "not a regular file"},
		{"unversioned kernel", func(in *Inputs) { in.KernelPath, in.ModulesDir = unversioned, "" }, "", ErrInputs, "name its modules directory"},
		{"missing modules.dep", func(in *Inputs) { in.ModulesDir = t.TempDir() }, "", ErrModuleNotFound, "modules.dep"},
		{"unknown module", func(in *Inputs) { in.Modules = []string{"virtio", "nosuchmod"} }, "", ErrModuleNotFound, "nosuchmod"},
		{"missing module file", func(in *Inputs) { in.ModulesDir = brokenModules.ModulesDir }, "", ErrModuleNotFound, "squashfs.ko but it is missing"},
		{"no config", func(in *Inputs) { in.ConfigFile = "" }, "", ErrInputs, "no agent config"},
		{"missing config", func(in *Inputs) { in.ConfigFile = "/nonexistent/agent.rtfs" }, "", fs.ErrNotExist, "/nonexistent/agent.rtfs"},
		{"no init", func(in *Inputs) { in.Init = nil }, "", ErrInit, "no /init"},
		{"init not ELF", func(in *Inputs) { in.Init = []byte("#!/bin/sh\n") }, "", ErrInit, "not an ELF"},
		{"init for arm64", func(in *Inputs) { in.Init = fakeELF(elf.EM_AARCH64, false) }, "", ErrInit, "GOARCH=amd64"},
		{"init dynamic", func(in *Inputs) { in.Init = fakeELF(elf.EM_X86_64, true) }, "", ErrInit, "CGO_ENABLED=0"},
		{"negative epoch", func(in *Inputs) { in.Epoch = -1 }, "", ErrInputs, "epoch -1"},
		{"epoch past 2106", func(in *Inputs) { in.Epoch = 1 << 32 }, "", ErrInputs, "epoch 4294967296"},
		{"symlink in capabilities", func(in *Inputs) { in.CapabilitiesDir = link }, "", ErrUnsupportedFile, "passwd"},
		{"capabilities not a dir", func(in *Inputs) { in.CapabilitiesDir = in.ConfigFile }, "", nil, "is not a directory"},
		{"no mksquashfs", func(*Inputs) {}, t.TempDir(), ErrMksquashfsMissing, "install the Debian package squashfs-tools"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := base
			tt.change(&in)
			if tt.path != "" {
				t.Setenv("PATH", tt.path)
			}
			out := filepath.Join(t.TempDir(), "out")
			_, err := Build(context.Background(), in, out)
			if err == nil || (tt.is != nil && !errors.Is(err, tt.is)) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want %v naming %q", err, tt.is, tt.want)
			}
			if _, err := os.Stat(out); !os.IsNotExist(err) {
				t.Errorf("a refused build created %s", out)
			}
		})
	}
}

func TestCached(t *testing.T) {
	needMksquashfs(t)
	k := newFakeKernel(t, "6.1.0-99-test")
	in := testInputs(t, k)
	root := filepath.Join(t.TempDir(), "cache")
	ctx := context.Background()
	a, err := Cached(ctx, in, root)
	if err != nil {
		t.Fatal(err)
	}
	key, err := Key(ctx, in)
	if err != nil || a.Dir != filepath.Join(root, key) {
		t.Fatalf("image in %s, key %s (%v)", a.Dir, key, err)
	}
	manifest := filepath.Join(a.Dir, ManifestFile)
	before, _ := os.Stat(manifest)
	b, err := Cached(ctx, in, root)
	if err != nil || b.Dir != a.Dir || b.Measurements != a.Measurements {
		t.Fatalf("second call: %+v, %v", b, err)
	}
	if after, _ := os.Stat(manifest); !after.ModTime().Equal(before.ModTime()) {
		t.Error("the cached image was rebuilt")
	}
	// Every input's bytes take part in the key.
	changes := map[string]func(*Inputs){
		"init":   func(in *Inputs) { in.Init = append(slices.Clone(in.Init), 0) },
		"epoch":  func(in *Inputs) { in.Epoch++ },
		"nic":    func(in *Inputs) { in.NIC = true },
		"config": func(in *Inputs) { mustWrite(t, in.ConfigFile, []byte("(agent.config)"), 0o644) },
		"capability": func(in *Inputs) {
			mustWrite(t, filepath.Join(in.CapabilitiesDir, "contracts", "http.rtfs"), []byte("{}"), 0o644)
		},
		"capability exec bit": func(in *Inputs) { os.Chmod(filepath.Join(in.CapabilitiesDir, "bin", "tool"), 0o600) },
		"module": func(in *Inputs) {
			mustWrite(t, filepath.Join(in.ModulesDir, "kernel/drivers/virtio/virtio.ko"), []byte("\x7fELF other"), 0o644)
		},
		"kernel": func(in *Inputs) { mustWrite(t, in.KernelPath, []byte("other kernel"), 0o644) },
	}
	keys := map[string]string{key: "base"}
	for name, change := range changes {
		c := testInputs(t, newFakeKernel(t, "6.1.0-99-test"))
		change(&c)
		k, err := Key(ctx, c)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if prev, dup := keys[k]; dup {
			t.Errorf("changing the %s gives the key of %s", name, prev)
		}
		keys[k] = name
	}
	// A dead builder's leftovers go when the next image is built.
	stale, fresh := filepath.Join(root, buildPrefix+"dead"), filepath.Join(root, buildPrefix+"running")
	for _, d := range []string{stale, fresh} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	old := time.Now().Add(-2 * staleBuildAge)
	os.Chtimes(stale, old, old)
	in.Epoch++
	if _, err := Cached(ctx, in, root); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(stale); !os.IsNotExist(err) {
		t.Error("a stale build directory was kept")
	}
	if _, err := os.Stat(fresh); err != nil {
		t.Error("a recent build directory was removed")
	}
	os.Remove(fresh)
	entries, _ := os.ReadDir(root)
	if len(entries) != 2 {
		t.Errorf("cache holds %d entries, want 2 (no temporary directories left)", len(entries))
	}
}

func TestCachedConcurrent(t *testing.T) {
	needMksquashfs(t)
	in := testInputs(t, newFakeKernel(t, "6.1.0-99-test"))
	root := t.TempDir()
	errs := make(chan error, 3)
	dirs := make(chan string, 3)
	for range 3 {
		go func() {
			img, err := Cached(context.Background(), in, root)
			errs <- err
			if err == nil {
				dirs <- img.Dir
			}
		}()
	}
	for range 3 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	a, b, c := <-dirs, <-dirs, <-dirs
	if a != b || b != c {
		t.Fatalf("dirs %s %s %s", a, b, c)
	}
	if entries, _ := os.ReadDir(root); len(entries) != 1 {
		t.Errorf("cache holds %d entries, want 1", len(entries))
	}
}

func TestCachedIncomplete(t *testing.T) {
	needMksquashfs(t)
	in := testInputs(t, newFakeKernel(t, "6.1.0-99-test"))
	root := t.TempDir()
	key, err := Key(context.Background(), in)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(root, key), 0o755); err != nil {
		t.Fatal(err)
	}
	if _, err := Cached(context.Background(), in, root); err == nil || !strings.Contains(err.Error(), "remove it") {
		t.Fatalf("err = %v", err)
	}
}

func TestOpenVerify(t *testing.T) {
	needMksquashfs(t)
	in := testInputs(t, newFakeKernel(t, "6.1.0-99-test"))
	img, err := Build(context.Background(), in, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(img.Rootfs, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.Write([]byte{0})
	f.Close()
	if err := img.Verify(); !errors.Is(err, ErrMeasurement) || !strings.Contains(err.Error(), "rootfs") {
		t.Fatalf("Verify after tampering: %v", err)
	}
	if err := os.Remove(img.Kernel); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(img.Dir); !errors.Is(err, ErrManifest) || !strings.Contains(err.Error(), "vmlinuz") {
		t.Fatalf("Open without the kernel: %v", err)
	}
	if _, err := Open(t.TempDir()); !errors.Is(err, ErrManifest) {
		t.Fatalf("Open of an empty dir: %v", err)
	}
	data, err := os.ReadFile(filepath.Join(img.Dir, ManifestFile))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		edit func(m map[string]any)
		want string // "" when Open must succeed
	}{
		{"as written", func(map[string]any) {}, ""},
		{"format", func(m map[string]any) { m["format"] = "ccos-image/0" }, `format "ccos-image/0"`},
		{"file name", func(m map[string]any) { m["files"].(map[string]any)["rootfs"] = "../../etc/shadow" }, "not a plain name"},
		{"file empty", func(m map[string]any) { m["files"].(map[string]any)["kernel"] = "" }, "not a plain name"},
		{"unknown field", func(m map[string]any) { m["surprise"] = 1 }, "surprise"},
		{"not JSON", nil, "invalid character"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			for _, f := range []string{KernelFile, InitramfsFile, RootfsFile} {
				mustWrite(t, filepath.Join(dir, f), []byte(f), 0o644)
			}
			out := []byte("{oops")
			if tt.edit != nil {
				var m map[string]any
				if err := json.Unmarshal(data, &m); err != nil {
					t.Fatal(err)
				}
				tt.edit(m)
				out, _ = json.Marshal(m)
			}
			mustWrite(t, filepath.Join(dir, ManifestFile), out, 0o644)
			_, err := Open(dir)
			if tt.want == "" && err != nil || tt.want != "" && (!errors.Is(err, ErrManifest) || !strings.Contains(err.Error(), tt.want)) {
				t.Fatalf("Open: %v, want %q", err, tt.want)
			}
		})
	}
}

func TestDefaultCacheRoot(t *testing.T) {
	t.Setenv("XDG_CACHE_HOME", "/var/cache/u")
	if got, err := DefaultCacheRoot(); err != nil || got != "/var/cache/u/ccos/images" {
		t.Fatalf("DefaultCacheRoot = %q, %v", got, err)
	}
}

func TestEpochFromEnv(t *testing.T) {
	for _, tt := range []struct {
		env  string
		want int64
		ok   bool
	}{{"", 0, true}, {"1700000000", 1700000000, true}, {"-5", 0, false}, {"soon", 0, false}, {"4294967296", 0, false}} {
		t.Setenv("SOURCE_DATE_EPOCH", tt.env)
		got, err := EpochFromEnv()
		if got != tt.want || (err == nil) != tt.ok {
			t.Errorf("SOURCE_DATE_EPOCH=%q: %d, %v", tt.env, got, err)
		}
	}
}
