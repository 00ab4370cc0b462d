// Package input reads the files ccos is given (configs, plans, approvals,
// keys, checkpoints) with a size bound, and only from regular files or, when
// the argument is "-", from standard input. A named pipe, a device such as
// /dev/zero, a directory or a socket is refused before anything is read, so
// that an input can neither hang ccos nor grow its memory without bound.
package input

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"syscall"
)

// The bounds, in bytes.
const (
	// MaxSource bounds an RTFS source: an agent config or a plan. A 3 MB
	// config with 200,000 keys validates in about half a second; a plan
	// near the bound would not fit the 4 MiB control frame that carries it
	// to the guest anyway.
	MaxSource = 4 << 20
	// MaxSmall bounds the small files: approvals, keys, signed checkpoints,
	// certificates.
	MaxSmall = 1 << 20
	// MaxBinary bounds a program given to ccos, such as the microVM
	// guest's /init for `ccos image build --init`.
	MaxBinary = 128 << 20
)

// Stdin is the argument that names standard input.
const Stdin = "-"

// ErrNotRegular is wrapped by the error for an input that is not a regular
// file (a named pipe, a device, a directory, a socket).
var ErrNotRegular = errors.New("not a regular file")

// TooLargeError is the error for an input over its bound.
type TooLargeError struct {
	Name  string
	Limit int64
	Size  int64 // the file's size, or -1 when it is a stream (standard input)
}

func (e *TooLargeError) Error() string {
	if e.Size < 0 {
		return fmt.Sprintf("%s: more than %s; ccos reads at most %s from it", e.Name, bytesText(e.Limit), bytesText(e.Limit))
	}
	return fmt.Sprintf("%s: %s, over the limit of %s for this kind of input", e.Name, bytesText(e.Size), bytesText(e.Limit))
}

func bytesText(n int64) string {
	switch {
	case n >= 1<<20 && n%(1<<20) == 0:
		return fmt.Sprintf("%d MiB", n>>20)
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10 && n%(1<<10) == 0:
		return fmt.Sprintf("%d KiB", n>>10)
	}
	return fmt.Sprintf("%d bytes", n)
}

// ReadFile reads the regular file at path, at most limit bytes. It opens
// without blocking (a named pipe with no writer would otherwise hang the
// open itself) and checks what it opened before reading.
func ReadFile(path string, limit int64) ([]byte, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, fmt.Errorf("cannot read %s: %w", path, unwrapPath(err))
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("cannot read %s: %w", path, unwrapPath(err))
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("cannot read %s: it is %s, %w; give a regular file, or - to read standard input",
			path, kind(fi.Mode()), ErrNotRegular)
	}
	if fi.Size() > limit {
		return nil, &TooLargeError{Name: path, Limit: limit, Size: fi.Size()}
	}
	// The file may grow while it is read: the bound holds all the same.
	b, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, fmt.Errorf("cannot read %s: %w", path, unwrapPath(err))
	}
	if int64(len(b)) > limit {
		return nil, &TooLargeError{Name: path, Limit: limit, Size: int64(len(b))}
	}
	return b, nil
}

// ReadStream reads at most limit bytes from r (standard input, say), named
// name in errors.
func ReadStream(r io.Reader, name string, limit int64) ([]byte, error) {
	b, err := io.ReadAll(io.LimitReader(r, limit+1))
	if err != nil {
		return nil, fmt.Errorf("cannot read %s: %w", name, err)
	}
	if int64(len(b)) > limit {
		return nil, &TooLargeError{Name: name, Limit: limit, Size: -1}
	}
	return b, nil
}

// StdinName is the name standard input is read under.
const StdinName = "<stdin>"

// ReadArg reads a command-line input: standard input (from stdin) for "-",
// else the regular file arg. It returns the data and the name to report it
// under.
func ReadArg(arg string, stdin io.Reader, limit int64) ([]byte, string, error) {
	if arg == Stdin {
		b, err := ReadStream(stdin, StdinName, limit)
		return b, StdinName, err
	}
	b, err := ReadFile(arg, limit)
	return b, arg, err
}

// kind describes a file that is not regular.
func kind(m fs.FileMode) string {
	switch {
	case m&fs.ModeNamedPipe != 0:
		return "a named pipe (FIFO)"
	case m&fs.ModeCharDevice != 0:
		return "a character device"
	case m&fs.ModeDevice != 0:
		return "a block device"
	case m.IsDir():
		return "a directory"
	case m&fs.ModeSocket != 0:
		return "a socket"
	}
	return "a special file (" + m.String() + ")"
}

// unwrapPath drops the *fs.PathError around err: the message names the path
// once already.
func unwrapPath(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}
