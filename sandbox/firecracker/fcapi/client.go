package fcapi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
)

// maxErrorBody bounds how much of an error response is read.
const maxErrorBody = 64 << 10

// ErrAPI is wrapped by every error response of the API.
var ErrAPI = errors.New("firecracker API error")

// APIError is a non-2xx response of the API.
type APIError struct {
	Method, Path string
	// Status is the HTTP status code.
	Status int
	// FaultMessage is Firecracker's explanation (the "fault_message" of the
	// Error body), or the raw body when it was not an Error document.
	FaultMessage string
}

func (e *APIError) Error() string {
	return fmt.Sprintf("%s: %s %s: %d %s: %s", ErrAPI, e.Method, e.Path, e.Status, http.StatusText(e.Status), e.FaultMessage)
}

// Unwrap makes errors.Is(err, ErrAPI) hold.
func (e *APIError) Unwrap() error { return ErrAPI }

// Client talks to one Firecracker process over its API socket.
type Client struct {
	socket string
	hc     *http.Client
}

// NewClient returns a client for the API socket at socketPath.
func NewClient(socketPath string) *Client {
	tr := &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", socketPath)
		},
		DisableCompression: true,
	}
	return &Client{socket: socketPath, hc: &http.Client{Transport: tr}}
}

// Socket returns the API socket path.
func (c *Client) Socket() string { return c.socket }

// PutBootSource sets the kernel, initrd and boot arguments.
func (c *Client) PutBootSource(ctx context.Context, b BootSource) error {
	return c.put(ctx, "/boot-source", b)
}

// PutDrive adds or replaces a drive.
func (c *Client) PutDrive(ctx context.Context, d Drive) error {
	return c.put(ctx, "/drives/"+url.PathEscape(d.DriveID), d)
}

// PutMachineConfig sets vCPUs and memory.
func (c *Client) PutMachineConfig(ctx context.Context, m MachineConfiguration) error {
	return c.put(ctx, "/machine-config", m)
}

// PutNetworkInterface adds a network interface.
func (c *Client) PutNetworkInterface(ctx context.Context, n NetworkInterface) error {
	return c.put(ctx, "/network-interfaces/"+url.PathEscape(n.IfaceID), n)
}

// PutVsock adds the vsock device.
func (c *Client) PutVsock(ctx context.Context, v Vsock) error { return c.put(ctx, "/vsock", v) }

// PutLogger configures Firecracker's own log.
func (c *Client) PutLogger(ctx context.Context, l Logger) error { return c.put(ctx, "/logger", l) }

// PutMetrics configures Firecracker's metrics file.
func (c *Client) PutMetrics(ctx context.Context, m Metrics) error { return c.put(ctx, "/metrics", m) }

// PutEntropy adds the virtio-rng device.
func (c *Client) PutEntropy(ctx context.Context, e EntropyDevice) error {
	return c.put(ctx, "/entropy", e)
}

// Action performs a synchronous action such as ActionInstanceStart.
func (c *Client) Action(ctx context.Context, actionType string) error {
	return c.put(ctx, "/actions", InstanceActionInfo{ActionType: actionType})
}

func (c *Client) put(ctx context.Context, path string, body any) error {
	b, err := json.Marshal(body)
	if err != nil {
		return fmt.Errorf("firecracker API: encoding %s: %w", path, err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPut, "http://localhost"+path, bytes.NewReader(b))
	if err != nil {
		return fmt.Errorf("firecracker API: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	resp, err := c.hc.Do(req)
	if err != nil {
		return fmt.Errorf("firecracker API: PUT %s via %s: %w", path, c.socket, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxErrorBody))
		return nil
	}
	raw, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
	apiErr := &APIError{Method: http.MethodPut, Path: path, Status: resp.StatusCode, FaultMessage: string(bytes.TrimSpace(raw))}
	var e Error
	if json.Unmarshal(raw, &e) == nil && e.FaultMessage != "" {
		apiErr.FaultMessage = e.FaultMessage
	}
	return apiErr
}
