package image

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/ccos-project/ccos/internal/testenv"
)

func TestCompareVersions(t *testing.T) {
	ordered := []string{"", "5.10.0-9-cloud-amd64", "6.1.0-9-cloud-amd64", "6.1.0-10-cloud-amd64", "6.1.0-56-cloud-amd64", "6.10.0-1-cloud-amd64", "6.10.0-1-cloud-amd64x"}
	for i := range ordered {
		for j := range ordered {
			c := compareVersions(ordered[i], ordered[j])
			if (i < j && c >= 0) || (i == j && c != 0) || (i > j && c <= 0) {
				t.Errorf("compareVersions(%q, %q) = %d", ordered[i], ordered[j], c)
			}
		}
	}
	if compareVersions("6.01", "6.1") != 0 {
		t.Error("leading zeros count")
	}
}

func TestDefaultKernel(t *testing.T) {
	dir := t.TempDir()
	old := bootDir
	bootDir = dir
	t.Cleanup(func() { bootDir = old })
	if _, err := DefaultKernel(); !errors.Is(err, ErrKernelNotFound) || !strings.Contains(err.Error(), "linux-image-cloud-amd64") {
		t.Fatalf("empty /boot: %v", err)
	}
	for _, v := range []string{"6.1.0-9-cloud-amd64", "6.1.0-56-cloud-amd64", "6.1.0-10-cloud-amd64", "6.2.0-1-amd64"} {
		mustWrite(t, filepath.Join(dir, kernelPrefix+v), []byte("k"), 0o644)
	}
	got, err := DefaultKernel()
	if err != nil || got != filepath.Join(dir, "vmlinuz-6.1.0-56-cloud-amd64") {
		t.Fatalf("DefaultKernel = %q, %v", got, err)
	}
}

func TestSquashfsCompression(t *testing.T) {
	dir := t.TempDir()
	k := filepath.Join(dir, "vmlinuz-1")
	if got := squashfsCompression(k, "1"); got != "zstd" {
		t.Errorf("without a config: %s", got)
	}
	mustWrite(t, filepath.Join(dir, "config-1"), []byte("CONFIG_SQUASHFS=m\nCONFIG_SQUASHFS_ZSTD=y\n"), 0o644)
	if got := squashfsCompression(k, "1"); got != "zstd" {
		t.Errorf("with zstd: %s", got)
	}
	mustWrite(t, filepath.Join(dir, "config-1"), []byte("CONFIG_SQUASHFS=m\n# CONFIG_SQUASHFS_ZSTD is not set\n"), 0o644)
	if got := squashfsCompression(k, "1"); got != "gzip" {
		t.Errorf("without zstd: %s", got)
	}
}

// installedKernel returns the newest Debian cloud kernel of this host, or
// skips the test naming what is missing.
func installedKernel(t testing.TB) string {
	t.Helper()
	k, err := DefaultKernel()
	const how = "install the Debian package linux-image-cloud-amd64 (scripts/test does)"
	if err != nil {
		testenv.Missing(t, fmt.Sprintf("no installed kernel: %v", err), how)
	}
	if _, err := os.Stat(filepath.Join(modulesRoot, kernelVersion(k), "modules.dep")); err != nil {
		testenv.Missing(t, fmt.Sprintf("kernel %s has no modules: %v", k, err), how)
	}
	return k
}

// TestBuildInstalledKernel builds an image from the host's kernel and
// modules with every default.
func TestBuildInstalledKernel(t *testing.T) {
	kernel := installedKernel(t)
	needMksquashfs(t)
	in := testInputs(t, fakeKernel{})
	in.KernelPath, in.ModulesDir, in.NIC = "", "", true
	img, err := Build(context.Background(), in, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	want := append(slices.Clone(DefaultModules), NICModules...)
	if !slices.Equal(img.Manifest.Modules, want) || img.Manifest.KernelVersion != kernelVersion(kernel) {
		t.Fatalf("manifest %+v", img.Manifest)
	}
	// The Debian cloud kernel carries a PVH kernel: the image boots that,
	// extracted from the installed bzImage, whose digest the manifest keeps.
	if m, _ := Measure(kernel); m != img.Manifest.KernelSource || img.Manifest.KernelFormat != KernelELFPVH {
		t.Fatalf("kernel measured %s, the manifest's source %s, format %s (%s)", m, img.Manifest.KernelSource, img.Manifest.KernelFormat, img.KernelNote)
	}
	if m, _ := Measure(img.Kernel); m != img.Measurements.Kernel {
		t.Fatalf("the image's kernel measures %s, recorded %s", m, img.Measurements.Kernel)
	}
	if b, err := os.ReadFile(img.Kernel); err != nil || checkPVH(b) != nil {
		t.Fatalf("the image's kernel is not a PVH ELF: %v", err)
	}
	if err := img.Verify(); err != nil {
		t.Fatal(err)
	}
	t.Logf("%s: initramfs %s, rootfs %s", kernel, img.Measurements.Initramfs, img.Measurements.Rootfs)
}

// Anything that is not a bzImage with a PVH kernel inside is kept as it is,
// with the reason; the parser never panics on a hostile kernel file.
func TestExtractVmlinuxRefusals(t *testing.T) {
	bz := make([]byte, 0x300)
	copy(bz[0x202:], "HdrS")
	bz[0x206], bz[0x207] = 0x0f, 0x02 // protocol 2.15
	bz[0x1f1] = 1
	for name, mod := range map[string]func([]byte){
		"no header":        func(b []byte) { copy(b[0x202:], "XXXX") },
		"old protocol":     func(b []byte) { b[0x206], b[0x207] = 0x00, 0x02 },
		"payload outside":  func(b []byte) { b[0x24c] = 0xff; b[0x24d] = 0xff },
		"unknown compress": func(b []byte) { b[0x24c] = 8 },
	} {
		b := append([]byte(nil), bz...)
		mod(b)
		if _, err := extractVmlinux(b); !errors.Is(err, errNoPVH) {
			t.Errorf("%s: err = %v", name, err)
		}
	}
}

func FuzzExtractVmlinux(f *testing.F) {
	f.Add([]byte("HdrS"))
	bz := make([]byte, 0x300)
	copy(bz[0x202:], "HdrS")
	bz[0x206], bz[0x207] = 0x0f, 0x02
	f.Add(bz)
	f.Fuzz(func(t *testing.T, b []byte) {
		if _, err := extractVmlinux(b); err == nil {
			if checkPVH(b) == nil {
				return
			}
		}
	})
}
