package egress

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"time"
)

// Upstream forwarding. With Options.Upstream set, the proxy reaches every
// origin through another forward proxy instead of dialling it: after its
// own decision (the agent's allowlist, the step's ACL, the address class of
// what the name resolves to here), it asks the upstream for a tunnel with
// `CONNECT host:port` by name, so that the upstream applies its own policy
// to the same name, and then speaks to the origin through the tunnel (TLS
// and its pins end to end, as without an upstream). A Kubernetes
// deployment uses it to keep one egress proxy as the cluster's only way
// out: the node agents' proxies decide per agent and step, and the
// NetworkPolicies let only the upstream reach the internet.

// ErrUpstream is wrapped when the upstream proxy refuses a tunnel or cannot
// be reached.
var ErrUpstream = errors.New("egress: upstream proxy")

// maxUpstreamResponse bounds the upstream's answer to CONNECT.
const maxUpstreamResponse = 16 << 10

// ParseUpstream reads an upstream proxy's URL: http://host:port.
func ParseUpstream(s string) (*url.URL, error) {
	u, err := url.Parse(s)
	if err != nil {
		return nil, fmt.Errorf("%w %q: %v", ErrUpstream, s, err)
	}
	if u.Scheme != "http" || u.Host == "" || u.Port() == "" || (u.Path != "" && u.Path != "/") || u.User != nil || u.RawQuery != "" {
		return nil, fmt.Errorf("%w %q: want http://HOST:PORT", ErrUpstream, s)
	}
	return u, nil
}

// dialOrigin connects to the origin admit checked: the checked address
// itself, or host:port through the upstream.
func (p *Proxy) dialOrigin(ctx context.Context, timeout time.Duration, checked netip.Addr, host string, port int) (net.Conn, error) {
	if p.opts.Upstream == nil {
		d := net.Dialer{Timeout: timeout}
		return d.DialContext(ctx, "tcp", netip.AddrPortFrom(checked, uint16(port)).String())
	}
	return dialUpstream(ctx, p.opts.Upstream, timeout, net.JoinHostPort(host, strconv.Itoa(port)))
}

// transportDialer is the dialer of the proxy's transports: the checked
// address, or the request's host:port through the upstream once admit has
// checked it.
func (p *Proxy) transportDialer(timeout time.Duration) func(ctx context.Context, network, addr string) (net.Conn, error) {
	if p.opts.Upstream == nil {
		return dialChecked(timeout)
	}
	up := p.opts.Upstream
	return func(ctx context.Context, _, addr string) (net.Conn, error) {
		if ap, ok := ctx.Value(checkedAddrKey{}).(netip.AddrPort); !ok || !ap.IsValid() {
			return nil, errors.New("egress: refusing to dial an address that was not checked")
		}
		return dialUpstream(ctx, up, timeout, addr)
	}
}

// dialUpstream opens a tunnel to hostport through the upstream proxy.
func dialUpstream(ctx context.Context, up *url.URL, timeout time.Duration, hostport string) (net.Conn, error) {
	d := net.Dialer{Timeout: timeout}
	conn, err := d.DialContext(ctx, "tcp", up.Host)
	if err != nil {
		return nil, fmt.Errorf("%w %s: %v", ErrUpstream, up.Host, err)
	}
	deadline := time.Now().Add(timeout)
	if dl, ok := ctx.Deadline(); ok && dl.Before(deadline) {
		deadline = dl
	}
	conn.SetDeadline(deadline)
	req := &http.Request{Method: http.MethodConnect, URL: &url.URL{Opaque: hostport}, Host: hostport, Header: http.Header{}}
	if err := req.Write(conn); err != nil {
		conn.Close()
		return nil, fmt.Errorf("%w %s: %v", ErrUpstream, up.Host, err)
	}
	br := bufio.NewReaderSize(&limitedConn{Conn: conn, left: maxUpstreamResponse}, 4096)
	resp, err := http.ReadResponse(br, req)
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("%w %s: reading its answer to CONNECT %s: %v", ErrUpstream, up.Host, hostport, err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		conn.Close()
		return nil, fmt.Errorf("%w %s refused CONNECT %s: %s", ErrUpstream, up.Host, hostport, resp.Status)
	}
	if br.Buffered() > 0 {
		// The origin speaks after the client; bytes before that are not
		// the origin's.
		conn.Close()
		return nil, fmt.Errorf("%w %s: data after its answer to CONNECT %s", ErrUpstream, up.Host, hostport)
	}
	conn.SetDeadline(time.Time{})
	return conn, nil
}

// limitedConn reads at most left bytes: the upstream's answer is bounded.
type limitedConn struct {
	net.Conn
	left int
}

func (c *limitedConn) Read(b []byte) (int, error) {
	if c.left <= 0 {
		return 0, errors.New("the answer is too long")
	}
	if len(b) > c.left {
		b = b[:c.left]
	}
	n, err := c.Conn.Read(b)
	c.left -= n
	return n, err
}
