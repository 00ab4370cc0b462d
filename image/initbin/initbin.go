// Package initbin holds the microVM guest's /init (cmd/ccos-init), built
// for linux/amd64 and embedded into ccos at build time, for the image
// builder (package image) to put into the initramfs.
//
// The binary is generated, not committed: `go generate ./image/initbin`
// builds it into bin/ccos-init with its sha256 beside it. Embedding the
// directory rather than the file keeps `go build` working before that has
// run; Bytes then returns ErrMissing, which says what to run.
package initbin

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"strings"
	"sync"
)

//go:generate go run ./internal/geninit

//go:embed bin
var embedded embed.FS

const (
	binaryFile = "bin/ccos-init"
	digestFile = binaryFile + ".sha256"
)

// ErrMissing is returned (wrapped, saying what to run) when this ccos
// binary was built without the guest /init.
var ErrMissing = errors.New("guest /init binary missing")

// ErrDigest is returned (wrapped) when the embedded /init does not hash to
// the digest recorded when it was built, or the digest is malformed.
var ErrDigest = errors.New("guest /init digest mismatch")

var load = sync.OnceValues(func() (binary []byte, err error) {
	return read(embedded)
})

// Bytes returns the embedded /init binary after checking it against its
// recorded sha256. The slice is shared: callers must not modify it.
func Bytes() ([]byte, error) { return load() }

// SHA256 returns the lower-case hex sha256 of the embedded /init.
func SHA256() (string, error) {
	b, err := load()
	if err != nil {
		return "", err
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:]), nil
}

// read reads the binary and its digest from fsys and checks one against
// the other.
func read(fsys fs.FS) ([]byte, error) {
	const hint = "this ccos binary was built without image/initbin/" + binaryFile +
		": run `go generate ./image/initbin` (it builds ./cmd/ccos-init for linux/amd64 and records its sha256), then rebuild ccos"
	bin, err := fs.ReadFile(fsys, binaryFile)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%w: %s", ErrMissing, hint)
	}
	if err != nil {
		return nil, fmt.Errorf("reading the embedded guest /init: %w", err)
	}
	line, err := fs.ReadFile(fsys, digestFile)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%w: %s has no recorded digest: %s", ErrMissing, binaryFile, hint)
	}
	if err != nil {
		return nil, fmt.Errorf("reading the embedded guest /init digest: %w", err)
	}
	fields := strings.Fields(string(line))
	var want []byte
	if len(fields) > 0 {
		want, err = hex.DecodeString(fields[0])
	}
	if len(fields) == 0 || err != nil || len(want) != sha256.Size {
		return nil, fmt.Errorf("%w: %s does not start with a hex sha256", ErrDigest, digestFile)
	}
	got := sha256.Sum256(bin)
	if !bytes.Equal(got[:], want) {
		return nil, fmt.Errorf("%w: recorded %x, %s hashes to %x (run `go generate ./image/initbin` again)", ErrDigest, want, binaryFile, got)
	}
	return bin, nil
}
