package image

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"math"
	"path"
	"slices"
	"strings"
)

// The initramfs is a cpio archive in the "newc" format that the kernel's
// initramfs unpacker reads (Documentation/driver-api/early-userspace/
// buffer-format.rst). Each member is a 110-byte ASCII header, the name, and
// the data:
//
//	magic     6 bytes  "070701"
//	ino       8 hex digits  (all numeric fields: upper-case hex, zero-padded)
//	mode      8   file type and permission bits (S_IFREG|0755 ...)
//	uid, gid  8 each
//	nlink     8
//	mtime     8   seconds since the Unix epoch
//	filesize  8   bytes of data that follow the name
//	devmajor, devminor    8 each  (the device holding the file; 0 here)
//	rdevmajor, rdevminor  8 each  (the device a character or block node is)
//	namesize  8   length of the name including its terminating NUL
//	check     8   0 (no checksum in "070701")
//
// The name follows the header and is NUL-terminated and padded with NULs so
// that header+name is a multiple of 4 bytes; the data is padded the same
// way. The archive ends with a member named "TRAILER!!!".
//
// Reproducibility is the writer's job: members are written in byte-wise
// sorted name order (so a directory always precedes what it holds), inode
// numbers count up from 1 in that order, every member has the same mtime,
// uid and gid are 0, and nothing of the build host leaks in.

const (
	cpioMagic   = "070701"
	cpioTrailer = "TRAILER!!!"
	cpioHeader  = 110
	// cpioBlock is the block size the archive is padded to, as cpio(1)
	// does; the kernel does not need it, tools that list archives like it.
	cpioBlock = 512
)

// File type bits of a cpio mode (the same values as Linux's S_IF*).
const (
	modeDir  = 0o040000
	modeReg  = 0o100000
	modeChar = 0o020000
)

// errCPIO is wrapped by every error about an archive member that cannot be
// represented.
var errCPIO = errors.New("cpio")

// cpioEntry is one member of a newc archive.
type cpioEntry struct {
	// Name is the member's path without a leading slash ("lib/modules").
	Name string
	// Mode holds the file type and permission bits.
	Mode uint32
	// Data is the content of a regular file.
	Data []byte
	// RdevMajor and RdevMinor identify the device of a character node.
	RdevMajor, RdevMinor uint32
}

// writeCPIO writes entries as a newc archive with every mtime set to mtime.
// It sorts a copy of entries by name and refuses names that are empty,
// absolute, not clean, duplicated, or whose parent directory is not among
// the entries.
func writeCPIO(w io.Writer, entries []cpioEntry, mtime int64) error {
	if mtime < 0 || mtime > math.MaxUint32 {
		return fmt.Errorf("%w: mtime %d does not fit the format's 32 bits (0..%d)", errCPIO, mtime, uint32(math.MaxUint32))
	}
	sorted := slices.Clone(entries)
	slices.SortFunc(sorted, func(a, b cpioEntry) int { return strings.Compare(a.Name, b.Name) })
	if err := checkCPIONames(sorted); err != nil {
		return err
	}
	bw := bufio.NewWriter(w)
	cw := &countWriter{w: bw}
	for i, e := range sorted {
		if uint64(len(e.Data)) > math.MaxUint32 {
			return fmt.Errorf("%w: %s is %d bytes, more than the format's 4 GiB", errCPIO, e.Name, len(e.Data))
		}
		nlink := uint32(1)
		if e.Mode&0o170000 == modeDir {
			nlink = 2
		}
		writeMember(cw, uint32(i+1), e, nlink, uint32(mtime))
	}
	writeMember(cw, 0, cpioEntry{Name: cpioTrailer}, 1, 0)
	if rem := cw.n % cpioBlock; rem != 0 {
		cw.Write(make([]byte, cpioBlock-rem))
	}
	if cw.err != nil {
		return cw.err
	}
	return bw.Flush()
}

// writeMember writes one header, name and data with their padding. Errors
// are kept in cw and reported once at the end.
func writeMember(cw *countWriter, ino uint32, e cpioEntry, nlink, mtime uint32) {
	fmt.Fprintf(cw, "%s%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X",
		cpioMagic, ino, e.Mode, 0, 0, nlink, mtime, len(e.Data),
		0, 0, e.RdevMajor, e.RdevMinor, len(e.Name)+1, 0)
	io.WriteString(cw, e.Name)
	cw.Write(make([]byte, 1+pad4(cpioHeader+len(e.Name)+1)))
	cw.Write(e.Data)
	cw.Write(make([]byte, pad4(len(e.Data))))
}

// pad4 is the number of bytes that bring n to a multiple of 4.
func pad4(n int) int { return (4 - n%4) % 4 }

// checkCPIONames checks the names of sorted entries.
func checkCPIONames(sorted []cpioEntry) error {
	dirs := map[string]bool{".": true}
	for i, e := range sorted {
		switch {
		case e.Name == "" || strings.HasPrefix(e.Name, "/") || path.Clean(e.Name) != e.Name ||
			e.Name == "." || e.Name == ".." || strings.HasPrefix(e.Name, "../") || strings.ContainsRune(e.Name, 0):
			return fmt.Errorf("%w: member name %q is not a clean relative path", errCPIO, e.Name)
		case e.Name == cpioTrailer:
			return fmt.Errorf("%w: member name %q is reserved for the trailer", errCPIO, e.Name)
		case i > 0 && sorted[i-1].Name == e.Name:
			return fmt.Errorf("%w: member %q appears twice", errCPIO, e.Name)
		case !dirs[path.Dir(e.Name)]:
			return fmt.Errorf("%w: member %q comes without its directory %q", errCPIO, e.Name, path.Dir(e.Name))
		}
		if e.Mode&0o170000 == modeDir {
			dirs[e.Name] = true
		}
	}
	return nil
}

// countWriter counts what it writes and keeps the first error.
type countWriter struct {
	w   io.Writer
	n   int
	err error
}

func (c *countWriter) Write(p []byte) (int, error) {
	if c.err != nil {
		return 0, c.err
	}
	n, err := c.w.Write(p)
	c.n += n
	c.err = err
	return n, err
}
