// Package atomicfile writes files so that a reader sees either the old file
// or the whole new one, and a crash leaves no partial file under the final
// name: the data goes to a new temporary file in the target's directory
// (created with O_EXCL and mode 0600, so a leftover file or a planted
// symbolic link is never written through), which is given its mode, written,
// fsynced, closed and renamed over the target, and the directory is fsynced
// last so that the new name survives a power loss.
//
// It is the one atomic writer of ccos: the archive's objects and index, the
// chain's key files, the image builder's files, snapshots and `ccos fmt -w`
// all write through it.
package atomicfile

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
)

// The steps of a write, in order, as Options.Step names them.
const (
	StepTempWritten = "temp-written"
	StepTempSynced  = "temp-synced"
	StepRenamed     = "renamed"
	StepDirSynced   = "dir-synced"
)

// Options adjust a write; the zero value is the default.
type Options struct {
	// TempPrefix starts the temporary file's name (a random suffix
	// follows). The default is "." + the target's base name + ".tmp-".
	TempPrefix string
	// Step, when set, is called after each step of the write (the Step
	// constants), so that a crash test can stop the writer exactly there.
	Step func(step string)
}

func (o Options) step(name string) {
	if o.Step != nil {
		o.Step(name)
	}
}

// File is a file being written: the temporary file, which becomes path
// on Commit. Write to it like any *os.File (or let a program write the
// file named by Name), then call Commit, or Abort to drop it.
type File struct {
	*os.File
	path string
	perm fs.FileMode
	opts Options
	done bool
}

// Create starts writing path with mode perm (not subject to the umask).
func Create(path string, perm fs.FileMode) (*File, error) { return Options{}.Create(path, perm) }

// Create starts writing path with mode perm (not subject to the umask).
func (o Options) Create(path string, perm fs.FileMode) (*File, error) {
	prefix := o.TempPrefix
	if prefix == "" {
		prefix = "." + filepath.Base(path) + ".tmp-"
	}
	f, err := os.CreateTemp(filepath.Dir(path), prefix+"*")
	if err != nil {
		return nil, err
	}
	return &File{File: f, path: path, perm: perm, opts: o}, nil
}

// Commit gives the file its mode, makes its contents durable, renames it
// over the target and makes the rename durable. On error the temporary file
// is removed and the target is left as it was (unless the error is the last
// step's, the directory sync: then the new file is in place but may not
// survive a power loss).
func (f *File) Commit() (err error) {
	if f.done {
		return errors.New("atomicfile: file already committed or aborted")
	}
	f.done = true
	tmp := f.Name()
	renamed := false
	defer func() {
		if err != nil {
			if !renamed {
				f.File.Close()
				os.Remove(tmp)
			}
			err = fmt.Errorf("writing %s: %w", f.path, err)
		}
	}()
	f.opts.step(StepTempWritten)
	// A program that wrote the file by name must have written this file,
	// not a new one it put in its place: the mode and the sync below apply
	// to this one.
	mine, err := f.Stat()
	if err != nil {
		return err
	}
	if named, err := os.Lstat(tmp); err != nil || !os.SameFile(mine, named) {
		return fmt.Errorf("the temporary file %s was replaced or removed while it was written", tmp)
	}
	if err = f.Chmod(f.perm); err != nil {
		return err
	}
	if err = f.Sync(); err != nil {
		return err
	}
	f.opts.step(StepTempSynced)
	if err = f.File.Close(); err != nil {
		return err
	}
	if err = os.Rename(tmp, f.path); err != nil {
		return err
	}
	renamed = true
	f.opts.step(StepRenamed)
	if err = SyncDir(filepath.Dir(f.path)); err != nil {
		return err
	}
	f.opts.step(StepDirSynced)
	return nil
}

// Abort drops the file: it closes and removes the temporary file. It does
// nothing after Commit, so `defer f.Abort()` is safe.
func (f *File) Abort() {
	if f.done {
		return
	}
	f.done = true
	f.File.Close()
	os.Remove(f.Name())
}

// Write stores data at path with mode perm.
func Write(path string, data []byte, perm fs.FileMode) error {
	return Options{}.Write(path, data, perm)
}

// Write stores data at path with mode perm.
func (o Options) Write(path string, data []byte, perm fs.FileMode) error {
	return o.WriteFunc(path, perm, func(w io.Writer) error {
		_, err := w.Write(data)
		return err
	})
}

// WriteFunc stores at path, with mode perm, what fill writes.
func WriteFunc(path string, perm fs.FileMode, fill func(io.Writer) error) error {
	return Options{}.WriteFunc(path, perm, fill)
}

// WriteFunc stores at path, with mode perm, what fill writes.
func (o Options) WriteFunc(path string, perm fs.FileMode, fill func(io.Writer) error) error {
	f, err := o.Create(path, perm)
	if err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	defer f.Abort()
	if err := fill(f.File); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	return f.Commit()
}

// SyncDir fsyncs a directory, so that the names created, renamed or removed
// in it survive a power loss.
func SyncDir(dir string) error {
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
