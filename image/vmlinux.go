package image

import (
	"bytes"
	"compress/gzip"
	"debug/elf"
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"github.com/klauspost/compress/zstd"
	"github.com/pierrec/lz4/v4"
)

// Kernel formats of an image's kernel file.
const (
	// KernelELFPVH is the uncompressed kernel (vmlinux) with a PVH entry
	// point: QEMU and Firecracker load it directly, with no decompression
	// inside the guest (about 0.4 s of a TCG boot here).
	KernelELFPVH = "elf-pvh"
	// KernelBzImage is the kernel as installed, decompressing itself at
	// boot.
	KernelBzImage = "bzImage"
)

// maxVmlinux bounds an extracted kernel.
const maxVmlinux = 256 << 20

// errNoPVH says why a bzImage was kept as it is.
var errNoPVH = errors.New("no PVH kernel inside")

// extractVmlinux returns the uncompressed ELF kernel inside a bzImage, if it
// has a PVH entry note (XEN_ELFNOTE_PHYS32_ENTRY); otherwise errNoPVH,
// wrapped with the reason.
//
// The payload is found by the x86 boot protocol's setup header (2.08 and
// later): it starts payload_offset bytes after the setup sectors and is
// payload_length bytes long; its compressor is known by its magic.
func extractVmlinux(bz []byte) ([]byte, error) {
	if len(bz) < 0x250 || string(bz[0x202:0x206]) != "HdrS" {
		return nil, fmt.Errorf("%w: not a bzImage (no HdrS setup header)", errNoPVH)
	}
	if binary.LittleEndian.Uint16(bz[0x206:0x208]) < 0x208 {
		return nil, fmt.Errorf("%w: boot protocol before 2.08 has no payload fields", errNoPVH)
	}
	setupSects := int(bz[0x1f1])
	if setupSects == 0 {
		setupSects = 4
	}
	off := (setupSects+1)*512 + int(binary.LittleEndian.Uint32(bz[0x248:0x24c]))
	n := int(binary.LittleEndian.Uint32(bz[0x24c:0x250]))
	if off < 0 || n <= 0 || off+n > len(bz) {
		return nil, fmt.Errorf("%w: payload %d+%d outside the %d-byte image", errNoPVH, off, n, len(bz))
	}
	payload := bz[off : off+n]
	var r io.Reader
	switch {
	case bytes.HasPrefix(payload, []byte{0x1f, 0x8b}):
		zr, err := gzip.NewReader(bytes.NewReader(payload))
		if err != nil {
			return nil, fmt.Errorf("%w: gzip payload: %v", errNoPVH, err)
		}
		r = zr
	case bytes.HasPrefix(payload, []byte{0x02, 0x21, 0x4c, 0x18}):
		r = lz4.NewReader(bytes.NewReader(payload))
	case bytes.HasPrefix(payload, []byte{0x28, 0xb5, 0x2f, 0xfd}):
		zr, err := zstd.NewReader(bytes.NewReader(payload), zstd.WithDecoderMaxMemory(maxVmlinux))
		if err != nil {
			return nil, fmt.Errorf("%w: zstd payload: %v", errNoPVH, err)
		}
		defer zr.Close()
		r = zr
	default:
		return nil, fmt.Errorf("%w: payload compressed with an unsupported method (magic % x)", errNoPVH, payload[:min(6, len(payload))])
	}
	var out bytes.Buffer
	if _, err := io.Copy(&out, io.LimitReader(r, maxVmlinux+1)); err != nil {
		return nil, fmt.Errorf("%w: decompressing: %v", errNoPVH, err)
	}
	if out.Len() > maxVmlinux {
		return nil, fmt.Errorf("%w: the kernel inside is larger than %d bytes", errNoPVH, maxVmlinux)
	}
	vmlinux := out.Bytes()
	if err := checkPVH(vmlinux); err != nil {
		return nil, err
	}
	return vmlinux, nil
}

// xenElfnotePhys32Entry is the ELF note type of the PVH entry point.
const xenElfnotePhys32Entry = 18

// checkPVH checks that vmlinux is an x86-64 ELF with a PVH entry note.
func checkPVH(vmlinux []byte) error {
	f, err := elf.NewFile(bytes.NewReader(vmlinux))
	if err != nil {
		return fmt.Errorf("%w: the payload is not an ELF file: %v", errNoPVH, err)
	}
	if f.Machine != elf.EM_X86_64 {
		return fmt.Errorf("%w: the kernel is for %v", errNoPVH, f.Machine)
	}
	for _, p := range f.Progs {
		if p.Type != elf.PT_NOTE {
			continue
		}
		notes, err := io.ReadAll(io.LimitReader(p.Open(), 1<<20))
		if err != nil {
			continue
		}
		for len(notes) >= 12 {
			namesz := int(binary.LittleEndian.Uint32(notes[0:4]))
			descsz := int(binary.LittleEndian.Uint32(notes[4:8]))
			typ := binary.LittleEndian.Uint32(notes[8:12])
			name := (namesz + 3) &^ 3
			desc := (descsz + 3) &^ 3
			if namesz < 0 || descsz < 0 || 12+name+desc > len(notes) {
				break
			}
			if typ == xenElfnotePhys32Entry && bytes.Equal(bytes.TrimRight(notes[12:12+namesz], "\x00"), []byte("Xen")) {
				return nil
			}
			notes = notes[12+name+desc:]
		}
	}
	return fmt.Errorf("%w: the kernel has no PVH entry note (CONFIG_PVH)", errNoPVH)
}
