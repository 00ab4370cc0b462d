package image

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
)

// ManifestFormat identifies the manifest's layout; it changes when a field
// changes meaning.
const ManifestFormat = "ccos-image/1"

// ErrManifest is returned (wrapped) when an image directory has no
// readable manifest of a known format.
var ErrManifest = errors.New("bad image manifest")

// ErrMeasurement is returned (wrapped, with both digests) by Verify when a
// file of an image does not hash to what its manifest recorded.
var ErrMeasurement = errors.New("image measurement mismatch")

// Manifest describes what an image was built from and what it measures.
// It names no host paths: two builds from the same bytes write the same
// manifest wherever the inputs were.
type Manifest struct {
	Format string `json:"format"`
	// KernelVersion is the version of the kernel and its modules.
	KernelVersion string `json:"kernel_version"`
	// KernelFormat is "elf-pvh" (extracted from the host's bzImage) or
	// "bzImage"; KernelSource is the digest of the host's kernel file.
	KernelFormat string `json:"kernel_format"`
	KernelSource string `json:"kernel_source"`
	// Modules are the modules in the initramfs, in load order.
	Modules []string `json:"modules"`
	// BuiltinModules are the requested modules built into the kernel.
	BuiltinModules []string `json:"builtin_modules,omitempty"`
	// RootfsCompression is the squashfs compressor.
	RootfsCompression string `json:"rootfs_compression"`
	// Mksquashfs is the version line of the mksquashfs that built the
	// rootfs.
	Mksquashfs string `json:"mksquashfs"`
	// Epoch is the time of every file in the image.
	Epoch int64 `json:"epoch"`
	// Init and Config are the digests of the /init binary and the agent
	// config, "sha256:<hex>".
	Init   string `json:"init"`
	Config string `json:"config"`
	// Files are the names of the image's files in its directory.
	Files Files `json:"files"`
	// Measurements are the digests of the image's files.
	Measurements Measurements `json:"measurements"`
}

// Files names the files of an image inside its directory.
type Files struct {
	Kernel    string `json:"kernel"`
	Initramfs string `json:"initramfs"`
	Rootfs    string `json:"rootfs"`
}

func writeManifest(_ context.Context, r *resolved, img *Image) error {
	img.Manifest = Manifest{
		Format:            ManifestFormat,
		KernelVersion:     r.kernelVersion,
		KernelFormat:      img.KernelFormat,
		KernelSource:      r.kernelDigest,
		Modules:           []string{},
		BuiltinModules:    r.builtin,
		RootfsCompression: r.compression,
		Mksquashfs:        r.mksquashfsVer,
		Epoch:             r.in.Epoch,
		Init:              digestOf(r.in.Init),
		Config:            digestOf(r.config),
		Files:             Files{Kernel: KernelFile, Initramfs: InitramfsFile, Rootfs: RootfsFile},
		Measurements:      img.Measurements,
	}
	for _, m := range r.modules {
		img.Manifest.Modules = append(img.Manifest.Modules, m.Name)
	}
	data, err := json.MarshalIndent(img.Manifest, "", "  ")
	if err != nil {
		return err
	}
	_, err = writeAtomic(filepath.Join(img.Dir, ManifestFile), func(w io.Writer) error {
		_, err := w.Write(append(data, '\n'))
		return err
	})
	return err
}

// Open reads the image in dir from its manifest and checks that its files
// exist. It does not hash them; Verify does.
func Open(dir string) (*Image, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	data, err := os.ReadFile(filepath.Join(abs, ManifestFile))
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrManifest, err)
	}
	var m Manifest
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&m); err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrManifest, filepath.Join(abs, ManifestFile), err)
	}
	if m.Format != ManifestFormat {
		return nil, fmt.Errorf("%w: %s: format %q, want %q", ErrManifest, filepath.Join(abs, ManifestFile), m.Format, ManifestFormat)
	}
	for _, f := range []string{m.Files.Kernel, m.Files.Initramfs, m.Files.Rootfs} {
		if f == "" || filepath.Base(f) != f || f == "." || f == ".." {
			return nil, fmt.Errorf("%w: %s: file name %q is not a plain name", ErrManifest, filepath.Join(abs, ManifestFile), f)
		}
	}
	img := &Image{
		Dir:          abs,
		Kernel:       filepath.Join(abs, m.Files.Kernel),
		Initramfs:    filepath.Join(abs, m.Files.Initramfs),
		Rootfs:       filepath.Join(abs, m.Files.Rootfs),
		Measurements: m.Measurements,
		Manifest:     m,
	}
	for _, p := range []string{img.Kernel, img.Initramfs, img.Rootfs} {
		if info, err := os.Stat(p); err != nil || !info.Mode().IsRegular() {
			return nil, fmt.Errorf("%w: %s lists %s, which is not a regular file", ErrManifest, filepath.Join(abs, ManifestFile), p)
		}
	}
	return img, nil
}

// Verify hashes the image's files and compares them with Measurements.
func (img *Image) Verify() error {
	for _, f := range []struct{ name, path, want string }{
		{"kernel", img.Kernel, img.Measurements.Kernel},
		{"initramfs", img.Initramfs, img.Measurements.Initramfs},
		{"rootfs", img.Rootfs, img.Measurements.Rootfs},
	} {
		got, err := Measure(f.path)
		if err != nil {
			return err
		}
		if got != f.want {
			return fmt.Errorf("%w: %s %s measures %s, the manifest recorded %s", ErrMeasurement, f.name, f.path, got, f.want)
		}
	}
	return nil
}
