package image

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/ccos-project/ccos/internal/atomicfile"
)

// builderVersion takes part in every cache key; bump it when the builder
// lays out the same inputs differently.
const builderVersion = "ccos-image-builder/2"

// buildPrefix starts the names of the temporary directories that Cached
// builds in.
const buildPrefix = ".build-"

// staleBuildAge is how old a temporary build directory must be for Cached to
// take it for the leftover of a builder that died: builds take well under a
// second.
const staleBuildAge = time.Hour

// removeStaleBuilds removes the temporary build directories of root last
// modified before cutoff. It is best effort: what it cannot remove stays.
func removeStaleBuilds(root string, cutoff time.Time) {
	entries, err := os.ReadDir(root)
	if err != nil {
		return
	}
	for _, e := range entries {
		if !e.IsDir() || !strings.HasPrefix(e.Name(), buildPrefix) {
			continue
		}
		if info, err := e.Info(); err == nil && info.ModTime().Before(cutoff) {
			os.RemoveAll(filepath.Join(root, e.Name()))
		}
	}
}

// DefaultCacheRoot is where images are cached unless a caller says
// otherwise: ccos/images in the user's cache directory ($XDG_CACHE_HOME,
// else ~/.cache).
func DefaultCacheRoot() (string, error) {
	dir, err := os.UserCacheDir()
	if err != nil {
		return "", fmt.Errorf("image cache: %w", err)
	}
	return filepath.Join(dir, "ccos", "images"), nil
}

// Key returns the cache key of in: the hex sha256 over every byte the image
// is built from (init, kernel, each module, config, the capabilities tree
// with its names and execute bits), the epoch, the rootfs compressor and
// the mksquashfs version. Equal keys mean equal images.
func Key(ctx context.Context, in Inputs) (string, error) {
	r, err := resolve(ctx, in)
	if err != nil {
		return "", err
	}
	return r.key(), nil
}

// key hashes a line-based description of r in which every variable-length
// field is quoted, so that no two inputs describe alike.
func (r *resolved) key() string {
	h := sha256.New()
	line := func(fields ...string) {
		for i, f := range fields {
			if i > 0 {
				io.WriteString(h, " ")
			}
			io.WriteString(h, strconv.Quote(f))
		}
		io.WriteString(h, "\n")
	}
	line(builderVersion)
	line("mksquashfs", r.mksquashfsVer)
	line("compression", r.compression)
	line("epoch", strconv.FormatInt(r.in.Epoch, 10))
	line("init", digestOf(r.in.Init))
	line("kernel", r.kernelVersion, r.kernelDigest)
	for _, m := range r.modules {
		line("module", m.Name, digestOf(m.Data))
	}
	for _, b := range r.builtin {
		line("builtin", b)
	}
	line("config", digestOf(r.config))
	for _, f := range r.caps {
		switch {
		case f.Dir:
			line("capdir", f.Rel)
		default:
			line("capfile", f.Rel, strconv.FormatBool(f.Exec), digestOf(f.Data))
		}
	}
	return hex.EncodeToString(h.Sum(nil))
}

// Cached returns the image of in from cacheRoot/KEY (KEY as Key returns
// it), building it there first when it is absent. The image is built in a
// temporary directory beside it and renamed into place, so a reader never
// sees a partial image, and two processes building the same key at once
// both end up with the one that was renamed first.
func Cached(ctx context.Context, in Inputs, cacheRoot string) (*Image, error) {
	r, err := resolve(ctx, in)
	if err != nil {
		return nil, err
	}
	final := filepath.Join(cacheRoot, r.key())
	if img, err := Open(final); err == nil {
		return img, nil
	} else if _, serr := os.Stat(final); serr == nil {
		return nil, fmt.Errorf("image cache: %s exists but is not a complete image (remove it): %w", final, err)
	}
	if err := os.MkdirAll(cacheRoot, 0o755); err != nil {
		return nil, fmt.Errorf("image cache: %w", err)
	}
	removeStaleBuilds(cacheRoot, time.Now().Add(-staleBuildAge))
	tmp, err := os.MkdirTemp(cacheRoot, buildPrefix)
	if err != nil {
		return nil, fmt.Errorf("image cache: %w", err)
	}
	defer os.RemoveAll(tmp)
	if err := os.Chmod(tmp, 0o755); err != nil {
		return nil, fmt.Errorf("image cache: %w", err)
	}
	if _, err := r.build(ctx, tmp); err != nil {
		return nil, err
	}
	if err := os.Rename(tmp, final); err != nil {
		// Another builder renamed its copy first: same key, same bytes.
		if img, oerr := Open(final); oerr == nil {
			return img, nil
		}
		return nil, fmt.Errorf("image cache: %w", err)
	}
	if err := atomicfile.SyncDir(cacheRoot); err != nil {
		return nil, fmt.Errorf("image cache: %w", err)
	}
	return Open(final)
}
