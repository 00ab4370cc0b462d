package archive

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
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

// writeAtomic stores data as dir/name so that a reader sees either the old
// file or the whole new one: temp file in the same directory, write, fsync,
// close, rename over name, fsync the directory. what names the steps for
// crashHook.
func writeAtomic(dir, name string, data []byte, what string) (err error) {
	f, err := os.CreateTemp(dir, tempPrefix+"*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(tmp)
		}
	}()
	if _, err = f.Write(data); err != nil {
		return err
	}
	step(what + "-temp-written")
	if err = f.Sync(); err != nil {
		return err
	}
	step(what + "-temp-synced")
	if err = f.Close(); err != nil {
		return err
	}
	if err = os.Rename(tmp, filepath.Join(dir, name)); err != nil {
		return err
	}
	step(what + "-renamed")
	if err = syncDir(dir); err != nil {
		return err
	}
	step(what + "-dir-synced")
	return nil
}

// syncDir fsyncs a directory so that the names created, renamed or removed
// in it survive a power loss.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("fsync directory %s: %w", dir, err)
	}
	return nil
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
	return syncDir(filepath.Dir(dir))
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
