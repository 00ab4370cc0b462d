package initbin

import (
	"bytes"
	"crypto/sha256"
	"debug/elf"
	"encoding/hex"
	"errors"
	"testing"
	"testing/fstest"
)

func TestRead(t *testing.T) {
	bin := []byte("\x7fELF guest")
	sum := sha256.Sum256(bin)
	digest := hex.EncodeToString(sum[:]) + "  ccos-init\n"
	tests := []struct {
		name  string
		files fstest.MapFS
		is    error
	}{
		{"ok", fstest.MapFS{binaryFile: {Data: bin}, digestFile: {Data: []byte(digest)}}, nil},
		{"no binary", fstest.MapFS{"bin/README.md": {}}, ErrMissing},
		{"no digest", fstest.MapFS{binaryFile: {Data: bin}}, ErrMissing},
		{"empty digest", fstest.MapFS{binaryFile: {Data: bin}, digestFile: {Data: nil}}, ErrDigest},
		{"short digest", fstest.MapFS{binaryFile: {Data: bin}, digestFile: {Data: []byte("abcd  ccos-init\n")}}, ErrDigest},
		{"changed binary", fstest.MapFS{binaryFile: {Data: append(bin, 0)}, digestFile: {Data: []byte(digest)}}, ErrDigest},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := read(tt.files)
			if !errors.Is(err, tt.is) || (tt.is == nil && !bytes.Equal(got, bin)) {
				t.Fatalf("read = %q, %v; want error %v", got, err, tt.is)
			}
		})
	}
}

// TestEmbedded checks the generated binary when `go generate` has run: a
// static x86-64 executable whose digest SHA256 reports.
func TestEmbedded(t *testing.T) {
	bin, err := Bytes()
	if errors.Is(err, ErrMissing) {
		t.Skip(err)
	}
	if err != nil {
		t.Fatal(err)
	}
	f, err := elf.NewFile(bytes.NewReader(bin))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if f.Machine != elf.EM_X86_64 {
		t.Errorf("machine %v", f.Machine)
	}
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			t.Error("the guest /init is dynamically linked")
		}
	}
	sum := sha256.Sum256(bin)
	if got, err := SHA256(); err != nil || got != hex.EncodeToString(sum[:]) {
		t.Errorf("SHA256 = %s, %v", got, err)
	}
}
