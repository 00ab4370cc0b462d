package egress

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
)

// benchBody is a 1 KiB JSON request body with no secrets or PII, so that
// DLP scans all of it and lets it through.
var benchBody = func() string {
	var b strings.Builder
	b.WriteString(`{"query":"weather in paris","items":[`)
	for b.Len() < 1000 {
		b.WriteString(`{"id":"item-42","tags":["alpha","beta"],"note":"nothing to see here"},`)
	}
	b.WriteString(`{}]}`)
	return b.String()
}()

func benchRequests(b *testing.B, c *http.Client, url string) {
	b.Helper()
	body := []byte(benchBody)
	b.SetBytes(int64(len(body)))
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		resp, err := c.Post(url, "application/json", bytes.NewReader(body))
		if err != nil {
			b.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			b.Fatalf("status %d", resp.StatusCode)
		}
	}
}

// BenchmarkDirect is the baseline: the same request to the loopback origin
// without a proxy.
func BenchmarkDirect(b *testing.B) {
	o := newOrigin(b)
	benchRequests(b, &http.Client{}, o.URL+"/")
}

func benchProxy(b *testing.B, p Policy) {
	o := newOrigin(b)
	h := newHarness(b, p, Options{Logger: discardLogger()})
	h.px.opts.Recorder = nil
	benchRequests(b, h.client(nil), fmt.Sprintf("http://allowed.example:%d/", o.port()))
}

// BenchmarkProxyACL: forward proxy, ACL and address checks only.
func BenchmarkProxyACL(b *testing.B) { benchProxy(b, basePolicy()) }

// BenchmarkProxyDLP: forward proxy with the gitleaks rules, PII and a
// configured pattern over the 1 KiB body.
func BenchmarkProxyDLP(b *testing.B) {
	p := basePolicy()
	p.DLP = DLPConfig{Action: DLPBlock, Secrets: true, PII: true, Patterns: map[string]string{"ticket": `TICKET-\d+`}}
	benchProxy(b, p)
}

func BenchmarkDecide(b *testing.B) {
	px, err := New(basePolicy(), Options{Logger: discardLogger()})
	if err != nil {
		b.Fatal(err)
	}
	req := Request{Agent: "agent.test", Method: "GET", Host: "b.wild.example", Port: 443, Addr: loopback}
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		if d := px.Decide(req); !d.Allowed() {
			b.Fatal(d.Reason)
		}
	}
}

func BenchmarkScan1KiB(b *testing.B) {
	s, err := newScanner(DLPConfig{Action: DLPBlock, Secrets: true, PII: true})
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(benchBody)))
	for i := 0; i < b.N; i++ {
		if fs := s.scan(benchBody); len(fs) != 0 {
			b.Fatalf("findings %+v", fs)
		}
	}
}
