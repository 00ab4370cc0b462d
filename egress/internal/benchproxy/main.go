// Command benchproxy measures what an egress proxy adds to a request: it
// starts a loopback origin and a loopback DNS server, runs `ccos proxy` (ACL
// only, and with DLP) and stripe/smokescreen against them with equivalent
// policies, checks that each allows the origin and denies another name, and
// prints the added p50/p99 latency and the requests per second of each.
//
// scripts/bench-proxy builds the binaries and runs it; every address it
// uses is on loopback.
package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/net/dns/dnsmessage"
)

const originName = "origin.bench.example"

var (
	ccosBin  = flag.String("ccos", "", "ccos binary (required)")
	smokeBin = flag.String("smokescreen", "", "smokescreen binary (optional)")
	samples  = flag.Int("n", 2000, "sequential requests per scenario and round, for latency")
	rounds   = flag.Int("rounds", 3, "rounds; scenarios are interleaved within a round")
	conc     = flag.Int("c", 8, "concurrent clients for the throughput run")
	dur      = flag.Duration("duration", 3*time.Second, "length of each throughput run")
	bodySize = flag.Int("body", 1024, "request body size in bytes")
	pinned   = flag.Bool("pinned", false, "also run ccos with the origin name pinned (--resolve) instead of asked of DNS")
)

// children are the proxies started, stopped on every way out, including
// fatalf (log.Fatal would skip deferred calls and leave them running).
var (
	childMu  sync.Mutex
	children []*exec.Cmd
	tmpDir   string
)

func stopChildren() {
	childMu.Lock()
	defer childMu.Unlock()
	for _, c := range children {
		_ = c.Process.Kill()
		_ = c.Wait()
	}
	children = nil
	if tmpDir != "" {
		os.RemoveAll(tmpDir)
	}
}

func fatalf(format string, args ...any) {
	stopChildren()
	log.Fatalf(format, args...)
}

type scenario struct {
	name  string
	proxy *url.URL // nil: direct
	cmd   *exec.Cmd
	lat   []time.Duration // every sample
	p99s  []time.Duration // the p99 of each round
	rps   float64
}

func main() {
	log.SetFlags(0)
	flag.Parse()
	if *ccosBin == "" {
		log.Fatal("benchproxy: -ccos is required")
	}
	dir, err := os.MkdirTemp("", "benchproxy-")
	if err != nil {
		fatalf("%v", err)
	}
	tmpDir = dir

	origin := startOrigin()
	dnsAddr := startDNS()
	port := strconv.Itoa(origin.Addr().(*net.TCPAddr).Port)
	target := "http://" + originName + ":" + port + "/echo"
	denied := "http://denied.bench.example:" + port + "/"
	direct := "http://127.0.0.1:" + port + "/echo"
	urlFor := func(s *scenario) string {
		if s.proxy == nil {
			return direct
		}
		return target
	}

	scens := []*scenario{{name: "direct"}}
	if *smokeBin != "" {
		scens = append(scens, startSmokescreen(dir, dnsAddr))
	}
	scens = append(scens, startCCOS(dir, "ccos-acl", false, dnsAddr), startCCOS(dir, "ccos-dlp", true, dnsAddr))
	if *pinned {
		scens = append(scens, startCCOS(dir, "ccos-acl-pinned", false, ""), startCCOS(dir, "ccos-dlp-pinned", true, ""))
	}
	defer stopChildren()
	body := bytes.Repeat([]byte("a"), *bodySize)
	copy(body, `{"query":"weather in paris","note":"`)
	for _, s := range scens {
		c := client(s.proxy, 1)
		if code := get(c, urlFor(s), body); code != 200 {
			fatalf("%s: allowed request: status %d", s.name, code)
		}
		if s.proxy != nil {
			if code := get(c, denied, body); code == 200 {
				fatalf("%s: the denied name was allowed", s.name)
			}
		}
	}
	for r := 0; r < *rounds; r++ {
		for _, s := range scens {
			l := latencies(client(s.proxy, 1), urlFor(s), body, *samples)
			s.lat = append(s.lat, l...)
			s.p99s = append(s.p99s, pct(l, 0.99))
		}
	}
	for _, s := range scens {
		s.rps = throughput(s.proxy, urlFor(s), body)
	}
	report(scens)
}

func client(proxy *url.URL, conns int) *http.Client {
	tr := &http.Transport{MaxIdleConnsPerHost: conns, DisableCompression: true}
	if proxy != nil {
		tr.Proxy = http.ProxyURL(proxy)
	}
	return &http.Client{Transport: tr, Timeout: 10 * time.Second}
}

func get(c *http.Client, u string, body []byte) int {
	resp, err := c.Post(u, "application/json", bytes.NewReader(body))
	if err != nil {
		return 0
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

func latencies(c *http.Client, u string, body []byte, n int) []time.Duration {
	for i := 0; i < 100; i++ { // warm up connections and caches
		get(c, u, body)
	}
	out := make([]time.Duration, 0, n)
	for i := 0; i < n; i++ {
		t := time.Now()
		if code := get(c, u, body); code != 200 {
			fatalf("status %d during the latency run", code)
		}
		out = append(out, time.Since(t))
	}
	return out
}

func throughput(proxy *url.URL, u string, body []byte) float64 {
	c := client(proxy, *conc)
	var n atomic.Int64
	var failed atomic.Int64
	deadline := time.Now().Add(*dur)
	var wg sync.WaitGroup
	for i := 0; i < *conc; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for time.Now().Before(deadline) {
				if get(c, u, body) == 200 {
					n.Add(1)
				} else {
					failed.Add(1)
				}
			}
		}()
	}
	start := time.Now()
	wg.Wait()
	if failed.Load() > 0 {
		log.Printf("warning: %d requests failed in the throughput run", failed.Load())
	}
	return float64(n.Load()) / time.Since(start).Seconds()
}

func pct(d []time.Duration, p float64) time.Duration {
	s := append([]time.Duration(nil), d...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[int(float64(len(s)-1)*p)]
}

func report(scens []*scenario) {
	base := scens[0]
	// p99 is the median of the rounds' p99s: on a shared machine one
	// round's burst of load would otherwise decide it.
	p99 := func(s *scenario) time.Duration { return pct(s.p99s, 0.5) }
	b50, b99 := pct(base.lat, 0.50), p99(base)
	var smoke *scenario
	for _, s := range scens {
		if s.name == "smokescreen" {
			smoke = s
		}
	}
	fmt.Printf("| scenario | p50 | p99 | added p50 | added p99 | req/s (c=%d) | added p50 vs smokescreen | added p99 vs smokescreen | req/s vs smokescreen |\n", *conc)
	fmt.Println("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
	for _, s := range scens {
		p50, p99 := pct(s.lat, 0.50), p99(s)
		a50, a99 := p50-b50, p99-b99
		r50, r99, rr := "", "", ""
		if smoke != nil && s != base {
			s50, s99 := pct(smoke.lat, 0.50)-b50, pct(smoke.p99s, 0.5)-b99
			r50 = fmt.Sprintf("%.2fx", float64(a50)/float64(s50))
			r99 = fmt.Sprintf("%.2fx", float64(a99)/float64(s99))
			rr = fmt.Sprintf("%.2fx", s.rps/smoke.rps)
		}
		if s == base {
			fmt.Printf("| %s | %s | %s | | | %.0f | | | |\n", s.name, us(p50), us(p99), s.rps)
			continue
		}
		fmt.Printf("| %s | %s | %s | %s | %s | %.0f | %s | %s | %s |\n", s.name, us(p50), us(p99), us(a50), us(a99), s.rps, r50, r99, rr)
	}
	fmt.Printf("\n%d rounds x %d sequential requests per scenario (p50 of all, p99 the median of the rounds' p99), %d-byte POST bodies, %s throughput runs.\n", *rounds, *samples, *bodySize, *dur)
}

func us(d time.Duration) string { return fmt.Sprintf("%.0f µs", float64(d)/float64(time.Microsecond)) }

func startOrigin() net.Listener {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fatalf("%v", err)
	}
	go func() {
		_ = http.Serve(l, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			_, _ = io.Copy(io.Discard, r.Body)
			w.Header().Set("Content-Type", "application/json")
			_, _ = io.WriteString(w, `{"ok":true}`)
		}))
	}()
	return l
}

// startDNS answers A queries for the origin name with 127.0.0.1, AAAA with
// no records, and everything else with NXDOMAIN.
func startDNS() string {
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		fatalf("%v", err)
	}
	go func() {
		buf := make([]byte, 1500)
		for {
			n, addr, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			if resp, err := answer(buf[:n]); err == nil {
				_, _ = pc.WriteTo(resp, addr)
			}
		}
	}()
	return pc.LocalAddr().String()
}

func answer(q []byte) ([]byte, error) {
	var p dnsmessage.Parser
	h, err := p.Start(q)
	if err != nil {
		return nil, err
	}
	qs, err := p.AllQuestions()
	if err != nil || len(qs) != 1 {
		return nil, errors.New("want one question")
	}
	rh := dnsmessage.Header{ID: h.ID, Response: true, Authoritative: true, RecursionAvailable: true}
	name := strings.TrimSuffix(strings.ToLower(qs[0].Name.String()), ".")
	if name != originName {
		rh.RCode = dnsmessage.RCodeNameError
	}
	b := dnsmessage.NewBuilder(nil, rh)
	b.EnableCompression()
	_ = b.StartQuestions()
	_ = b.Question(qs[0])
	_ = b.StartAnswers()
	if name == originName && qs[0].Type == dnsmessage.TypeA {
		_ = b.AResource(dnsmessage.ResourceHeader{Name: qs[0].Name, Class: dnsmessage.ClassINET, TTL: 60}, dnsmessage.AResource{A: [4]byte{127, 0, 0, 1}})
	}
	return b.Finish()
}

func freePort() string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fatalf("%v", err)
	}
	defer l.Close()
	return strconv.Itoa(l.Addr().(*net.TCPAddr).Port)
}

func start(name, logFile string, bin string, args ...string) *exec.Cmd {
	f, err := os.Create(logFile)
	if err != nil {
		fatalf("%v", err)
	}
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = f, f
	if err := cmd.Start(); err != nil {
		fatalf("%s: %v", name, err)
	}
	childMu.Lock()
	children = append(children, cmd)
	childMu.Unlock()
	return cmd
}

func waitListening(name, addr, logFile string) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for ctx.Err() == nil {
		if c, err := net.Dial("tcp", addr); err == nil {
			c.Close()
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	b, _ := os.ReadFile(logFile)
	fatalf("%s did not listen on %s:\n%s", name, addr, b)
}

func startCCOS(dir, name string, dlp bool, dnsAddr string) *scenario {
	cfg := filepath.Join(dir, name+".rtfs")
	dlpForm := ""
	if dlp {
		dlpForm = ":orchestrator {:dlp {:enabled true :policy :strict}}"
	}
	src := fmt.Sprintf(`(agent.config :version "0.1" :agent-id "agent.bench" :features [:network] %s
  :network {:enabled true :egress {:via :proxy :allow-domains [%q]}})`, dlpForm, originName)
	if err := os.WriteFile(cfg, []byte(src), 0o644); err != nil {
		fatalf("%v", err)
	}
	addr := "127.0.0.1:" + freePort()
	logFile := filepath.Join(dir, name+".log")
	args := []string{"proxy", "--config", cfg, "--listen", addr, "--allow-range", "127.0.0.1/32"}
	if dnsAddr != "" {
		args = append(args, "--dns", dnsAddr)
	} else {
		args = append(args, "--resolve", originName+"=127.0.0.1")
	}
	cmd := start(name, logFile, *ccosBin, args...)
	waitListening(name, addr, logFile)
	return &scenario{name: name, proxy: &url.URL{Scheme: "http", Host: addr}, cmd: cmd}
}

func startSmokescreen(dir, dnsAddr string) *scenario {
	acl := filepath.Join(dir, "acl.yaml")
	aclSrc := fmt.Sprintf("---\nversion: v1\nservices: []\ndefault:\n  name: default\n  project: bench\n  action: enforce\n  allowed_domains:\n    - %s\n", originName)
	if err := os.WriteFile(acl, []byte(aclSrc), 0o644); err != nil {
		fatalf("%v", err)
	}
	port := freePort()
	cfg := filepath.Join(dir, "smokescreen.yaml")
	cfgSrc := fmt.Sprintf("ip: 127.0.0.1\nport: %s\nacl_file: %s\nallow_missing_role: true\nallow_ranges: [\"127.0.0.1/32\"]\nresolver_addresses: [%q]\nstatsd_address: 127.0.0.1:%s\n", port, acl, dnsAddr, freePort())
	if err := os.WriteFile(cfg, []byte(cfgSrc), 0o644); err != nil {
		fatalf("%v", err)
	}
	logFile := filepath.Join(dir, "smokescreen.log")
	cmd := start("smokescreen", logFile, *smokeBin, "--config-file", cfg)
	addr := "127.0.0.1:" + port
	waitListening("smokescreen", addr, logFile)
	return &scenario{name: "smokescreen", proxy: &url.URL{Scheme: "http", Host: addr}, cmd: cmd}
}
