package image

import (
	"bytes"
	"debug/elf"
	"encoding/binary"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ccos-project/ccos/internal/testenv"
)

// fakeELF returns a minimal ELF64 executable for machine that exits at
// once (on x86-64), with a PT_INTERP segment when interp is set. It is
// enough for checkInit and keeps the tests from building Go binaries.
func fakeELF(machine elf.Machine, interp bool) []byte {
	const ehsize, phsize, base = 64, 56, 0x400000
	phnum := 1
	if interp {
		phnum = 2
	}
	code := []byte{0xb8, 60, 0, 0, 0, 0x31, 0xff, 0x0f, 0x05} // mov eax,60; xor edi,edi; syscall
	interpPath := []byte("/lib64/ld-linux-x86-64.so.2\x00")
	codeOff := uint64(ehsize + phsize*phnum)
	interpOff := codeOff + uint64(len(code))
	size := interpOff + uint64(len(interpPath))
	var b bytes.Buffer
	w := func(v any) { binary.Write(&b, binary.LittleEndian, v) }
	b.Write([]byte{0x7f, 'E', 'L', 'F', 2, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0})
	w(uint16(elf.ET_EXEC))
	w(uint16(machine))
	w(uint32(1))
	w(uint64(base + codeOff)) // entry
	w(uint64(ehsize))         // phoff
	w(uint64(0))              // shoff
	w(uint32(0))              // flags
	w(uint16(ehsize))
	w(uint16(phsize))
	w(uint16(phnum))
	w(uint16(0)) // shentsize
	w(uint16(0)) // shnum
	w(uint16(0)) // shstrndx
	prog := func(typ elf.ProgType, flags elf.ProgFlag, off, n uint64) {
		w(uint32(typ))
		w(uint32(flags))
		w(off)
		w(uint64(base) + off)
		w(uint64(base) + off)
		w(n)
		w(n)
		w(uint64(0x1000))
	}
	prog(elf.PT_LOAD, elf.PF_R|elf.PF_X, 0, size)
	if interp {
		prog(elf.PT_INTERP, elf.PF_R, interpOff, uint64(len(interpPath)))
	}
	b.Write(code)
	b.Write(interpPath)
	return b.Bytes()
}

// fakeKernel is a kernel image and modules directory laid out as Debian
// does, with fake module files: enough for every step of Build except
// booting.
type fakeKernel struct {
	Kernel, ModulesDir string
}

// newFakeKernel writes a fake kernel of the given version into a test
// directory, with the modules of testdata/modules.dep.
func newFakeKernel(t testing.TB, version string) fakeKernel {
	t.Helper()
	root := t.TempDir()
	k := fakeKernel{
		Kernel:     filepath.Join(root, "boot", kernelPrefix+version),
		ModulesDir: filepath.Join(root, "lib", "modules", version),
	}
	dep, err := os.ReadFile("testdata/modules.dep")
	if err != nil {
		t.Fatal(err)
	}
	mustWrite(t, k.Kernel, []byte("fake kernel "+version+strings.Repeat("\x00\xff", 4096)), 0o644)
	mustWrite(t, filepath.Join(k.ModulesDir, "modules.dep"), dep, 0o644)
	mustWrite(t, filepath.Join(k.ModulesDir, "modules.builtin"), []byte("kernel/fs/ext4/ext4.ko\n"), 0o644)
	for _, line := range strings.Split(string(dep), "\n") {
		if p, _, ok := strings.Cut(line, ":"); ok {
			name, _ := moduleName(p)
			mustWrite(t, filepath.Join(k.ModulesDir, p), []byte("\x7fELF fake module "+name), 0o644)
		}
	}
	return k
}

func mustWrite(t testing.TB, p string, data []byte, perm os.FileMode) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, data, perm); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(p, perm); err != nil {
		t.Fatal(err)
	}
}

// needMksquashfs skips the test (fails it under CI) when mksquashfs is
// not installed.
func needMksquashfs(t testing.TB) {
	t.Helper()
	testenv.Tool(t, "mksquashfs", "install the Debian package squashfs-tools (scripts/test does)")
}

// testInputs are inputs for a fake kernel with a config and a small
// capabilities tree.
func testInputs(t testing.TB, k fakeKernel) Inputs {
	t.Helper()
	dir := t.TempDir()
	config := filepath.Join(dir, "agent.config.rtfs")
	mustWrite(t, config, []byte("(agent.config :version \"0.1\" :agent-id \"a\")\n"), 0o644)
	caps := filepath.Join(dir, "capabilities")
	mustWrite(t, filepath.Join(caps, "contracts", "http.rtfs"), []byte("{:id \"http\"}\n"), 0o600)
	mustWrite(t, filepath.Join(caps, "bin", "tool"), []byte("#!/bin/true\n"), 0o700)
	if err := os.MkdirAll(filepath.Join(caps, "empty"), 0o700); err != nil {
		t.Fatal(err)
	}
	return Inputs{
		Init:            fakeELF(elf.EM_X86_64, false),
		KernelPath:      k.Kernel,
		ModulesDir:      k.ModulesDir,
		ConfigFile:      config,
		CapabilitiesDir: caps,
		Epoch:           1700000000,
	}
}
