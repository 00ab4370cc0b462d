package wasm

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"
)

//go:generate go run ./internal/genmodule

// embedded holds module/README.md always, and module/guest.wasm with its
// digest when `go generate ./sandbox/wasm` ran before the build. Embedding
// the directory rather than the file keeps `go build` working without it.
//
//go:embed module
var embedded embed.FS

const (
	embeddedModule = "module/guest.wasm"
	embeddedDigest = embeddedModule + ".sha256"
)

// ErrModuleMissing is returned (wrapped, with what to run) when the guest
// module was not built into this binary or is missing from its source.
var ErrModuleMissing = errors.New("wasm guest module missing")

// ErrModuleDigest is returned (wrapped) when a guest module's sha256 does
// not match the digest recorded when it was built, or the digest is
// malformed. Such a module is never compiled.
var ErrModuleDigest = errors.New("wasm guest module digest mismatch")

// Module is a guest module and the sha256 recorded for it at build time.
type Module struct {
	// Wasm is the WebAssembly binary, built for wasip1.
	Wasm []byte
	// SHA256 is the lower-case hex digest recorded beside the module.
	SHA256 string
}

// Verify checks that m.Wasm hashes to m.SHA256.
func (m Module) Verify() error {
	want, err := parseDigest([]byte(m.SHA256))
	if err != nil {
		return err
	}
	got := sha256.Sum256(m.Wasm)
	if !bytes.Equal(got[:], want) {
		return fmt.Errorf("%w: recorded %s, module hashes to %x", ErrModuleDigest, m.SHA256, got)
	}
	return nil
}

// ModuleSource yields the guest module a provider runs. It returns an error
// wrapping ErrModuleMissing, saying how to produce the module, when there is
// none.
type ModuleSource func() (Module, error)

// EmbeddedModule is the default source: the module generated into
// sandbox/wasm/module and embedded in the binary at build time.
func EmbeddedModule() (Module, error) {
	return readModule(embedded.ReadFile, embeddedModule, embeddedDigest,
		"this ccos binary was built without sandbox/wasm/"+embeddedModule+
			": run `go generate ./sandbox/wasm` (it builds ./cmd/ccos-guest-wasm for GOOS=wasip1 GOARCH=wasm and records its sha256), then rebuild ccos")
}

// FileModule returns a source that reads the module at path and its digest
// from path + ".sha256" (sha256sum format: the hex digest first).
func FileModule(path string) ModuleSource {
	return func() (Module, error) {
		return readModule(os.ReadFile, path, path+".sha256",
			"build it with `GOOS=wasip1 GOARCH=wasm go build -o "+path+"` and record its digest with `sha256sum`")
	}
}

func readModule(read func(string) ([]byte, error), module, digest, hint string) (Module, error) {
	wasm, err := read(module)
	if errors.Is(err, fs.ErrNotExist) {
		return Module{}, fmt.Errorf("%w: %s", ErrModuleMissing, hint)
	}
	if err != nil {
		return Module{}, fmt.Errorf("reading wasm guest module: %w", err)
	}
	sum, err := read(digest)
	if errors.Is(err, fs.ErrNotExist) {
		return Module{}, fmt.Errorf("%w: %s has no recorded digest %s: %s", ErrModuleMissing, module, digest, hint)
	}
	if err != nil {
		return Module{}, fmt.Errorf("reading wasm guest module digest: %w", err)
	}
	d, err := parseDigest(sum)
	if err != nil {
		return Module{}, fmt.Errorf("%s: %w", digest, err)
	}
	return Module{Wasm: wasm, SHA256: hex.EncodeToString(d)}, nil
}

// parseDigest reads the first field of a sha256sum line.
func parseDigest(b []byte) ([]byte, error) {
	fields := strings.Fields(string(b))
	if len(fields) == 0 {
		return nil, fmt.Errorf("%w: empty digest", ErrModuleDigest)
	}
	d, err := hex.DecodeString(fields[0])
	if err != nil || len(d) != sha256.Size {
		return nil, fmt.Errorf("%w: %q is not a hex sha256", ErrModuleDigest, fields[0])
	}
	return d, nil
}
