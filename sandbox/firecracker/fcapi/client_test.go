package fcapi_test

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"testing"

	"github.com/ccos-project/ccos/sandbox/firecracker/fcapi"
)

// serveOnce answers every request on a Unix socket with status and body,
// and reports the request URI and body it saw.
func serveOnce(t *testing.T, status int, body string) (string, chan [2]string) {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "api.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	seen := make(chan [2]string, 1)
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		seen <- [2]string{r.Method + " " + r.RequestURI, string(b)}
		w.WriteHeader(status)
		io.WriteString(w, body)
	})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return sock, seen
}

func TestClient(t *testing.T) {
	tests := []struct {
		name     string
		status   int
		body     string
		call     func(c *fcapi.Client) error
		wantReq  [2]string
		wantErr  bool
		wantText string
	}{
		{"drive id escaped", 204, "", func(c *fcapi.Client) error {
			return c.PutDrive(context.Background(), fcapi.Drive{DriveID: "a b", PathOnHost: "/r", IsReadOnly: true})
		}, [2]string{"PUT /drives/a%20b", `{"drive_id":"a b","path_on_host":"/r","is_root_device":false,"is_read_only":true}`}, false, ""},
		{"start", 204, "", func(c *fcapi.Client) error { return c.Action(context.Background(), fcapi.ActionInstanceStart) },
			[2]string{"PUT /actions", `{"action_type":"InstanceStart"}`}, false, ""},
		{"fault", 400, `{"fault_message":"Invalid vsock CID"}`, func(c *fcapi.Client) error {
			return c.PutVsock(context.Background(), fcapi.Vsock{GuestCID: 3, UDSPath: "/v"})
		}, [2]string{"PUT /vsock", `{"guest_cid":3,"uds_path":"/v"}`}, true, "Invalid vsock CID"},
		{"raw error body", 503, "busy", func(c *fcapi.Client) error {
			return c.PutMachineConfig(context.Background(), fcapi.MachineConfiguration{VCPUCount: 1, MemSizeMiB: 128})
		}, [2]string{"PUT /machine-config", `{"vcpu_count":1,"mem_size_mib":128,"smt":false,"track_dirty_pages":false}`}, true, "busy"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sock, seen := serveOnce(t, tt.status, tt.body)
			err := tt.call(fcapi.NewClient(sock))
			if got := <-seen; got != tt.wantReq {
				t.Errorf("request %q, want %q", got, tt.wantReq)
			}
			var ae *fcapi.APIError
			if tt.wantErr != errors.As(err, &ae) {
				t.Fatalf("err = %v", err)
			}
			if tt.wantErr && (ae.FaultMessage != tt.wantText || ae.Status != tt.status || !errors.Is(err, fcapi.ErrAPI)) {
				t.Fatalf("APIError %+v", ae)
			}
		})
	}
}
