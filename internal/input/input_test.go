package input

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

func TestReadFile(t *testing.T) {
	dir := t.TempDir()
	ok := filepath.Join(dir, "ok.rtfs")
	if err := os.WriteFile(ok, []byte("(+ 1 2)"), 0o644); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(dir, "link.rtfs")
	if err := os.Symlink(ok, link); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{ok, link} {
		if b, err := ReadFile(p, 100); err != nil || string(b) != "(+ 1 2)" {
			t.Errorf("ReadFile(%s) = %q, %v", p, b, err)
		}
	}
	if _, err := ReadFile(ok, 3); !isTooLarge(err) || !strings.Contains(err.Error(), "7 bytes, over the limit of 3 bytes") {
		t.Errorf("over the limit: %v", err)
	}
	if _, err := ReadFile(filepath.Join(dir, "none"), 100); err == nil || !strings.Contains(err.Error(), "cannot read "+dir+"/none: no such file") {
		t.Errorf("missing file: %v", err)
	}
}

// TestReadFileRefusesSpecialFiles: a FIFO without a writer must not hang,
// /dev/zero must not be read at all.
func TestReadFileRefusesSpecialFiles(t *testing.T) {
	dir := t.TempDir()
	fifo := filepath.Join(dir, "fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ path, kind string }{
		{fifo, "a named pipe (FIFO)"},
		{"/dev/zero", "a character device"},
		{dir, "a directory"},
	} {
		_, err := ReadFile(c.path, MaxSource)
		if !errors.Is(err, ErrNotRegular) || !strings.Contains(err.Error(), c.kind) || !strings.Contains(err.Error(), "or - to read standard input") {
			t.Errorf("%s: %v", c.path, err)
		}
	}
}

func TestReadArg(t *testing.T) {
	b, name, err := ReadArg("-", strings.NewReader("abc"), 3)
	if err != nil || name != StdinName || string(b) != "abc" {
		t.Fatalf("ReadArg(-) = %q, %q, %v", b, name, err)
	}
	_, _, err = ReadArg("-", strings.NewReader("abcd"), 3)
	if !isTooLarge(err) || !strings.Contains(err.Error(), "<stdin>: more than 3 bytes") {
		t.Fatalf("stdin over the limit: %v", err)
	}
	// An endless stream stops at the bound.
	f, err := os.Open("/dev/zero")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, _, err := ReadArg("-", f, 1<<20); !isTooLarge(err) {
		t.Fatalf("endless stdin: %v", err)
	}
}

func isTooLarge(err error) bool {
	var tl *TooLargeError
	return errors.As(err, &tl)
}
