// Package client is the Go client of the supervisor's API (see
// supervisor.Routes and its OpenAPI document): over the Unix socket as the
// operator, or over HTTPS with a client certificate naming an agent.
package client

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/ccos-project/ccos/engine"
	"github.com/ccos-project/ccos/supervisor"
)

// Client talks to one supervisor.
type Client struct {
	hc   *http.Client
	base string
}

// Unix returns a client of the supervisor listening on a Unix socket.
func Unix(socket string) *Client {
	tr := &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "unix", socket)
	}}
	return &Client{hc: &http.Client{Transport: tr}, base: "http://supervisor"}
}

// TLS returns a client of the supervisor's HTTPS listener at addr
// (host:port), presenting the certificate of cfg.
func TLS(addr string, cfg *tls.Config) *Client {
	return &Client{hc: &http.Client{Transport: &http.Transport{TLSClientConfig: cfg}}, base: "https://" + addr}
}

// APIError is an error answer of the API.
type APIError struct {
	Status int
	supervisor.ErrorBody
	// RetryAfter is the Retry-After header of a 429, in seconds.
	RetryAfter int
}

func (e *APIError) Error() string {
	msg := fmt.Sprintf("supervisor: %d %s: %s", e.Status, e.Kind, e.ErrorBody.Error)
	return msg
}

func (c *Client) do(ctx context.Context, method, path string, body any, out any) error {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, rd)
	if err != nil {
		return err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return fmt.Errorf("supervisor unreachable: %w", err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return err
	}
	if resp.StatusCode >= 300 && !(path == "/v1/health" && resp.StatusCode == http.StatusServiceUnavailable) {
		ae := &APIError{Status: resp.StatusCode}
		if err := json.Unmarshal(data, &ae.ErrorBody); err != nil {
			ae.ErrorBody = supervisor.ErrorBody{Error: strings.TrimSpace(string(data)), Kind: "failed"}
		}
		ae.RetryAfter, _ = strconv.Atoi(resp.Header.Get("Retry-After"))
		return ae
	}
	if out != nil {
		if err := json.Unmarshal(data, out); err != nil {
			return fmt.Errorf("supervisor: the answer does not decode: %w", err)
		}
	}
	return nil
}

// Submit submits a plan to an agent; the run is queued and durable.
func (c *Client) Submit(ctx context.Context, agent string, sub supervisor.Submission) (*supervisor.Run, error) {
	var r supervisor.Run
	return &r, c.do(ctx, "POST", "/v1/agents/"+url.PathEscape(agent)+"/runs", sub, &r)
}

// Get returns a run.
func (c *Client) Get(ctx context.Context, id string) (*supervisor.Run, error) {
	var r supervisor.Run
	return &r, c.do(ctx, "GET", "/v1/runs/"+url.PathEscape(id), nil, &r)
}

// List returns a page of runs.
func (c *Client) List(ctx context.Context, f supervisor.Filter) (*supervisor.RunList, error) {
	q := url.Values{}
	if f.Agent != "" {
		q.Set("agent", f.Agent)
	}
	if f.Status != "" {
		q.Set("status", string(f.Status))
	}
	if f.Limit > 0 {
		q.Set("limit", strconv.Itoa(f.Limit))
	}
	if f.Before != "" {
		q.Set("before", f.Before)
	}
	var l supervisor.RunList
	return &l, c.do(ctx, "GET", "/v1/runs?"+q.Encode(), nil, &l)
}

// Cancel cancels a queued or running run.
func (c *Client) Cancel(ctx context.Context, id string) (*supervisor.Run, error) {
	var r supervisor.Run
	return &r, c.do(ctx, "POST", "/v1/runs/"+url.PathEscape(id)+"/cancel", nil, &r)
}

// Receipt returns a run's signed receipt (a DSSE envelope).
func (c *Client) Receipt(ctx context.Context, id string) ([]byte, error) {
	var raw json.RawMessage
	if err := c.do(ctx, "GET", "/v1/runs/"+url.PathEscape(id)+"/receipt", nil, &raw); err != nil {
		return nil, err
	}
	return raw, nil
}

// Agents returns the agents this client may act for.
func (c *Client) Agents(ctx context.Context) ([]supervisor.AgentInfo, error) {
	var out struct {
		Agents []supervisor.AgentInfo `json:"agents"`
	}
	return out.Agents, c.do(ctx, "GET", "/v1/agents", nil, &out)
}

// Health returns the supervisor's health (degraded and draining are
// answers, not errors).
func (c *Client) Health(ctx context.Context) (*supervisor.Health, error) {
	var h supervisor.Health
	return &h, c.do(ctx, "GET", "/v1/health", nil, &h)
}

// Events follows a run's events from after (0: from the start), calling
// fn for each until the run ends; it returns the run's final status.
func (c *Client) Events(ctx context.Context, id string, after int, fn func(engine.Event) error) (supervisor.Status, error) {
	req, err := http.NewRequestWithContext(ctx, "GET", c.base+"/v1/runs/"+url.PathEscape(id)+"/events", nil)
	if err != nil {
		return "", err
	}
	if after > 0 {
		req.Header.Set("Last-Event-ID", strconv.Itoa(after))
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return "", fmt.Errorf("supervisor unreachable: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		data, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		ae := &APIError{Status: resp.StatusCode}
		json.Unmarshal(data, &ae.ErrorBody)
		return "", ae
	}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 64<<20)
	var event string
	var data []byte
	for sc.Scan() {
		line := sc.Text()
		switch {
		case line == "":
			switch event {
			case "run":
				var e engine.Event
				if err := json.Unmarshal(data, &e); err != nil {
					return "", fmt.Errorf("supervisor: an event does not decode: %w", err)
				}
				if err := fn(e); err != nil {
					return "", err
				}
			case "end":
				var end struct {
					Status supervisor.Status `json:"status"`
				}
				if err := json.Unmarshal(data, &end); err != nil {
					return "", err
				}
				return end.Status, nil
			}
			event, data = "", nil
		case strings.HasPrefix(line, "event: "):
			event = strings.TrimPrefix(line, "event: ")
		case strings.HasPrefix(line, "data: "):
			data = append(data, strings.TrimPrefix(line, "data: ")...)
		}
	}
	if err := sc.Err(); err != nil {
		return "", err
	}
	return "", errors.New("supervisor: the event stream ended before the run did")
}

// Wait waits until a run is over and returns it.
func (c *Client) Wait(ctx context.Context, id string) (*supervisor.Run, error) {
	for {
		if _, err := c.Events(ctx, id, 1<<30, func(engine.Event) error { return nil }); err != nil {
			var ae *APIError
			if errors.As(err, &ae) || ctx.Err() != nil {
				return nil, err
			}
			// The stream broke (a supervisor restart): ask again soon.
			select {
			case <-time.After(200 * time.Millisecond):
			case <-ctx.Done():
				return nil, ctx.Err()
			}
		}
		r, err := c.Get(ctx, id)
		if err != nil {
			return nil, err
		}
		if r.Status.Final() {
			return r, nil
		}
	}
}

// LoadResult is what Load measured.
type LoadResult struct {
	Runs        int     `json:"runs"`
	Concurrency int     `json:"concurrency"`
	Failed      int     `json:"failed"`
	Seconds     float64 `json:"seconds"`
	RunsPerSec  float64 `json:"runs_per_s"`
	// Latencies from submission to the run's end, in milliseconds.
	P50 float64 `json:"p50_ms"`
	P99 float64 `json:"p99_ms"`
	Max float64 `json:"max_ms"`
}

// Load submits n runs of one plan to an agent, concurrency at a time (each
// worker submits, waits for the end, and submits again), and measures
// throughput and submit-to-done latency. A 429 is retried after its
// Retry-After; other failures are counted.
func Load(ctx context.Context, c *Client, agent string, sub supervisor.Submission, n, concurrency int) LoadResult {
	lat := make([]time.Duration, 0, n)
	var mu sync.Mutex
	failed := 0
	next := make(chan struct{}, n)
	for i := 0; i < n; i++ {
		next <- struct{}{}
	}
	close(next)
	start := time.Now()
	var wg sync.WaitGroup
	for w := 0; w < concurrency; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range next {
				t0 := time.Now()
				ok := false
				for ctx.Err() == nil {
					r, err := c.Submit(ctx, agent, sub)
					var ae *APIError
					if errors.As(err, &ae) && ae.Status == http.StatusTooManyRequests {
						time.Sleep(time.Duration(max(ae.RetryAfter, 1)) * 10 * time.Millisecond)
						continue
					}
					if err == nil {
						r, err = c.Wait(ctx, r.ID)
					}
					ok = err == nil && r.Status == supervisor.StatusSucceeded
					break
				}
				d := time.Since(t0)
				mu.Lock()
				if ok {
					lat = append(lat, d)
				} else {
					failed++
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	el := time.Since(start)
	res := LoadResult{Runs: n, Concurrency: concurrency, Failed: failed, Seconds: el.Seconds(), RunsPerSec: float64(n-failed) / el.Seconds()}
	if len(lat) > 0 {
		slices.Sort(lat)
		ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
		res.P50, res.P99, res.Max = ms(lat[len(lat)/2]), ms(lat[min(len(lat)-1, len(lat)*99/100)]), ms(lat[len(lat)-1])
	}
	return res
}
