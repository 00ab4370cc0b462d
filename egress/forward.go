package egress

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"sync"
)

// ErrResponseTooLarge is the read error of a response body that passes the
// policy's MaxResponseBytes.
var ErrResponseTooLarge = errors.New("egress: response exceeds the size cap")

// agentKey carries the agent a request comes from (see WithAgent).
type agentKey struct{}

// WithAgent returns a context that makes RoundTrip and ServeHTTP act for
// agent; without it they act for the agent the proxy was created with.
func WithAgent(ctx context.Context, agent string) context.Context {
	return context.WithValue(ctx, agentKey{}, agent)
}

func (p *Proxy) agentOf(ctx context.Context) string {
	if a, ok := ctx.Value(agentKey{}).(string); ok {
		return a
	}
	return p.primary
}

// RoundTrip sends a request the host makes on an agent's behalf (the
// http-fetch capability) through the same checks as proxied requests: the
// agent comes from the request's context (WithAgent). A refusal is a
// *DeniedError. The response body is capped and, if the policy says so,
// stripped of prompt-injection text.
func (p *Proxy) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, d, err := p.forward(r, "fetch")
	if err != nil {
		return nil, err
	}
	if d.Action == ActionDeny {
		return nil, &DeniedError{Decision: d}
	}
	return resp, nil
}

// hopHeaders are removed in both directions (RFC 9110 §7.6.1), together with
// what the client said to the proxy.
var hopHeaders = []string{
	"Connection", "Proxy-Connection", "Keep-Alive", "Proxy-Authenticate", "Proxy-Authorization",
	"Te", "Trailer", "Transfer-Encoding", "Upgrade",
}

func removeHopHeaders(h http.Header) {
	for _, f := range h.Values("Connection") {
		for _, name := range strings.Split(f, ",") {
			if name = strings.TrimSpace(name); name != "" {
				h.Del(name)
			}
		}
	}
	for _, k := range hopHeaders {
		h.Del(k)
	}
}

// forward admits and sends one HTTP request. A denied request returns a
// decision with ActionDeny and no error; err is for requests so malformed no
// decision applies.
func (p *Proxy) forward(in *http.Request, kind string) (*http.Response, Decision, error) {
	if in.Body != nil {
		defer in.Body.Close() // a RoundTripper closes the request body, even on errors
	}
	ctx := in.Context()
	u := in.URL
	if u == nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
		d := p.badRequest(in, kind, "the request has no absolute http:// URL (is the client configured to use a proxy?)")
		p.finish(&d)
		return nil, d, nil
	}
	defPort := 80
	if u.Scheme == "https" {
		defPort = 443
	}
	host, port, err := SplitHostPort(u.Host, defPort)
	if err != nil {
		d := p.badRequest(in, kind, err.Error())
		d.Rule = RuleInvalidHost
		p.finish(&d)
		return nil, d, nil
	}
	scheme := u.Scheme
	agent := p.agentOf(ctx)
	st := p.agent(agent)
	var tlsIdx = -1
	if st != nil {
		for i, t := range st.pol.tls {
			if t.pattern.Match(host) {
				tlsIdx = i
				break
			}
		}
	}
	if tlsIdx >= 0 && scheme == "http" {
		// The guest speaks plain HTTP; the proxy originates TLS.
		scheme = "https"
		if u.Port() == "" {
			port = 443
		}
	}
	d := p.admit(ctx, st, Request{Agent: agent, Method: in.Method, Host: host, Port: port}, kind)
	if !d.Allowed() {
		p.finish(&d)
		return nil, d, nil
	}
	// Only a request the ACL allows learns that its origin cannot be
	// reached for want of a client certificate: the most basic reason
	// comes first.
	if tlsIdx >= 0 && st.pol.mtlsWanted && st.pol.tls[tlsIdx].ClientCert == nil {
		d.deny(RuleClientCert, "%s needs a client certificate (the config sets :mtls true) and the proxy has none (the operator gives one: --egress-client-cert and --egress-client-key)", d.Host)
		p.finish(&d)
		return nil, d, nil
	}
	// Only a step allowed by its ACL (not a would-deny of report mode)
	// gets the agent's secrets.
	aclAllowed := d.Action == ActionAllow && d.Step != ""
	content, ok := p.checkRequest(&d, st, in)
	if !ok {
		p.finish(&d)
		return nil, d, nil
	}
	if name := st.pol.requestSecret(content.path, content.query, content.header, content.body); name != "" {
		d.deny(RuleSecretLeak, "the request carries secret %s, which only the proxy adds, and only to its own domain", name)
		p.finish(&d)
		return nil, d, nil
	}
	if aclAllowed {
		d.Secrets = st.pol.inject(d.Host, content.header)
	}
	out := in.WithContext(withCheckedAddr(ctx, netip.AddrPortFrom(d.Addr, uint16(port))))
	out.RequestURI = ""
	out.URL = &url.URL{Scheme: scheme, Host: hostPort(d.Host, port, scheme), Path: content.path, RawPath: u.RawPath, RawQuery: content.query}
	if content.pathEdit {
		out.URL.RawPath = ""
	}
	out.Host = out.URL.Host
	out.Header = content.header
	body := content.body
	if st.pol.StripInjection {
		out.Header.Del("Accept-Encoding")
	}
	out.Body = io.NopCloser(bytes.NewReader(body))
	out.ContentLength = int64(len(body))
	if len(body) == 0 {
		out.Body = http.NoBody
	}
	out.TransferEncoding = nil
	out.Close = false // Connection is hop-by-hop
	tr := st.plain
	if tlsIdx >= 0 {
		tr = st.tls[tlsIdx]
	}
	resp, err := tr.RoundTrip(out)
	if err != nil {
		d.Err = err.Error()
		if errors.Is(err, ErrPinMismatch) {
			d.deny(RulePinMismatch, "%v", err)
		} else {
			d.deny(RuleUpstream, "%s: %v", d.Host, err)
		}
		p.finish(&d)
		return nil, d, nil
	}
	p.metrics.addBytes(d.Agent, "sent", int64(len(body)))
	d.Status = resp.StatusCode
	if len(d.Secrets) > 0 {
		if err := p.checkEcho(&d, st, resp); err != nil {
			p.finish(&d)
			return nil, d, nil
		}
	}
	if err := p.checkResponse(&d, st, resp); err != nil {
		resp.Body.Close()
		p.finish(&d)
		return nil, d, nil
	}
	p.finish(&d)
	return resp, d, nil
}

func hostPort(host string, port int, scheme string) string {
	if (scheme == "http" && port == 80) || (scheme == "https" && port == 443) {
		if strings.Contains(host, ":") {
			return "[" + host + "]"
		}
		return host
	}
	if strings.Contains(host, ":") {
		return "[" + host + "]:" + strconv.Itoa(port)
	}
	return host + ":" + strconv.Itoa(port)
}

func (p *Proxy) badRequest(in *http.Request, kind, reason string) Decision {
	d := Decision{Time: p.opts.Clock(), Kind: kind, Agent: p.agentOf(in.Context()), Method: in.Method, Host: in.Host}
	d.deny(RuleBadRequest, "%s", reason)
	return d
}

// outgoing is what is sent on once DLP has seen it.
type outgoing struct {
	body     []byte
	path     string
	pathEdit bool // path was redacted: its raw form no longer applies
	query    string
	header   http.Header
}

// credentialHeaders carry the agent's credentials for the origin it is
// allowed to reach; DLP does not scan them (it would refuse every
// authenticated call), everything else in the request it does.
var credentialHeaders = map[string]bool{"Authorization": true, "Cookie": true}

// headerNames is the text DLP scans for the request's header names. HTTP
// parsing has already folded their case (X-AKIA... arrives as X-Akia...),
// so each name is scanned as received, in upper case and in lower case.
func headerNames(h http.Header) string {
	var b strings.Builder
	for k := range h {
		b.WriteString(k + "\n" + strings.ToUpper(k) + "\n" + strings.ToLower(k) + "\n")
	}
	return b.String()
}

// checkRequest reads the request body within the size cap and applies DLP
// to the body, the URL path and query, and the header names and values.
func (p *Proxy) checkRequest(d *Decision, st *agentState, in *http.Request) (outgoing, bool) {
	out := outgoing{path: in.URL.Path, query: in.URL.RawQuery, header: in.Header.Clone()}
	removeHopHeaders(out.header)
	limit := st.pol.Limits.MaxRequestBytes
	if in.ContentLength > limit {
		d.deny(RuleRequestTooLarge, "request body of %d bytes exceeds %d", in.ContentLength, limit)
		return out, false
	}
	if in.Body != nil && in.Body != http.NoBody {
		b, err := readBody(in.Body, in.ContentLength, limit)
		if err != nil {
			d.deny(RuleBadRequest, "reading the request body: %v", err)
			return out, false
		}
		if int64(len(b)) > limit {
			d.deny(RuleRequestTooLarge, "request body exceeds %d bytes", limit)
			return out, false
		}
		out.body = b
	}
	s := st.pol.dlp
	if s == nil {
		return out, true
	}
	// One scan over everything first: a clean request, the common case,
	// costs one pass of the rules; only a finding leads to scanning each
	// part to locate it.
	var joined strings.Builder
	joined.WriteString(out.path)
	joined.WriteByte('\n')
	joined.WriteString(queryText(out.query))
	for k, vs := range out.header {
		if !credentialHeaders[k] {
			for _, v := range vs {
				joined.WriteByte('\n')
				joined.WriteString(v)
			}
		}
	}
	names := headerNames(out.header)
	joined.WriteByte('\n')
	joined.WriteString(names)
	joined.Write(out.body)
	whole := s.scan(joined.String())
	if len(whole) == 0 {
		return out, true
	}
	pf := s.scan(out.path)
	qf := s.scan(queryText(out.query))
	bf := s.scan(string(out.body))
	all := append(append(append([]Finding(nil), pf...), qf...), bf...)
	hf := map[string][][]Finding{}
	for k, vs := range out.header {
		if credentialHeaders[k] {
			continue
		}
		for i, v := range vs {
			if fs := s.scan(v); len(fs) > 0 {
				if hf[k] == nil {
					hf[k] = make([][]Finding, len(vs))
				}
				hf[k][i] = fs
				all = append(all, fs...)
			}
		}
	}
	// A finding in a header name, or a match across two parts, cannot be
	// redacted in place.
	nf := s.scan(names)
	placed := len(all) > 0 && len(nf) == 0
	all = append(all, nf...)
	if len(all) == 0 {
		all = whole
	}
	d.DLP = ruleNames(all)
	found := strings.Join(d.DLP, ", ")
	switch s.action {
	case DLPBlock:
		d.deny(RuleDLP, "the request carries %s", found)
		return out, false
	case DLPRedact:
		ok := placed
		if ok && len(pf) > 0 {
			out.path, ok = redact(out.path, pf)
			out.pathEdit = true
		}
		if ok && len(qf) > 0 {
			out.query, ok = redactQuery(s, out.query)
		}
		if ok && len(bf) > 0 {
			var b string
			b, ok = redact(string(out.body), bf)
			out.body = []byte(b)
		}
		for k, per := range hf {
			for i, fs := range per {
				if ok && len(fs) > 0 {
					out.header[k][i], ok = redact(out.header[k][i], fs)
				}
			}
		}
		if !ok {
			d.deny(RuleDLP, "the request carries %s in a form that cannot be redacted in place", found)
			return out, false
		}
		if d.Action == ActionAllow {
			d.Action, d.Rule, d.Reason = ActionReport, RuleDLP, "redacted "+found
		}
	case DLPLog:
		if d.Action == ActionAllow {
			d.Action, d.Rule, d.Reason = ActionReport, RuleDLP, "the request carries "+found
		}
	}
	return out, true
}

// redactQuery redacts each value of a query; the query is re-encoded with
// its keys sorted.
func redactQuery(s *scanner, query string) (string, bool) {
	vals, err := url.ParseQuery(query)
	if err != nil {
		return "", false
	}
	for k, vs := range vals {
		for i, v := range vs {
			fs := s.scan(v)
			if len(fs) == 0 {
				continue
			}
			r, ok := redact(v, fs)
			if !ok {
				return "", false
			}
			vs[i] = r
		}
		if fs := s.scan(k); len(fs) > 0 {
			return "", false
		}
	}
	return vals.Encode(), true
}

// queryText is the query with its percent-encoding undone, so that a secret
// cannot hide behind %41 escapes; an undecodable query is scanned as is.
func queryText(q string) string {
	if s, err := url.QueryUnescape(q); err == nil {
		return s
	}
	return q
}

// checkResponse applies the response size cap and prompt-injection
// stripping; on refusal it updates d and returns an error.
func (p *Proxy) checkResponse(d *Decision, st *agentState, resp *http.Response) error {
	limit := st.pol.Limits.MaxResponseBytes
	if resp.ContentLength > limit {
		d.deny(RuleResponseTooLarge, "response of %d bytes exceeds %d", resp.ContentLength, limit)
		return ErrResponseTooLarge
	}
	removeHopHeaders(resp.Header)
	agent := d.Agent
	if !st.pol.StripInjection || !isText(resp.Header.Get("Content-Type")) {
		resp.Body = &cappedBody{rc: resp.Body, left: limit, onRead: func(n int) { p.metrics.addBytes(agent, "received", int64(n)) }}
		return nil
	}
	if enc := resp.Header.Get("Content-Encoding"); enc != "" && !strings.EqualFold(enc, "identity") {
		d.deny(RuleUpstream, "the text response is %s-encoded and cannot be checked for prompt injection", enc)
		return errors.New("encoded response")
	}
	b, err := readResponse(d, resp, limit)
	if err != nil {
		return err
	}
	p.metrics.addBytes(agent, "received", int64(len(b)))
	text, hit := stripInjection(string(b))
	d.Stripped = hit
	resp.Body = io.NopCloser(strings.NewReader(text))
	resp.ContentLength = int64(len(text))
	resp.Header.Set("Content-Length", strconv.Itoa(len(text)))
	resp.TransferEncoding = nil
	return nil
}

// cappedBody fails reads past the response cap with ErrResponseTooLarge.
type cappedBody struct {
	rc     io.ReadCloser
	left   int64
	onRead func(int)
}

func (c *cappedBody) Read(b []byte) (int, error) {
	if c.left <= 0 {
		// One byte more tells a body that ends exactly at the cap from a longer one.
		var one [1]byte
		if n, _ := c.rc.Read(one[:]); n > 0 {
			return 0, ErrResponseTooLarge
		}
		return 0, io.EOF
	}
	if int64(len(b)) > c.left {
		b = b[:c.left]
	}
	n, err := c.rc.Read(b)
	c.left -= int64(n)
	c.onRead(n)
	return n, err
}

func (c *cappedBody) Close() error { return c.rc.Close() }

// copyBufs are the buffers of copyPooled; http.response.ReadFrom would
// allocate 32 KiB per response.
var copyBufs = sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}

// copyPooled copies with a pooled buffer, hiding ReaderFrom and WriterTo so
// that io.CopyBuffer uses it.
func copyPooled(dst io.Writer, src io.Reader) (int64, error) {
	bp := copyBufs.Get().(*[]byte)
	defer copyBufs.Put(bp)
	return io.CopyBuffer(struct{ io.Writer }{dst}, struct{ io.Reader }{src}, *bp)
}

type flushWriter struct {
	w  io.Writer
	rc *http.ResponseController
}

func (f flushWriter) Write(b []byte) (int, error) {
	n, err := f.w.Write(b)
	if err == nil {
		err = f.rc.Flush()
	}
	return n, err
}

// readBody reads at most limit+1 bytes, in one allocation when the length
// is known.
func readBody(r io.Reader, length, limit int64) ([]byte, error) {
	if length < 0 || length > limit {
		return io.ReadAll(io.LimitReader(r, limit+1))
	}
	b := make([]byte, length, length+1)
	if _, err := io.ReadFull(r, b); err != nil {
		return nil, err
	}
	// A body longer than its Content-Length is the server's to refuse;
	// net/http stops reading at the declared length.
	return b, nil
}

// statusFor maps a refusal to the status the proxy answers with.
func statusFor(r Rule) int {
	switch r {
	case RuleRate, RuleStepRate:
		return http.StatusTooManyRequests
	case RuleRequestTooLarge:
		return http.StatusRequestEntityTooLarge
	case RuleBadRequest, RuleInvalidHost:
		return http.StatusBadRequest
	case RuleUpstream, RulePinMismatch, RuleResponseTooLarge, RuleResolve:
		return http.StatusBadGateway
	case RuleTunnels:
		return http.StatusServiceUnavailable
	}
	return http.StatusForbidden
}

func writeDenied(w http.ResponseWriter, d Decision) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("X-Ccos-Egress-Rule", string(d.Rule))
	w.WriteHeader(statusFor(d.Rule))
	fmt.Fprintf(w, "ccos egress: denied (%s): %s\n", d.Rule, d.Reason)
}

// ServeHTTP is the forward proxy: absolute-form HTTP requests and CONNECT.
// The agent is the one of the request's context (WithAgent, set by the
// host per listener with ServeAgent) or the proxy's first agent.
func (p *Proxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method == http.MethodConnect {
		p.serveConnect(w, r)
		return
	}
	resp, d, err := p.forward(r, "http")
	if err != nil || d.Action == ActionDeny || resp == nil {
		writeDenied(w, d)
		return
	}
	defer resp.Body.Close()
	h := w.Header()
	for k, vs := range resp.Header {
		h[k] = vs
	}
	w.WriteHeader(resp.StatusCode)
	var dst io.Writer = w
	if resp.ContentLength < 0 {
		// A body of unknown length may be a stream (server-sent events,
		// long polls): pass each piece on as it comes.
		dst = flushWriter{w: w, rc: http.NewResponseController(w)}
	}
	if _, err := copyPooled(dst, resp.Body); err != nil {
		// A cut or failed body must not look complete to the client.
		p.log.Warn("egress response aborted", "agent", d.Agent, "host", d.Host, "error", err)
		panic(http.ErrAbortHandler)
	}
}

// readResponse reads and closes a response body the proxy must inspect
// whole, refusing the decision when it cannot be read or passes limit.
func readResponse(d *Decision, resp *http.Response, limit int64) ([]byte, error) {
	b, err := io.ReadAll(io.LimitReader(resp.Body, limit+1))
	resp.Body.Close()
	if err != nil {
		d.Err = err.Error()
		d.deny(RuleUpstream, "reading the response: %v", err)
		return nil, err
	}
	if int64(len(b)) > limit {
		d.deny(RuleResponseTooLarge, "response exceeds %d bytes", limit)
		return nil, ErrResponseTooLarge
	}
	return b, nil
}
