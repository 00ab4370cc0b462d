package wasm

import (
	"io/fs"
	"os"
	"path/filepath"
	"sync"

	experimentalsys "github.com/tetratelabs/wazero/experimental/sys"
	"github.com/tetratelabs/wazero/experimental/sysfs"
)

// blockSize is what every directory entry is charged at least, so that a
// guest cannot fill the host disk's inodes with empty files.
const blockSize = 4096

// errQuota is what a call past Limits.WorkdirBytes fails with. wazero's
// errno set has no ENOSPC (it would reach the guest as EIO anyway), so the
// guest sees EIO.
const errQuota = experimentalsys.EIO

// workdirFS is the guest's /work: a host directory with two changes to
// wazero's directory file system.
//
// Symlinks cannot be created. wazero refuses absolute targets but the host
// kernel resolves a relative target such as ../../../etc when the link is
// opened, which would reach outside the directory.
//
// Limits.WorkdirBytes is enforced as a quota, since a host directory has
// none. Usage is counted as the apparent size of every file rounded up to
// blockSize, plus blockSize for every other entry; apparent size is never
// below what a file occupies on disk, so the count errs on the side of the
// host. Every call that can grow usage first reserves its worst case
// (a write reserves its length, a truncate the growth, a create or mkdir
// one block) against a running estimate; when the estimate would pass the
// limit the directory is walked to get the exact figure, and if the exact
// figure plus the reservation still passes the limit the call fails with
// ENOSPC and nothing is written.
type workdirFS struct {
	experimentalsys.FS
	dir   string
	limit int64

	mu   sync.Mutex
	used int64
}

func newWorkdirFS(dir string, limit int64) *workdirFS {
	return &workdirFS{FS: sysfs.DirFS(dir), dir: dir, limit: limit}
}

// reserve charges n bytes, or fails with ENOSPC if they do not fit.
func (w *workdirFS) reserve(n int64) experimentalsys.Errno {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.used+n > w.limit {
		w.used = w.usage()
		if w.used+n > w.limit {
			return errQuota
		}
	}
	w.used += n
	return 0
}

// usage walks the directory; entries that vanish or cannot be read while
// walking are charged a block rather than ignored.
func (w *workdirFS) usage() int64 {
	var total int64
	filepath.WalkDir(w.dir, func(path string, d fs.DirEntry, err error) error {
		if path == w.dir {
			return nil
		}
		total += blockSize
		if err != nil || !d.Type().IsRegular() {
			return nil
		}
		if info, err := d.Info(); err == nil {
			total += (info.Size() + blockSize - 1) / blockSize * blockSize
		}
		return nil
	})
	return total
}

// OpenFile implements experimentalsys.FS.
func (w *workdirFS) OpenFile(path string, flag experimentalsys.Oflag, perm fs.FileMode) (experimentalsys.File, experimentalsys.Errno) {
	if flag&experimentalsys.O_CREAT != 0 {
		if errno := w.reserve(blockSize); errno != 0 {
			return nil, errno
		}
	}
	f, errno := w.FS.OpenFile(path, flag, perm)
	if errno != 0 {
		return nil, errno
	}
	return &quotaFile{File: f, fs: w}, 0
}

// Mkdir implements experimentalsys.FS.
func (w *workdirFS) Mkdir(path string, perm fs.FileMode) experimentalsys.Errno {
	if errno := w.reserve(blockSize); errno != 0 {
		return errno
	}
	return w.FS.Mkdir(path, perm)
}

// Link implements experimentalsys.FS; a hard link is charged as an entry
// (and the walk counts the file once per name).
func (w *workdirFS) Link(oldPath, newPath string) experimentalsys.Errno {
	if errno := w.reserve(blockSize); errno != 0 {
		return errno
	}
	return w.FS.Link(oldPath, newPath)
}

// Symlink implements experimentalsys.FS by refusing: see workdirFS.
func (w *workdirFS) Symlink(_, _ string) experimentalsys.Errno {
	return experimentalsys.EPERM
}

// quotaFile charges growth to its workdirFS before it happens.
type quotaFile struct {
	experimentalsys.File
	fs *workdirFS
}

// Write implements experimentalsys.File.
func (f *quotaFile) Write(buf []byte) (int, experimentalsys.Errno) {
	if errno := f.fs.reserve(int64(len(buf))); errno != 0 {
		return 0, errno
	}
	return f.File.Write(buf)
}

// Pwrite implements experimentalsys.File.
func (f *quotaFile) Pwrite(buf []byte, off int64) (int, experimentalsys.Errno) {
	if errno := f.fs.reserve(int64(len(buf))); errno != 0 {
		return 0, errno
	}
	return f.File.Pwrite(buf, off)
}

// Truncate implements experimentalsys.File; a truncate that grows a file
// (or a sparse extension) is charged its apparent growth.
func (f *quotaFile) Truncate(size int64) experimentalsys.Errno {
	st, errno := f.File.Stat()
	if errno != 0 {
		return errno
	}
	if grow := size - st.Size; grow > 0 {
		if errno := f.fs.reserve(grow); errno != 0 {
			return errno
		}
	}
	return f.File.Truncate(size)
}

// removeWorkdir deletes the host directory behind /work.
func removeWorkdir(dir string) error { return os.RemoveAll(dir) }
