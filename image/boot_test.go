package image

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ccos-project/ccos/internal/testenv"
)

// bootImage is an image whose /init is testdata/bootcheck, a test init
// that loads the modules in the order file, mounts the rootfs read-only
// and reports what it sees on the console ("BOOTCHECK ..." lines), then
// powers off.
type bootImage struct {
	*Image
	in   Inputs
	qemu string
}

// newBootImage builds a bootImage, or skips naming what this host lacks.
func newBootImage(t testing.TB) bootImage {
	t.Helper()
	installedKernel(t)
	needMksquashfs(t)
	qemu := testenv.Tool(t, "qemu-system-x86_64", "install the Debian package qemu-system-x86 (scripts/test does)")
	dir := t.TempDir()
	initBin := filepath.Join(dir, "bootcheck")
	build := exec.Command("go", "build", "-trimpath", "-o", initBin, "./testdata/bootcheck")
	build.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH=amd64")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("building the test init: %v\n%s", err, out)
	}
	in := testInputs(t, fakeKernel{})
	in.KernelPath, in.ModulesDir = "", ""
	var err error
	if in.Init, err = os.ReadFile(initBin); err != nil {
		t.Fatal(err)
	}
	img, err := Build(context.Background(), in, filepath.Join(dir, "image"))
	if err != nil {
		t.Fatal(err)
	}
	return bootImage{Image: img, in: in, qemu: qemu}
}

// boot runs QEMU microvm (TCG, as on this host) on the image with the
// initramfs initrd, and returns the console output and the time from
// starting QEMU to the first line /init printed.
func (b bootImage) boot(t testing.TB, initrd string) (string, time.Duration) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	appendArgs := "console=ttyS0 quiet panic=-1 reboot=t"
	if khz := cpuKHz(); khz > 0 {
		appendArgs += " tsc_early_khz=" + strconv.Itoa(khz)
	}
	cmd := exec.CommandContext(ctx, b.qemu,
		"-M", "microvm,x-option-roms=off,isa-serial=on,rtc=on", "-accel", "tcg", "-cpu", "max", "-m", "128",
		"-nodefaults", "-no-user-config", "-nographic", "-no-reboot", "-serial", "stdio",
		"-kernel", b.Kernel, "-initrd", initrd, "-append", appendArgs,
		"-drive", "id=rootfs,if=none,format=raw,readonly=on,file="+b.Rootfs,
		"-device", "virtio-blk-device,drive=rootfs",
		"-device", "virtio-serial-device", "-chardev", "null,id=c0", "-device", "virtserialport,chardev=c0,name=ctl",
	)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	start := time.Now()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var out strings.Builder
	var ready time.Duration
	sc := bufio.NewScanner(stdout)
	for sc.Scan() {
		if ready == 0 && strings.HasPrefix(sc.Text(), "BOOTCHECK") {
			ready = time.Since(start)
		}
		out.WriteString(sc.Text() + "\n")
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("qemu: %v\n%s%s", err, out.String(), stderr.String())
	}
	return out.String(), ready
}

// TestBoot boots an image: the proof that the kernel accepts the
// initramfs and the rootfs as this package writes them, and that the
// modules load in the order written.
func TestBoot(t *testing.T) {
	if testing.Short() {
		t.Skip("boots a VM (a few seconds under TCG)")
	}
	b := newBootImage(t)
	out, ready := b.boot(t, b.Initramfs)
	t.Logf("/init ready after %v", ready.Round(time.Millisecond))
	config, _ := os.ReadFile(b.in.ConfigFile)
	for _, want := range []string{
		"BOOTCHECK modules 6 loaded",
		"BOOTCHECK config " + digestOf(config),
		`BOOTCHECK capabilities ["/store/capabilities/bin" "/store/capabilities/contracts" "/store/capabilities/empty"]`,
		"BOOTCHECK rootfs read-only",
		"BOOTCHECK port ctl",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("console lacks %q:\n%s", want, out)
		}
	}
}

// BenchmarkBootInitramfs compares QEMU start to the first line of /init
// with the initramfs as built (uncompressed) and gzip-compressed: the
// measurement behind not compressing it. Each iteration boots both, one
// after the other, so that a change in the host's load hits both alike.
func BenchmarkBootInitramfs(b *testing.B) {
	img := newBootImage(b)
	gz := filepath.Join(b.TempDir(), "initrd.gz")
	raw, err := os.ReadFile(img.Initramfs)
	if err != nil {
		b.Fatal(err)
	}
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	zw.Write(raw)
	zw.Close()
	mustWrite(b, gz, buf.Bytes(), 0o644)
	var plain, gzipped time.Duration
	for b.Loop() {
		_, ready := img.boot(b, img.Initramfs)
		plain += ready
		_, ready = img.boot(b, gz)
		gzipped += ready
	}
	n := float64(b.N)
	b.ReportMetric(float64(plain.Milliseconds())/n, "ms-uncompressed")
	b.ReportMetric(float64(gzipped.Milliseconds())/n, "ms-gzip")
	b.ReportMetric(float64(len(raw))/(1<<20), "MiB-uncompressed")
	b.ReportMetric(float64(buf.Len())/(1<<20), "MiB-gzip")
}

// cpuKHz is the host's TSC frequency for tsc_early_khz (without it about
// one boot in four hangs calibrating the TSC under TCG), or 0.
func cpuKHz() int {
	data, _ := os.ReadFile("/proc/cpuinfo")
	for _, line := range strings.Split(string(data), "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "cpu MHz" {
			mhz, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			if err == nil {
				return int(mhz * 1000)
			}
		}
	}
	return 0
}
