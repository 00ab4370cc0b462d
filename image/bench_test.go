package image

import (
	"context"
	"path/filepath"
	"strconv"
	"testing"
)

// benchInputs are the inputs of the default image on this host: the
// installed cloud kernel and its modules when present, else a fake kernel.
func benchInputs(b *testing.B) Inputs {
	needMksquashfs(b)
	in := testInputs(b, newFakeKernel(b, "6.1.0-99-test"))
	if _, err := DefaultKernel(); err == nil {
		in.KernelPath, in.ModulesDir = "", ""
	}
	return in
}

// BenchmarkBuild measures a full build: resolving and hashing the inputs,
// copying the kernel, writing the initramfs, running mksquashfs.
func BenchmarkBuild(b *testing.B) {
	in := benchInputs(b)
	dir := b.TempDir()
	for i := 0; b.Loop(); i++ {
		if _, err := Build(context.Background(), in, filepath.Join(dir, strconv.Itoa(i))); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkCachedHit measures what `ccos run` pays for an image already in
// the cache: reading and hashing every input to find its key.
func BenchmarkCachedHit(b *testing.B) {
	in := benchInputs(b)
	root := b.TempDir()
	if _, err := Cached(context.Background(), in, root); err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if _, err := Cached(context.Background(), in, root); err != nil {
			b.Fatal(err)
		}
	}
}
