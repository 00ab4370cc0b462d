package image

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
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
	if err != nil {
		t.Skipf("no installed kernel: %v", err)
	}
	if _, err := os.Stat(filepath.Join(modulesRoot, kernelVersion(k), "modules.dep")); err != nil {
		t.Skipf("kernel %s has no modules: %v", k, err)
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
	if m, _ := Measure(kernel); m != img.Measurements.Kernel {
		t.Fatalf("kernel measured %s, the image's %s", m, img.Measurements.Kernel)
	}
	if err := img.Verify(); err != nil {
		t.Fatal(err)
	}
	t.Logf("%s: initramfs %s, rootfs %s", kernel, img.Measurements.Initramfs, img.Measurements.Rootfs)
}
