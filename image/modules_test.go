package image

import (
	"bytes"
	"compress/gzip"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func debianIndex(t testing.TB) *moduleIndex {
	t.Helper()
	data, err := os.ReadFile("testdata/modules.dep")
	if err != nil {
		t.Fatal(err)
	}
	idx, err := parseModulesDep(data)
	if err != nil {
		t.Fatal(err)
	}
	return idx
}

func TestParseModulesDep(t *testing.T) {
	idx := debianIndex(t)
	if got := idx.path["virtio_rng"]; got != "kernel/drivers/char/hw_random/virtio-rng.ko" {
		t.Errorf("virtio_rng at %q", got)
	}
	if got := idx.deps["virtio_net"]; !slices.Equal(got, []string{"net_failover", "failover", "virtio", "virtio_ring"}) {
		t.Errorf("virtio_net deps %q", got)
	}
	bad := []struct{ name, in, want string }{
		{"no colon", "kernel/a.ko\n", "has no ':'"},
		{"escape", "../a.ko:\n", "not a clean path"},
		{"absolute", "/lib/a.ko:\n", "not a clean path"},
		{"bad dep", "a.ko: ./b.ko\n", "not a clean path"},
		{"not a module", "a.txt:\n", "not a module file"},
		{"bare suffix", "kernel/.ko:\n", "not a module file"},
		{"duplicate", "a/x-y.ko:\nb/x_y.ko.xz:\n", "listed twice"},
	}
	for _, tt := range bad {
		t.Run(tt.name, func(t *testing.T) {
			_, err := parseModulesDep([]byte(tt.in))
			if !errors.Is(err, ErrModulesDep) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want ErrModulesDep with %q", err, tt.want)
			}
		})
	}
}

func TestLoadOrder(t *testing.T) {
	idx := debianIndex(t)
	idx.builtin["virtio_pci"] = true
	tests := []struct {
		name        string
		want        []string
		order       []string
		builtin     []string
		errIs       error
		errContains string
	}{
		{name: "default", want: DefaultModules, order: DefaultModules},
		{name: "default and nic", want: append(slices.Clone(DefaultModules), NICModules...),
			order: append(slices.Clone(DefaultModules), NICModules...)},
		{name: "missing deps added first", want: []string{"virtio_blk", "squashfs"},
			order: []string{"virtio_ring", "virtio", "virtio_blk", "squashfs"}},
		{name: "deps moved before dependents", want: []string{"virtio_net", "virtio", "virtio_ring"},
			order: []string{"virtio_ring", "virtio", "failover", "net_failover", "virtio_net"}},
		{name: "dashes", want: []string{"virtio-rng"}, order: []string{"virtio_ring", "virtio", "virtio_rng"}},
		{name: "repeated", want: []string{"squashfs", "squashfs"}, order: []string{"squashfs"}},
		{name: "builtin skipped", want: []string{"virtio_pci", "squashfs"}, order: []string{"squashfs"}, builtin: []string{"virtio_pci"}},
		{name: "unknown", want: []string{"virtio", "ext4"}, errIs: ErrModuleNotFound, errContains: "ext4"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			order, builtin, err := idx.loadOrder(tt.want)
			if tt.errIs != nil {
				if !errors.Is(err, tt.errIs) || !strings.Contains(err.Error(), tt.errContains) {
					t.Fatalf("err = %v, want %v naming %q", err, tt.errIs, tt.errContains)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(order, tt.order) || !slices.Equal(builtin, tt.builtin) {
				t.Fatalf("order %q builtin %q, want %q %q", order, builtin, tt.order, tt.builtin)
			}
		})
	}
}

func TestLoadOrderErrors(t *testing.T) {
	tests := []struct{ name, dep, want string }{
		{"cycle", "a.ko: b.ko\nb.ko: a.ko\n", "cycle: a -> b -> a"},
		{"missing dep", "a.ko: b.ko\n", "b (needed by a)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			idx, err := parseModulesDep([]byte(tt.dep))
			if err != nil {
				t.Fatal(err)
			}
			if _, _, err := idx.loadOrder([]string{"a"}); err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want %q", err, tt.want)
			}
		})
	}
}

func TestParseModulesBuiltin(t *testing.T) {
	idx, _ := parseModulesDep(nil)
	if err := idx.parseModulesBuiltin([]byte("kernel/fs/ext4/ext4.ko\n\nkernel/lib/crc-t10dif.ko\n")); err != nil {
		t.Fatal(err)
	}
	if !idx.builtin["ext4"] || !idx.builtin["crc_t10dif"] || len(idx.builtin) != 2 {
		t.Fatalf("builtin %v", idx.builtin)
	}
	if err := idx.parseModulesBuiltin([]byte("kernel/x\n")); !errors.Is(err, ErrModulesDep) {
		t.Fatalf("err = %v", err)
	}
}

func TestReadModuleCompressed(t *testing.T) {
	dir := t.TempDir()
	want := []byte("\x7fELF module body")
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write(want)
	zw.Close()
	write := func(name string, data []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	cases := map[string]string{"plain": write("a.ko", want), "gzip": write("b.ko.gz", gz.Bytes())}
	for tool, suffix := range map[string]string{"xz": ".ko.xz", "zstd": ".ko.zst"} {
		if _, err := exec.LookPath(tool); err != nil {
			continue
		}
		out, err := exec.Command("sh", "-c", tool+" -c < "+write("raw-"+tool, want)).Output()
		if err != nil {
			t.Fatal(err)
		}
		cases[tool] = write("c"+suffix, out)
	}
	for name, p := range cases {
		got, err := readModule(p)
		if err != nil || !bytes.Equal(got, want) {
			t.Errorf("%s: %q, %v", name, got, err)
		}
	}
	if _, err := readModule(write("bad.ko.gz", []byte("not gzip"))); !errors.Is(err, ErrModuleCompressed) {
		t.Errorf("bad gzip: %v", err)
	}
	t.Setenv("PATH", t.TempDir())
	if _, err := readModule(write("d.ko.zst", []byte("x"))); !errors.Is(err, ErrModuleCompressed) || !strings.Contains(err.Error(), "install the Debian package zstd") {
		t.Errorf("no zstd: %v", err)
	}
}

// FuzzParseModulesDep checks that the parser never panics, and that what it
// accepts is consistent: every dependency is a clean module path and every
// module's file yields its name.
func FuzzParseModulesDep(f *testing.F) {
	f.Add([]byte("kernel/a.ko: kernel/b.ko\nkernel/b.ko:\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		idx, err := parseModulesDep(data)
		if err != nil {
			if !errors.Is(err, ErrModulesDep) {
				t.Fatalf("error %v does not wrap ErrModulesDep", err)
			}
			return
		}
		for name, p := range idx.path {
			if n, ok := moduleName(p); !ok || n != name || checkModulePath(p) != nil {
				t.Fatalf("module %q at %q", name, p)
			}
		}
		var names []string
		for name := range idx.path {
			names = append(names, name)
		}
		slices.Sort(names)
		order, _, err := idx.loadOrder(names)
		if err != nil {
			return
		}
		pos := map[string]int{}
		for i, n := range order {
			pos[n] = i
		}
		for _, n := range order {
			for _, d := range idx.deps[n] {
				if pos[d] >= pos[n] {
					t.Fatalf("%s loads before its dependency %s: %q", n, d, order)
				}
			}
		}
	})
}
