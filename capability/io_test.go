package capability

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/ccos-project/ccos/rtfs"
)

func call(t *testing.T, r *Registry, id string, args ...rtfs.Value) (rtfs.Value, error) {
	t.Helper()
	c, err := r.Lookup(id)
	if err != nil {
		t.Fatal(err)
	}
	return c.Fn(context.Background(), args)
}

func str(s string) rtfs.Value { return rtfs.String{V: s} }

// The ccos.io capabilities stay inside the workdir: neither "..", an
// absolute path nor a symbolic link planted in the workdir leads out.
func TestWorkdirConfinement(t *testing.T) {
	outside := t.TempDir()
	secret := filepath.Join(outside, "secret")
	os.WriteFile(secret, []byte("host secret"), 0o600)
	wd := filepath.Join(t.TempDir(), "work")
	os.Mkdir(wd, 0o700)
	os.Symlink(outside, filepath.Join(wd, "link"))
	os.Symlink(secret, filepath.Join(wd, "file-link"))
	r := BuiltinsWith(Options{Workdir: wd})

	if n, err := call(t, r, "ccos.io.write-file", str("a.txt"), str("hello")); err != nil || rtfs.Print(n) != "5" {
		t.Fatalf("write: %v %v", n, err)
	}
	if v, err := call(t, r, "ccos.io.read-file", str("a.txt")); err != nil || rtfs.Print(v) != `"hello"` {
		t.Fatalf("read: %v %v", v, err)
	}
	if v, err := call(t, r, "ccos.io.list-dir"); err != nil || rtfs.Print(v) != `["a.txt" "file-link" "link"]` {
		t.Fatalf("list: %v %v", v, err)
	}
	if _, err := call(t, r, "ccos.io.delete-file", str("a.txt")); err != nil {
		t.Fatalf("delete: %v", err)
	}
	escapes := []struct{ id, path string }{
		{"ccos.io.read-file", "../" + filepath.Base(outside) + "/secret"},
		{"ccos.io.read-file", secret},
		{"ccos.io.read-file", "link/secret"},
		{"ccos.io.read-file", "file-link"},
		{"ccos.io.write-file", "link/planted"},
		{"ccos.io.write-file", "../planted"},
		{"ccos.io.delete-file", "link/secret"},
		{"ccos.io.list-dir", "link"},
		{"ccos.io.list-dir", ".."},
	}
	for _, e := range escapes {
		args := []rtfs.Value{str(e.path)}
		if e.id == "ccos.io.write-file" {
			args = append(args, str("x"))
		}
		if v, err := call(t, r, e.id, args...); err == nil {
			t.Errorf("%s %s escaped the workdir: %v", e.id, e.path, rtfs.Print(v))
		}
	}
	if b, _ := os.ReadFile(secret); string(b) != "host secret" {
		t.Error("the file outside was changed")
	}
	if _, err := os.Stat(filepath.Join(outside, "planted")); err == nil {
		t.Error("a file was planted outside the workdir")
	}
	// On the host there is no workdir: the capabilities refuse.
	if _, err := call(t, Builtins(nil), "ccos.io.read-file", str("a.txt")); !errors.Is(err, ErrNoWorkdir) {
		t.Errorf("host read: %v", err)
	}
}

func TestJSONAndRefusals(t *testing.T) {
	r := Builtins(nil)
	v, err := call(t, r, "ccos.json.parse", str(`{"a": [1, 2.5, "x"]}`))
	if err != nil || rtfs.Print(v) != `{:a [1 2.5 "x"]}` {
		t.Errorf("parse: %v %v", v, err)
	}
	s, err := call(t, r, "ccos.json.serialize", v)
	if err != nil || s.(rtfs.String).V != `{"a":[1,2.5,"x"]}` {
		t.Errorf("serialize: %v %v", s, err)
	}
	if _, err := call(t, r, "ccos.network.http-fetch", str("https://example.com")); !errors.Is(err, ErrNoEgressProxy) {
		t.Errorf("http-fetch: %v", err)
	}
	if _, err := call(t, r, "ccos.system.get-env", str("HOME")); !errors.Is(err, ErrNoEnvConfigured) {
		t.Errorf("get-env: %v", err)
	}
}

// The guest's own files in the workdir (.ccos-*) are neither listed nor
// readable, writable or deletable by a plan.
func TestWorkdirReservedNames(t *testing.T) {
	wd := t.TempDir()
	os.WriteFile(filepath.Join(wd, ".ccos-wal"), []byte("log"), 0o600)
	os.WriteFile(filepath.Join(wd, "data"), []byte("d"), 0o600)
	r := BuiltinsWith(Options{Workdir: wd})
	if v, err := call(t, r, "ccos.io.list-dir"); err != nil || rtfs.Print(v) != `["data"]` {
		t.Errorf("list: %v %v", v, err)
	}
	for _, c := range []struct {
		id   string
		args []rtfs.Value
	}{
		{"ccos.io.read-file", []rtfs.Value{str(".ccos-wal")}},
		{"ccos.io.read-file", []rtfs.Value{str("x/../.ccos-wal")}},
		{"ccos.io.write-file", []rtfs.Value{str("./.ccos-wal"), str("forged")}},
		{"ccos.io.delete-file", []rtfs.Value{str(".ccos-events")}},
		{"ccos.io.list-dir", []rtfs.Value{str(".ccos-dir")}},
	} {
		if _, err := call(t, r, c.id, c.args...); !errors.Is(err, ErrArgs) {
			t.Errorf("%s %v: %v, want a refusal", c.id, c.args, err)
		}
	}
	if b, _ := os.ReadFile(filepath.Join(wd, ".ccos-wal")); string(b) != "log" {
		t.Errorf("the log was changed: %q", b)
	}
}
