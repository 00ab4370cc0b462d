package firecracker_test

import (
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"sync"
	"testing"

	"github.com/ccos-project/ccos/sandbox/firecracker/contract"
	"github.com/ccos-project/ccos/sandbox/firecracker/fcapi"
)

// request is one request the fake API received.
type request struct {
	Method, Path string
	Body         []byte
}

// fakeAPI is a Firecracker API socket that validates every request against
// the API definition and records it. A request that does not validate is
// answered 400 with a fault_message, as Firecracker would, and fails the
// test.
type fakeAPI struct {
	t      *testing.T
	api    *contract.API
	socket string
	srv    *httptest.Server

	mu       sync.Mutex
	requests []request
	// fail maps a path to the status and body to answer it with.
	fail map[string]failure
}

type failure struct {
	status int
	body   string
}

func newFakeAPI(t *testing.T, api *contract.API) *fakeAPI {
	t.Helper()
	f := &fakeAPI{t: t, api: api, socket: filepath.Join(t.TempDir(), "api.sock"), fail: map[string]failure{}}
	ln, err := net.Listen("unix", f.socket)
	if err != nil {
		t.Fatal(err)
	}
	f.srv = httptest.NewUnstartedServer(http.HandlerFunc(f.serve))
	f.srv.Listener = ln
	f.srv.Start()
	t.Cleanup(f.srv.Close)
	return f
}

func (f *fakeAPI) serve(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	f.mu.Lock()
	f.requests = append(f.requests, request{r.Method, r.URL.Path, body})
	fail, failing := f.fail[r.URL.Path]
	f.mu.Unlock()
	if ct := r.Header.Get("Content-Type"); ct != "application/json" {
		f.t.Errorf("%s %s: Content-Type %q", r.Method, r.URL.Path, ct)
	}
	op, err := f.api.ValidateRequest(r.Method, r.URL.Path, body)
	if err == nil {
		err = checkPathID(op, body)
	}
	if err != nil {
		f.t.Errorf("request does not match the API definition: %v", err)
		writeFault(w, http.StatusBadRequest, err.Error())
		return
	}
	if failing {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(fail.status)
		io.WriteString(w, fail.body)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// checkPathID enforces what Firecracker checks beyond the schema: the id in
// the path is the id in the body.
func checkPathID(op *contract.Operation, body []byte) error {
	var ids map[string]any
	_ = json.Unmarshal(body, &ids)
	for param, val := range op.PathParams {
		if got, ok := ids[param]; ok && got != val {
			return &contract.ValidationError{Definition: op.Body, Violations: []contract.Violation{{Path: param, Msg: "differs from the path"}}}
		}
	}
	return nil
}

func writeFault(w http.ResponseWriter, status int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(fcapi.Error{FaultMessage: msg})
}

func (f *fakeAPI) got() []request {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]request(nil), f.requests...)
}
