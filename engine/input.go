package engine

import (
	"errors"
	"fmt"
	"io"
	"os"
)

// ReadInput reads an input file of at most max bytes: a regular file, or
// standard input for "-". A FIFO, a device or a file over the bound is an
// error naming it, never a hang or an unbounded read.
func ReadInput(path string, max int64) ([]byte, error) {
	var r io.Reader
	if path == "-" {
		r = os.Stdin
	} else {
		f, err := os.Open(path)
		if err != nil {
			var pe *os.PathError
			if errors.As(err, &pe) {
				err = pe.Err
			}
			return nil, fmt.Errorf("cannot read %s: %w", path, err)
		}
		defer f.Close()
		fi, err := f.Stat()
		if err != nil {
			return nil, err
		}
		if !fi.Mode().IsRegular() {
			return nil, fmt.Errorf("%s is not a regular file (%s); give a file, or - for standard input", path, fi.Mode().Type())
		}
		r = f
	}
	b, err := io.ReadAll(io.LimitReader(r, max+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > max {
		return nil, fmt.Errorf("%s is larger than %d bytes, the most ccos reads", path, max)
	}
	return b, nil
}
