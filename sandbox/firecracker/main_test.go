package firecracker_test

import (
	"bufio"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"testing"

	"github.com/ccos-project/ccos/sandbox/firecracker"
	"github.com/ccos-project/ccos/sandbox/firecracker/contract"
)

// fakeJailerEnv makes the test binary act as the jailer and the jailed
// Firecracker: it serves the API socket in the jail (validating every
// request against the API definition) and, after InstanceStart, the vsock
// socket with a guest that echoes.
const fakeJailerEnv = "CCOS_TEST_FAKE_JAILER"

// fakeAPIEnv passes the fake the path of the API definition.
const fakeAPIEnv = "CCOS_TEST_FAKE_JAILER_API"

func TestMain(m *testing.M) {
	if os.Getenv(fakeJailerEnv) == "1" {
		os.Exit(fakeJailer(os.Args[1:]))
	}
	os.Exit(m.Run())
}

func fakeJailer(args []string) int {
	fs := flag.NewFlagSet("jailer", flag.ContinueOnError)
	id := fs.String("id", "", "")
	exe := fs.String("exec-file", "", "")
	base := fs.String("chroot-base-dir", firecracker.DefaultChrootBase, "")
	fs.Int("uid", 0, "")
	fs.Int("gid", 0, "")
	fs.String("cgroup-version", "", "")
	var multi stringsFlag
	fs.Var(&multi, "cgroup", "")
	fs.Var(&multi, "resource-limit", "")
	fs.String("netns", "", "")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	rest := fs.Args() // after "--": --api-sock /api.sock
	if len(rest) != 2 || rest[0] != "--api-sock" {
		fmt.Fprintf(os.Stderr, "fake jailer: firecracker args %q\n", rest)
		return 2
	}
	root := firecracker.Jail{Firecracker: *exe, ID: *id, ChrootBase: *base}.RootDir()
	api, err := contract.Load(os.Getenv(fakeAPIEnv))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	ln, err := net.Listen("unix", filepath.Join(root, rest[1]))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	started := make(chan struct{})
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if _, err := api.ValidateRequest(r.Method, r.URL.Path, body); err != nil {
			writeFault(w, http.StatusBadRequest, err.Error())
			return
		}
		if r.URL.Path == "/actions" {
			close(started)
		}
		w.WriteHeader(http.StatusNoContent)
	})
	go http.Serve(ln, h)
	<-started
	vs, err := net.Listen("unix", filepath.Join(root, "vsock.sock"))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	for {
		c, err := vs.Accept()
		if err != nil {
			return 1
		}
		line, err := bufio.NewReader(c).ReadString('\n')
		if err != nil || line != fmt.Sprintf("CONNECT %d\n", firecracker.ControlPort) {
			c.Close()
			continue
		}
		io.WriteString(c, "OK 1073741824\n")
		go io.Copy(c, c)
	}
}

type stringsFlag []string

func (s *stringsFlag) String() string     { return fmt.Sprint(*s) }
func (s *stringsFlag) Set(v string) error { *s = append(*s, v); return nil }
