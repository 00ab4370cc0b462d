package image

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
)

// ErrMksquashfsMissing is returned (wrapped, naming the package to
// install) when mksquashfs is not on PATH.
var ErrMksquashfsMissing = errors.New("mksquashfs not found")

// ErrUnsupportedFile is returned (wrapped, naming the file) when the
// capabilities directory holds something other than directories and
// regular files: a read-only image of symbolic links or device nodes would
// point the guest at files nobody measured.
var ErrUnsupportedFile = errors.New("unsupported file in the capabilities directory")

// Paths inside the rootfs.
const (
	rootfsConfig       = "agent.config.rtfs"
	rootfsCapabilities = "capabilities"
)

// treeFile is a directory or regular file of the capabilities tree.
type treeFile struct {
	// Rel is the slash-separated path below the tree's root.
	Rel string
	// Dir is true for a directory.
	Dir bool
	// Exec is true for a regular file with an execute bit: it becomes 0755
	// in the image, every other file 0644.
	Exec bool
	Data []byte
}

// readTree reads every directory and regular file below root, in lexical
// order. Permissions are reduced to executable or not, owners and times are
// dropped: the image must not depend on who checked the files out when.
func readTree(root string) ([]treeFile, error) {
	var files []treeFile
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if p == root {
			if !d.IsDir() {
				return fmt.Errorf("capabilities %s is not a directory", root)
			}
			return nil
		}
		rel, err := filepath.Rel(root, p)
		if err != nil {
			return err
		}
		rel = filepath.ToSlash(rel)
		switch {
		case d.IsDir():
			files = append(files, treeFile{Rel: rel, Dir: true})
		case d.Type().IsRegular():
			info, err := d.Info()
			if err != nil {
				return err
			}
			data, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			files = append(files, treeFile{Rel: rel, Exec: info.Mode().Perm()&0o111 != 0, Data: data})
		default:
			return fmt.Errorf("%w: %s is a %s; only directories and regular files go into the image", ErrUnsupportedFile, p, d.Type())
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("reading the capabilities directory: %w", err)
	}
	return files, nil
}

// stageRootfs writes the rootfs tree into dir, which must exist and be
// empty: the agent config and the capabilities directory.
func stageRootfs(dir string, config []byte, caps []treeFile) error {
	if err := writeFileMode(filepath.Join(dir, rootfsConfig), config, 0o644); err != nil {
		return err
	}
	capDir := filepath.Join(dir, rootfsCapabilities)
	if err := mkdirMode(capDir); err != nil {
		return err
	}
	for _, f := range caps {
		p := filepath.Join(capDir, filepath.FromSlash(f.Rel))
		var err error
		switch {
		case f.Dir:
			err = mkdirMode(p)
		case f.Exec:
			err = writeFileMode(p, f.Data, 0o755)
		default:
			err = writeFileMode(p, f.Data, 0o644)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// writeFileMode writes a file with exactly perm, whatever the umask.
func writeFileMode(p string, data []byte, perm os.FileMode) error {
	if err := os.WriteFile(p, data, perm); err != nil {
		return err
	}
	return os.Chmod(p, perm)
}

// mkdirMode makes a directory with mode 0755, whatever the umask.
func mkdirMode(p string) error {
	if err := os.Mkdir(p, 0o755); err != nil {
		return err
	}
	return os.Chmod(p, 0o755)
}

// mksquashfs finds mksquashfs and returns its path and version line, which
// takes part in the cache key: another mksquashfs may lay out the same
// files differently.
func mksquashfs(ctx context.Context) (bin, version string, err error) {
	bin, err = exec.LookPath("mksquashfs")
	if err != nil {
		return "", "", fmt.Errorf("%w on PATH: install the Debian package squashfs-tools", ErrMksquashfsMissing)
	}
	out, err := exec.CommandContext(ctx, bin, "-version").Output()
	if err != nil {
		return "", "", fmt.Errorf("running %s -version: %w", bin, err)
	}
	version, _, _ = strings.Cut(string(out), "\n")
	return bin, strings.TrimSpace(version), nil
}

// squashfsArgs are the arguments of mksquashfs that make the image a
// function of the staged files only: no append to an old image, every file
// owned by root with the same time, fixed root directory mode, no extended
// attributes of the build host, and the reproducible layout (the default of
// squashfs-tools 4.5, spelled out).
func squashfsArgs(src, dst, comp string, epoch int64) []string {
	t := strconv.FormatInt(epoch, 10)
	return []string{src, dst,
		"-noappend", "-reproducible", "-comp", comp,
		"-mkfs-time", t, "-all-time", t, "-all-root", "-root-mode", "0755",
		"-no-xattrs", "-quiet", "-no-progress",
	}
}

// runMksquashfs builds the squashfs image dst from the tree src.
func runMksquashfs(ctx context.Context, bin, src, dst, comp string, epoch int64) error {
	cmd := exec.CommandContext(ctx, bin, squashfsArgs(src, dst, comp, epoch)...)
	// mksquashfs refuses SOURCE_DATE_EPOCH together with the explicit
	// times, which already say the same thing.
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "SOURCE_DATE_EPOCH=") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("mksquashfs %s: %w: %s", strings.Join(cmd.Args[1:], " "), err, strings.TrimSpace(out.String()))
	}
	return nil
}
