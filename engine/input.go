package engine

import (
	"os"

	"github.com/ccos-project/ccos/internal/input"
)

// ReadInput reads an input file of at most max bytes: a regular file, or
// standard input for "-". A FIFO, a device or a file over the bound is an
// error naming it, never a hang or an unbounded read (internal/input, the
// one bounded reader).
func ReadInput(path string, max int64) ([]byte, error) {
	b, _, err := input.ReadArg(path, os.Stdin, max)
	return b, err
}
