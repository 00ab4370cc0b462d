// Package image builds the guest images that ccos boots in a microVM, and
// measures them.
//
// An image is a directory of four files:
//
//	vmlinuz        the kernel: the uncompressed PVH ELF inside the host's
//	               bzImage (loaded directly, no decompression in the
//	               guest), or the bzImage itself when it holds none
//	rootfs.initrd  the initramfs: /init (the static guest) and the kernel
//	               modules it loads
//	rootfs.img     the root file system: a read-only squashfs holding
//	               /agent.config.rtfs and /capabilities/
//	manifest.json  what went in and the sha256 measurements of the three
//
// The initramfs and rootfs names follow the convention of vmspec:
// the initramfs sits beside the rootfs image with the extension ".initrd",
// so a config whose :microvm :rootfs :image names DIR/rootfs.img finds it.
//
// The initramfs is an uncompressed cpio archive in the kernel's "newc"
// format (see cpio.go for the layout), written by this package:
//
//	/dev/console          character device 5:1, the kernel's console for /init
//	/dev/null             character device 1:3, for /init's standard descriptors without a console
//	/dev /proc /sys /tmp /store /work /run    empty mount points
//	/init                 the guest, mode 0755
//	/lib/modules/NAME.ko  each module, uncompressed, named by its module name
//	/lib/modules/order    the module files to load, one absolute path a line,
//	                      in load order (/init loads them with finit_module)
//
// It is not compressed: the kernel would spend longer decompressing it under
// TCG emulation than it spends reading a few more megabytes from memory.
// The modules are those of Inputs.Modules (DefaultModules unless set, plus
// NICModules with Inputs.NIC) resolved through the kernel's modules.dep:
// every module comes after the modules it depends on, dependencies the list
// leaves out are added before their first dependent, and modules built into
// the kernel (modules.builtin) are skipped. Compressed modules (.ko.gz,
// .ko.xz, .ko.zst) are decompressed at build time.
//
// The rootfs is built by mksquashfs (Debian package squashfs-tools) from a
// staged copy of the config and the capabilities tree, compressed with zstd
// when the kernel's config says it can read that (gzip otherwise).
//
// The same inputs give the same bytes: every file of both archives carries
// Inputs.Epoch as its time and root as its owner, permissions are reduced to
// 0755 (directories and executables) and 0644, members are in sorted order,
// and nothing of the build host (paths, user, time, extended attributes)
// takes part. Build writes every file to a temporary name, syncs it and
// renames it into place, the manifest last: a directory with a manifest is a
// complete image. Cached keeps images in a directory keyed by the sha256 of
// all the inputs' bytes.
package image

import (
	"bytes"
	"context"
	"debug/elf"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strconv"
)

// File names inside an image directory.
const (
	KernelFile    = "vmlinuz"
	InitramfsFile = "rootfs.initrd"
	RootfsFile    = "rootfs.img"
	ManifestFile  = "manifest.json"
)

// Paths inside the initramfs (without the leading slash of the guest's
// view).
const (
	initPath        = "init"
	moduleDir       = "lib/modules"
	moduleOrderPath = moduleDir + "/order"
)

// What /init finds: GuestModuleOrder in the initramfs lists the module
// files to load, one absolute path a line, in load order; RootfsConfig and
// RootfsCapabilities are paths inside the rootfs, relative to where /init
// mounts it.
const (
	GuestModuleOrder   = "/" + moduleOrderPath
	RootfsConfig       = rootfsConfig
	RootfsCapabilities = rootfsCapabilities
)

// mountPoints are the empty directories of the initramfs that /init mounts
// file systems on.
var mountPoints = []string{"dev", "proc", "sys", "tmp", "store", "work", "run"}

// ErrInit is returned (wrapped, saying what is wrong) when Inputs.Init is
// not a static x86-64 ELF executable, which is all the kernel can start as
// /init from an initramfs that holds nothing else.
var ErrInit = errors.New("invalid /init binary")

// ErrInputs is returned (wrapped) when Inputs are incomplete or out of
// range.
var ErrInputs = errors.New("invalid image inputs")

// Inputs is everything an image is built from. Build reads nothing else
// except mksquashfs.
type Inputs struct {
	// Init is the static /init binary (an ELF executable for x86-64).
	Init []byte
	// KernelPath is the kernel image; when empty, DefaultKernel.
	KernelPath string
	// ModulesDir is the kernel's modules directory; when empty,
	// /lib/modules/VERSION with VERSION from the kernel's file name
	// (vmlinuz-VERSION).
	ModulesDir string
	// Modules are the module names in load order; when nil,
	// DefaultModules.
	Modules []string
	// NIC adds NICModules (virtio_net) after Modules.
	NIC bool
	// Vsock adds VsockModules: the guest's control channel is a vsock
	// (Firecracker) rather than virtio-serial.
	Vsock bool
	// ConfigFile is the agent config, copied into the rootfs as
	// /agent.config.rtfs.
	ConfigFile string
	// ConfigData, when not nil, is what the rootfs carries as
	// /agent.config.rtfs instead of ConfigFile's bytes: ccos writes the
	// guest's copy of the config there (see GuestConfig in cmd/ccos),
	// without the rootfs hash the host's copy expects, since a rootfs
	// cannot hold its own hash.
	ConfigData []byte
	// CapabilitiesDir, when set, is copied into the rootfs as
	// /capabilities/ (directories and regular files only); without it
	// /capabilities is empty.
	CapabilitiesDir string
	// Epoch is the time, in seconds since 1970, of every file in the
	// image; EpochFromEnv reads the SOURCE_DATE_EPOCH convention. It must
	// fit in 32 bits (both archive formats store it so).
	Epoch int64
}

// Measurements are the sha256 digests of an image's files, each written
// "sha256:<hex>" as :expect_rootfs_hash is.
type Measurements struct {
	Kernel    string `json:"kernel"`
	Initramfs string `json:"initramfs"`
	Rootfs    string `json:"rootfs"`
}

// Image is a built image.
type Image struct {
	// Dir is the image directory; Kernel, Initramfs and Rootfs are the
	// paths of its files.
	Dir, Kernel, Initramfs, Rootfs string
	// Measurements are the digests recorded when the image was built.
	Measurements Measurements
	// KernelFormat is KernelELFPVH or KernelBzImage; KernelNote says why a
	// bzImage was kept.
	KernelFormat, KernelNote string
	// Manifest is the image's manifest.json.
	Manifest Manifest
}

// EpochFromEnv returns SOURCE_DATE_EPOCH as an Epoch, or 0 when it is not
// set (https://reproducible-builds.org/specs/source-date-epoch/).
func EpochFromEnv() (int64, error) {
	v, ok := os.LookupEnv("SOURCE_DATE_EPOCH")
	if !ok || v == "" {
		return 0, nil
	}
	e, err := strconv.ParseInt(v, 10, 64)
	if err != nil || e < 0 || e > math.MaxUint32 {
		return 0, fmt.Errorf("%w: SOURCE_DATE_EPOCH=%q is not a number of seconds between 0 and %d", ErrInputs, v, uint32(math.MaxUint32))
	}
	return e, nil
}

// Build builds the image of in into outDir, which it creates if needed;
// files of an earlier image there are replaced.
func Build(ctx context.Context, in Inputs, outDir string) (*Image, error) {
	r, err := resolve(ctx, in)
	if err != nil {
		return nil, err
	}
	return r.build(ctx, outDir)
}

// module is a kernel module to put into the initramfs.
type module struct {
	Name string
	// Source is the module's file on the host.
	Source string
	// Data is the module, uncompressed.
	Data []byte
}

// resolved is Inputs with every default filled in and every input read:
// what the image is a function of.
type resolved struct {
	in            Inputs
	kernelPath    string
	kernelVersion string
	kernelDigest  string
	modulesDir    string
	modules       []module
	builtin       []string
	config        []byte
	caps          []treeFile
	compression   string
	mksquashfs    string
	mksquashfsVer string
}

// resolveSteps fill a resolved, in order; each reads what the earlier ones
// filled.
var resolveSteps = []struct {
	name string
	run  func(context.Context, *resolved) error
}{
	{"epoch", checkEpoch},
	{"init", checkInit},
	{"kernel", resolveKernel},
	{"modules", resolveModules},
	{"config", readConfig},
	{"capabilities", readCapabilities},
	{"mksquashfs", findMksquashfs},
}

func resolve(ctx context.Context, in Inputs) (*resolved, error) {
	r := &resolved{in: in}
	for _, s := range resolveSteps {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		if err := s.run(ctx, r); err != nil {
			return nil, fmt.Errorf("image: %s: %w", s.name, err)
		}
	}
	return r, nil
}

func checkEpoch(_ context.Context, r *resolved) error {
	if r.in.Epoch < 0 || r.in.Epoch > math.MaxUint32 {
		return fmt.Errorf("%w: epoch %d is not between 0 and %d", ErrInputs, r.in.Epoch, uint32(math.MaxUint32))
	}
	return nil
}

func checkInit(_ context.Context, r *resolved) error {
	if len(r.in.Init) == 0 {
		return fmt.Errorf("%w: no /init binary given", ErrInit)
	}
	f, err := elf.NewFile(bytes.NewReader(r.in.Init))
	if err != nil {
		return fmt.Errorf("%w: not an ELF file: %v", ErrInit, err)
	}
	defer f.Close()
	if f.Machine != elf.EM_X86_64 || f.Class != elf.ELFCLASS64 {
		return fmt.Errorf("%w: built for %v %v, the guest is x86-64 (build with GOARCH=amd64)", ErrInit, f.Class, f.Machine)
	}
	if f.Type != elf.ET_EXEC && f.Type != elf.ET_DYN {
		return fmt.Errorf("%w: ELF type %v is not an executable", ErrInit, f.Type)
	}
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			return fmt.Errorf("%w: dynamically linked (it has an ELF interpreter) and the initramfs holds no libraries: build it with CGO_ENABLED=0", ErrInit)
		}
	}
	return nil
}

func resolveKernel(_ context.Context, r *resolved) error {
	r.kernelPath = r.in.KernelPath
	if r.kernelPath == "" {
		k, err := DefaultKernel()
		if err != nil {
			return err
		}
		r.kernelPath = k
	}
	info, err := os.Stat(r.kernelPath)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrKernelNotFound, err)
	}
	if !info.Mode().IsRegular() {
		return fmt.Errorf("%w: %s is not a regular file", ErrKernelNotFound, r.kernelPath)
	}
	r.modulesDir = r.in.ModulesDir
	r.kernelVersion = kernelVersion(r.kernelPath)
	switch {
	case r.modulesDir != "":
		r.kernelVersion = filepath.Base(r.modulesDir)
	case r.kernelVersion == "":
		return fmt.Errorf("%w: cannot tell the version of kernel %s from its name (want %sVERSION): name its modules directory", ErrInputs, r.kernelPath, kernelPrefix)
	default:
		r.modulesDir = filepath.Join(modulesRoot, r.kernelVersion)
	}
	r.compression = squashfsCompression(r.kernelPath, r.kernelVersion)
	r.kernelDigest, err = Measure(r.kernelPath)
	return err
}

func resolveModules(_ context.Context, r *resolved) error {
	want := r.in.Modules
	if want == nil {
		want = DefaultModules
	}
	if r.in.NIC {
		want = append(append([]string(nil), want...), NICModules...)
	}
	if r.in.Vsock {
		want = append(append([]string(nil), want...), VsockModules...)
	}
	idx, err := loadModuleIndex(r.modulesDir)
	if err != nil {
		return err
	}
	order, builtin, err := idx.loadOrder(want)
	if err != nil {
		return fmt.Errorf("%w (in %s)", err, filepath.Join(r.modulesDir, "modules.dep"))
	}
	r.builtin = builtin
	for _, name := range order {
		src := filepath.Join(r.modulesDir, filepath.FromSlash(idx.path[name]))
		data, err := readModule(src)
		if err != nil {
			if errors.Is(err, os.ErrNotExist) {
				return fmt.Errorf("%w: %s: modules.dep lists %s but it is missing", ErrModuleNotFound, name, src)
			}
			return fmt.Errorf("module %s: %w", name, err)
		}
		r.modules = append(r.modules, module{Name: name, Source: src, Data: data})
	}
	return nil
}

func readConfig(_ context.Context, r *resolved) error {
	if r.in.ConfigData != nil {
		r.config = r.in.ConfigData
		return nil
	}
	if r.in.ConfigFile == "" {
		return fmt.Errorf("%w: no agent config file given (the rootfs carries it as /%s)", ErrInputs, rootfsConfig)
	}
	data, err := os.ReadFile(r.in.ConfigFile)
	if err != nil {
		return fmt.Errorf("reading the agent config: %w", err)
	}
	r.config = data
	return nil
}

func readCapabilities(_ context.Context, r *resolved) error {
	if r.in.CapabilitiesDir == "" {
		return nil
	}
	caps, err := readTree(r.in.CapabilitiesDir)
	r.caps = caps
	return err
}

func findMksquashfs(ctx context.Context, r *resolved) error {
	bin, ver, err := mksquashfs(ctx)
	r.mksquashfs, r.mksquashfsVer = bin, ver
	return err
}
