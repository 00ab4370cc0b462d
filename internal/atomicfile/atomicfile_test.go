package atomicfile

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
)

func TestWriteModeAndContent(t *testing.T) {
	old := syscall.Umask(0o077)
	defer syscall.Umask(old)
	dir := t.TempDir()
	for _, perm := range []os.FileMode{0o600, 0o644, 0o400} {
		p := filepath.Join(dir, "f"+perm.String())
		if err := Write(p, []byte("one"), perm); err != nil {
			t.Fatal(err)
		}
		if err := Write(p, []byte("two"), perm); err != nil {
			t.Fatal(err)
		}
		fi, err := os.Lstat(p)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode() != perm {
			t.Errorf("%s: mode %v, want %v (the umask must not change it)", p, fi.Mode(), perm)
		}
		if b, _ := os.ReadFile(p); string(b) != "two" {
			t.Errorf("%s holds %q", p, b)
		}
	}
	assertOnly(t, dir, "f-r--------", "f-rw-------", "f-rw-r--r--")
}

// A file planted beside the target, under any name, is never written
// through: not a leftover temp file, not a symbolic link.
func TestWriteIgnoresPlantedFiles(t *testing.T) {
	dir := t.TempDir()
	outside := filepath.Join(t.TempDir(), "victim")
	if err := os.WriteFile(outside, []byte("victim"), 0o644); err != nil {
		t.Fatal(err)
	}
	target := filepath.Join(dir, "key")
	for _, name := range []string{"key.tmp", ".key.tmp-", ".key.tmp-1"} {
		if err := os.Symlink(outside, filepath.Join(dir, name)); err != nil {
			t.Fatal(err)
		}
	}
	if err := Write(target, []byte("secret"), 0o600); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(outside); string(b) != "victim" {
		t.Fatalf("the symlink's target was written: %q", b)
	}
	// A symbolic link at the target itself is replaced, not followed.
	if err := os.Remove(target); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(outside, target); err != nil {
		t.Fatal(err)
	}
	if err := Write(target, []byte("secret"), 0o600); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(outside); string(b) != "victim" {
		t.Fatalf("the target symlink was followed: %q", b)
	}
	if fi, err := os.Lstat(target); err != nil || !fi.Mode().IsRegular() || fi.Mode().Perm() != 0o600 {
		t.Fatalf("target: %v %v", fi, err)
	}
}

func TestFailedWriteLeavesTarget(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "f")
	if err := Write(p, []byte("old"), 0o644); err != nil {
		t.Fatal(err)
	}
	boom := errors.New("boom")
	err := WriteFunc(p, 0o644, func(w io.Writer) error {
		w.Write([]byte("partial"))
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatalf("err = %v", err)
	}
	if b, _ := os.ReadFile(p); string(b) != "old" {
		t.Fatalf("target holds %q", b)
	}
	assertOnly(t, dir, "f")
	// Into a directory that does not exist: an error naming the file.
	if err := Write(filepath.Join(dir, "no", "f"), nil, 0o644); err == nil {
		t.Fatal("wrote into a missing directory")
	}
}

func TestSteps(t *testing.T) {
	dir := t.TempDir()
	var steps []string
	o := Options{TempPrefix: ".tmp-", Step: func(s string) {
		steps = append(steps, s)
		if s == StepTempSynced {
			ents, _ := os.ReadDir(dir)
			if len(ents) != 1 || !strings.HasPrefix(ents[0].Name(), ".tmp-") {
				t.Errorf("before the rename the directory holds %v", ents)
			}
		}
	}}
	if err := o.Write(filepath.Join(dir, "f"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	want := []string{StepTempWritten, StepTempSynced, StepRenamed, StepDirSynced}
	if !slices.Equal(steps, want) {
		t.Fatalf("steps %v, want %v", steps, want)
	}
}

func TestCreateForAProgram(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "img")
	f, err := Create(p, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	// Another writer fills the file by name (as mksquashfs does).
	if err := os.WriteFile(f.Name(), []byte("image"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := f.Commit(); err != nil {
		t.Fatal(err)
	}
	f.Abort() // no effect after Commit
	if b, _ := os.ReadFile(p); string(b) != "image" {
		t.Fatalf("got %q", b)
	}
	if err := f.Commit(); err == nil {
		t.Fatal("committed twice")
	}
	g, err := Create(filepath.Join(dir, "dropped"), 0o644)
	if err != nil {
		t.Fatal(err)
	}
	g.Abort()
	assertOnly(t, dir, "img")
}

func assertOnly(t *testing.T, dir string, names ...string) {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range ents {
		got = append(got, e.Name())
	}
	slices.Sort(names)
	if !slices.Equal(got, names) {
		t.Fatalf("directory holds %v, want %v", got, names)
	}
}
