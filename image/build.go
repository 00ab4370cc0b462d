package image

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"hash"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/ccos-project/ccos/internal/atomicfile"
)

// buildSteps write an image directory, in order; the manifest comes last
// so that its presence means the image is complete.
var buildSteps = []struct {
	name string
	run  func(context.Context, *resolved, *Image) error
}{
	{"kernel", writeKernel},
	{"initramfs", writeInitramfs},
	{"rootfs", writeRootfs},
	{"manifest", writeManifest},
}

func (r *resolved) build(ctx context.Context, outDir string) (*Image, error) {
	dir, err := filepath.Abs(outDir)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("image: %w", err)
	}
	// An interrupted rebuild must not leave the old manifest describing
	// new files.
	if err := os.Remove(filepath.Join(dir, ManifestFile)); err != nil && !os.IsNotExist(err) {
		return nil, fmt.Errorf("image: %w", err)
	}
	img := &Image{
		Dir:       dir,
		Kernel:    filepath.Join(dir, KernelFile),
		Initramfs: filepath.Join(dir, InitramfsFile),
		Rootfs:    filepath.Join(dir, RootfsFile),
	}
	for _, s := range buildSteps {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		if err := s.run(ctx, r, img); err != nil {
			return nil, fmt.Errorf("image: writing the %s: %w", s.name, err)
		}
	}
	return img, nil
}

// writeKernel writes the kernel to boot: the uncompressed PVH kernel inside
// the host's bzImage when there is one (loaded directly by QEMU and
// Firecracker, no decompression in the guest), else the bzImage as it is.
func writeKernel(_ context.Context, r *resolved, img *Image) error {
	bz, err := os.ReadFile(r.kernelPath)
	if err != nil {
		return err
	}
	if digest := digestOf(bz); digest != r.kernelDigest {
		return fmt.Errorf("%s changed while the image was built (%s, then %s)", r.kernelPath, r.kernelDigest, digest)
	}
	data, format := bz, KernelBzImage
	if vmlinux, err := extractVmlinux(bz); err == nil {
		data, format = vmlinux, KernelELFPVH
	} else {
		img.KernelNote = err.Error()
	}
	digest, err := writeAtomic(img.Kernel, func(w io.Writer) error {
		_, err := w.Write(data)
		return err
	})
	if err != nil {
		return err
	}
	img.Measurements.Kernel = digest
	img.KernelFormat = format
	return nil
}

func writeInitramfs(_ context.Context, r *resolved, img *Image) error {
	digest, err := writeAtomic(img.Initramfs, func(w io.Writer) error {
		return writeCPIO(w, initramfsEntries(r), r.in.Epoch)
	})
	img.Measurements.Initramfs = digest
	return err
}

// initramfsEntries lists the members of the initramfs.
func initramfsEntries(r *resolved) []cpioEntry {
	entries := []cpioEntry{
		{Name: "dev/console", Mode: modeChar | 0o600, RdevMajor: 5, RdevMinor: 1},
		// Without a console (console=none) /init starts with no standard
		// descriptors, and the Go runtime fills them from /dev/null before
		// main runs: it must exist before devtmpfs is mounted.
		{Name: "dev/null", Mode: modeChar | 0o666, RdevMajor: 1, RdevMinor: 3},
		{Name: initPath, Mode: modeReg | 0o755, Data: r.in.Init},
		{Name: "lib", Mode: modeDir | 0o755},
		{Name: moduleDir, Mode: modeDir | 0o755},
		{Name: moduleOrderPath, Mode: modeReg | 0o644, Data: []byte(moduleOrder(r.modules))},
	}
	for _, d := range mountPoints {
		entries = append(entries, cpioEntry{Name: d, Mode: modeDir | 0o755})
	}
	for _, m := range r.modules {
		entries = append(entries, cpioEntry{Name: moduleFile(m.Name), Mode: modeReg | 0o644, Data: m.Data})
	}
	return entries
}

// moduleFile is where module name sits in the initramfs.
func moduleFile(name string) string { return moduleDir + "/" + name + ".ko" }

// moduleOrder is the content of /lib/modules/order.
func moduleOrder(mods []module) string {
	var b strings.Builder
	for _, m := range mods {
		b.WriteString("/" + moduleFile(m.Name) + "\n")
	}
	return b.String()
}

func writeRootfs(ctx context.Context, r *resolved, img *Image) error {
	stage, err := os.MkdirTemp("", "ccos-rootfs-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(stage)
	if err := stageRootfs(stage, r.config, r.caps); err != nil {
		return fmt.Errorf("staging: %w", err)
	}
	f, err := atomicfile.Create(img.Rootfs, 0o644)
	if err != nil {
		return err
	}
	defer f.Abort()
	if err := runMksquashfs(ctx, r.mksquashfs, stage, f.Name(), r.compression, r.in.Epoch); err != nil {
		return err
	}
	digest, err := Measure(f.Name())
	if err != nil {
		return err
	}
	if err := f.Commit(); err != nil {
		return err
	}
	img.Measurements.Rootfs = digest
	return nil
}

// Measure returns the sha256 of the file at path as "sha256:<hex>".
func Measure(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", fmt.Errorf("measuring %s: %w", path, err)
	}
	return digestString(h), nil
}

// digestOf returns the sha256 of data as "sha256:<hex>".
func digestOf(data []byte) string {
	sum := sha256.Sum256(data)
	return "sha256:" + hex.EncodeToString(sum[:])
}

func digestString(h hash.Hash) string { return "sha256:" + hex.EncodeToString(h.Sum(nil)) }

// writeAtomic writes the file at path (mode 0644) through fill, atomically
// (atomicfile), and returns the sha256 of what fill wrote.
func writeAtomic(path string, fill func(io.Writer) error) (string, error) {
	h := sha256.New()
	err := atomicfile.WriteFunc(path, 0o644, func(w io.Writer) error {
		bw := bufio.NewWriterSize(io.MultiWriter(w, h), 1<<16)
		if err := fill(bw); err != nil {
			return err
		}
		return bw.Flush()
	})
	if err != nil {
		return "", err
	}
	return digestString(h), nil
}
