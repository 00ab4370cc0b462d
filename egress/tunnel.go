package egress

import (
	"errors"
	"io"
	"net"
	"net/http"
	"sync"
	"time"
)

// serveConnect admits a CONNECT tunnel: the host check, one resolution and
// the address rules, the rate limits and the tunnel count; then it dials
// the checked address and splices the two connections. The proxy does not
// see inside the tunnel, so methods are not checked and origins that need
// TLS originated by the proxy are refused.
func (p *Proxy) serveConnect(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	agent := p.agentOf(ctx)
	host, port, err := SplitHostPort(r.Host, 0)
	if err != nil || port == 0 {
		d := p.badRequest(r, "connect", "CONNECT needs host:port")
		if err != nil {
			d.Reason = err.Error()
		}
		d.Rule = RuleInvalidHost
		p.finish(&d)
		writeDenied(w, d)
		return
	}
	st := p.agent(agent)
	d := p.admit(ctx, st, Request{Agent: agent, Method: http.MethodConnect, Host: host, Port: port}, "connect")
	if !d.Allowed() {
		p.finish(&d)
		writeDenied(w, d)
		return
	}
	select {
	case st.tunnels <- struct{}{}:
	default:
		d.deny(RuleTunnels, "agent %s already holds %d tunnels", agent, st.pol.Limits.MaxTunnels)
		p.finish(&d)
		writeDenied(w, d)
		return
	}
	defer func() { <-st.tunnels }()
	up, err := p.dialOrigin(ctx, st.pol.Limits.DialTimeout, d.Addr, host, port)
	if err != nil {
		d.Err = err.Error()
		d.deny(RuleUpstream, "dialling %s: %v", d.Addr, err)
		p.finish(&d)
		writeDenied(w, d)
		return
	}
	defer up.Close()
	hj, ok := w.(http.Hijacker)
	if !ok {
		d.deny(RuleBadRequest, "the connection cannot be hijacked (HTTP/2?)")
		p.finish(&d)
		writeDenied(w, d)
		return
	}
	client, rw, err := hj.Hijack()
	if err != nil {
		d.Err = err.Error()
		d.deny(RuleBadRequest, "hijacking the connection: %v", err)
		p.finish(&d)
		return
	}
	defer client.Close()
	p.finish(&d)
	if _, err := client.Write([]byte("HTTP/1.1 200 Connection Established\r\n\r\n")); err != nil {
		return
	}
	// Bytes the client sent after the CONNECT header are in the reader.
	if n := rw.Reader.Buffered(); n > 0 {
		b, _ := rw.Reader.Peek(n)
		if _, err := up.Write(b); err != nil {
			return
		}
		p.metrics.addBytes(agent, "sent", int64(n))
	}
	p.metrics.tunnelDelta(1)
	defer p.metrics.tunnelDelta(-1)
	p.splice(agent, client, up, st.pol.Limits.TunnelIdleTimeout)
}

// splice copies both ways until either side closes or the tunnel has been
// idle for idle.
func (p *Proxy) splice(agent string, client, up net.Conn, idle time.Duration) {
	var last lastActive
	last.touch()
	var wg sync.WaitGroup
	cp := func(dst, src net.Conn, direction string) {
		defer wg.Done()
		bp := copyBufs.Get().(*[]byte)
		defer copyBufs.Put(bp)
		buf := *bp
		// A broken side, or an idle tunnel, ends both directions at once;
		// a clean EOF is passed on as a half-close.
		abort := func() { client.Close(); up.Close() }
		for {
			_ = src.SetReadDeadline(time.Now().Add(idle))
			n, err := src.Read(buf)
			if n > 0 {
				last.touch()
				if _, werr := dst.Write(buf[:n]); werr != nil {
					abort()
					return
				}
				p.metrics.addBytes(agent, direction, int64(n))
			}
			if err != nil {
				var ne net.Error
				if errors.As(err, &ne) && ne.Timeout() && last.since() < idle {
					continue // the other direction is active
				}
				if !errors.Is(err, io.EOF) {
					abort()
					return
				}
				break
			}
		}
		// Half-close where possible so the other direction can finish.
		if tc, ok := dst.(interface{ CloseWrite() error }); ok {
			_ = tc.CloseWrite()
		} else {
			_ = dst.Close()
		}
	}
	wg.Add(2)
	go cp(up, client, "sent")
	go cp(client, up, "received")
	wg.Wait()
}

type lastActive struct {
	mu sync.Mutex
	t  time.Time
}

func (l *lastActive) touch() {
	l.mu.Lock()
	l.t = time.Now()
	l.mu.Unlock()
}

func (l *lastActive) since() time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	return time.Since(l.t)
}

// Serve accepts proxy connections on l for the proxy's first agent.
func (p *Proxy) Serve(l net.Listener) error { return p.ServeAgent(l, p.primary) }

// ServeAgent accepts proxy connections on l, each acting for agent: the
// host gives every sandbox its own listener, so the guest cannot claim
// another agent's identity.
func (p *Proxy) ServeAgent(l net.Listener, agent string) error {
	if p.agent(agent) == nil {
		return ErrUnknownAgent
	}
	srv := &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			p.ServeHTTP(w, r.WithContext(WithAgent(r.Context(), agent)))
		}),
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          nil,
	}
	return srv.Serve(l)
}
