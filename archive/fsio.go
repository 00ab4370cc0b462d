package archive

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/ccos-project/ccos/internal/atomicfile"
)

// tempPrefix starts the name of every temporary file the archive writes.
// Such files are never objects; Open removes the ones a dead writer left.
const tempPrefix = ".tmp-"

// crashHook, when set (by tests only), is called at each named step of a
// write so that a test writer can kill itself exactly there.
var crashHook func(step string)

func step(name string) {
	if crashHook != nil {
		crashHook(name)
	}
}

// writeAtomic stores data as dir/name (mode 0600) so that a reader sees
// either the old file or the whole new one (atomicfile: temp file in the
// same directory, fsync, rename, directory fsync). what names the steps for
// crashHook.
func writeAtomic(dir, name string, data []byte, what string) error {
	o := atomicfile.Options{TempPrefix: tempPrefix, Step: func(s string) { step(what + "-" + s) }}
	return o.Write(filepath.Join(dir, name), data, 0o600)
}

// ensureDir creates dir (and its parent, one level up, if missing),
// fsyncing each parent whose listing changed so that the new directory
// itself is durable before objects are renamed into it.
func ensureDir(dir string) error {
	if _, err := os.Stat(dir); err == nil {
		return nil
	}
	parent := filepath.Dir(dir)
	if err := ensureDirOnce(parent); err != nil {
		return err
	}
	return ensureDirOnce(dir)
}

func ensureDirOnce(dir string) error {
	err := os.Mkdir(dir, 0o700)
	if errors.Is(err, fs.ErrExist) {
		return nil
	}
	if err != nil {
		return err
	}
	return atomicfile.SyncDir(filepath.Dir(dir))
}

// fileLock is an advisory flock(2) lock on the archive's lock file. Each
// Archive opens the file itself, so two Archives (in one process or two)
// exclude each other.
type fileLock struct{ f *os.File }

func openLock(path string) (*fileLock, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, err
	}
	return &fileLock{f: f}, nil
}

func (l *fileLock) lock(exclusive bool) error {
	how := syscall.LOCK_SH
	if exclusive {
		how = syscall.LOCK_EX
	}
	for {
		err := syscall.Flock(int(l.f.Fd()), how)
		if err != syscall.EINTR {
			if err != nil {
				return fmt.Errorf("archive: flock %s: %w", l.f.Name(), err)
			}
			return nil
		}
	}
}

func (l *fileLock) unlock() { syscall.Flock(int(l.f.Fd()), syscall.LOCK_UN) }

func (l *fileLock) close() error { return l.f.Close() }

// isTemp reports whether a file name is one of the archive's temp files.
func isTemp(name string) bool { return strings.HasPrefix(name, tempPrefix) }
