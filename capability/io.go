package capability

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"sort"
	"strings"

	"github.com/ccos-project/ccos/rtfs"
)

// MaxFileBytes bounds what ccos.io.read-file returns.
const MaxFileBytes = 16 << 20

// ErrNoWorkdir is returned by the workdir capabilities where no workdir is
// set (on the host, which never runs them for a guest).
var ErrNoWorkdir = errors.New("no step workdir here: workdir capabilities run only inside the sandbox")

// workdir opens the step workdir as a root: every path is resolved inside
// it, and neither ".." nor a symbolic link can lead out of it.
type workdir struct{ dir string }

func (w workdir) root() (*os.Root, error) {
	if w.dir == "" {
		return nil, ErrNoWorkdir
	}
	return os.OpenRoot(w.dir)
}

// ReservedPrefix starts the names of the guest's own files in the workdir
// (its write-ahead log, its event spill): the ccos.io capabilities neither
// show nor touch them, so a plan cannot forge the guest's records.
const ReservedPrefix = ".ccos-"

func pathArg(id string, args []rtfs.Value, n int) (string, error) {
	if len(args) != n {
		return "", fmt.Errorf("%w: %s takes %d argument(s), got %d", ErrArgs, id, n, len(args))
	}
	s, ok := args[0].(rtfs.String)
	if !ok || s.V == "" {
		return "", fmt.Errorf("%w: %s: the path must be a non-empty string, got %s", ErrArgs, id, rtfs.Describe(args[0]))
	}
	for _, el := range strings.Split(path.Clean(s.V), "/") {
		if strings.HasPrefix(el, ReservedPrefix) {
			return "", fmt.Errorf("%w: %s: names starting with %s are reserved for ccos, found %q", ErrArgs, id, ReservedPrefix, s.V)
		}
	}
	return s.V, nil
}

func (w workdir) readFile(_ context.Context, args []rtfs.Value) (rtfs.Value, error) {
	p, err := pathArg("ccos.io.read-file", args, 1)
	if err != nil {
		return nil, err
	}
	r, err := w.root()
	if err != nil {
		return nil, err
	}
	defer r.Close()
	f, err := r.Open(p)
	if err != nil {
		return nil, fmt.Errorf("ccos.io.read-file: %w", err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, MaxFileBytes+1))
	if err != nil {
		return nil, fmt.Errorf("ccos.io.read-file: %w", err)
	}
	if len(b) > MaxFileBytes {
		return nil, fmt.Errorf("ccos.io.read-file: %s is larger than %d bytes", p, MaxFileBytes)
	}
	return rtfs.String{V: string(b)}, nil
}

func (w workdir) writeFile(_ context.Context, args []rtfs.Value) (rtfs.Value, error) {
	p, err := pathArg("ccos.io.write-file", args, 2)
	if err != nil {
		return nil, err
	}
	content, ok := args[1].(rtfs.String)
	if !ok {
		return nil, fmt.Errorf("%w: ccos.io.write-file: the content must be a string, got %s", ErrArgs, rtfs.Describe(args[1]))
	}
	r, err := w.root()
	if err != nil {
		return nil, err
	}
	defer r.Close()
	f, err := r.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return nil, fmt.Errorf("ccos.io.write-file: %w", err)
	}
	if _, err := io.WriteString(f, content.V); err != nil {
		f.Close()
		return nil, fmt.Errorf("ccos.io.write-file: %w", err)
	}
	if err := f.Close(); err != nil {
		return nil, fmt.Errorf("ccos.io.write-file: %w", err)
	}
	return rtfs.Int{V: int64(len(content.V))}, nil
}

func (w workdir) listDir(_ context.Context, args []rtfs.Value) (rtfs.Value, error) {
	p := "."
	if len(args) > 0 {
		var err error
		if p, err = pathArg("ccos.io.list-dir", args, 1); err != nil {
			return nil, err
		}
	}
	r, err := w.root()
	if err != nil {
		return nil, err
	}
	defer r.Close()
	entries, err := fs.ReadDir(r.FS(), p)
	if err != nil {
		return nil, fmt.Errorf("ccos.io.list-dir: %w", err)
	}
	names := make([]string, 0, len(entries))
	for _, e := range entries {
		if !strings.HasPrefix(e.Name(), ReservedPrefix) {
			names = append(names, e.Name())
		}
	}
	sort.Strings(names)
	out := make([]rtfs.Value, len(names))
	for i, n := range names {
		out[i] = rtfs.String{V: n}
	}
	return rtfs.NewVector(out...), nil
}

func (w workdir) deleteFile(_ context.Context, args []rtfs.Value) (rtfs.Value, error) {
	p, err := pathArg("ccos.io.delete-file", args, 1)
	if err != nil {
		return nil, err
	}
	r, err := w.root()
	if err != nil {
		return nil, err
	}
	defer r.Close()
	if err := r.Remove(p); err != nil {
		return nil, fmt.Errorf("ccos.io.delete-file: %w", err)
	}
	return rtfs.Bool{V: true}, nil
}
