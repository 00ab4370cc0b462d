//go:build linux

package qemu

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"os/exec"
	"runtime"
	"time"

	"github.com/ccos-project/ccos/vmspec"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
)

// nicNet is a VM's network: a network namespace of its own holding the tap
// device QEMU attaches the guest's NIC to, and the egress proxy's listener
// on the tap's address. Nothing else is in the namespace (no other
// interface but a loopback that stays down, no route beyond the tap's /30),
// so the proxy is the guest's only way out; the proxy itself dials from the
// host's namespace.
type nicNet struct {
	name string // the namespace's name under /var/run/netns
	ns   netns.NsHandle
	ln   net.Listener
	srv  *http.Server
	done chan struct{}
}

// ErrNoProxy is returned when a config enables the NIC but the provider
// has no egress proxy to put behind it.
var ErrNoProxy = errors.New("the config enables :microvm :devices :nic but no egress proxy is configured for the VM (ccos never gives a guest a NIC that does not end at the proxy)")

// setupNIC creates the namespace name with the tap tapName (owned by
// uid/gid, so unprivileged QEMU can attach to it) and serves proxy on
// vmspec.ProxyListen inside it.
func setupNIC(name, tapName string, uid, gid uint32, proxy http.Handler) (n *nicNet, err error) {
	if proxy == nil {
		return nil, ErrNoProxy
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	orig, err := netns.Get()
	if err != nil {
		return nil, fmt.Errorf("NIC: current network namespace: %w", err)
	}
	defer orig.Close()
	ns, err := netns.NewNamed(name) // and enter it
	if err != nil {
		return nil, fmt.Errorf("NIC: network namespace %s: %w", name, err)
	}
	n = &nicNet{name: name, ns: ns, done: make(chan struct{})}
	defer func() {
		if serr := netns.Set(orig); serr != nil {
			runtime.LockOSThread() // never reuse this thread
			err = errors.Join(err, fmt.Errorf("NIC: back to the host namespace: %w", serr))
		}
		if err != nil {
			n.close()
			n = nil
		}
	}()
	tap := &netlink.Tuntap{LinkAttrs: netlink.LinkAttrs{Name: tapName}, Mode: netlink.TUNTAP_MODE_TAP,
		Flags: netlink.TUNTAP_NO_PI | netlink.TUNTAP_VNET_HDR, Owner: uid, Group: gid}
	if err := netlink.LinkAdd(tap); err != nil {
		return n, fmt.Errorf("NIC: tap %s: %w", tapName, err)
	}
	addr, err := netlink.ParseAddr(vmspec.ProxyNetAddr)
	if err != nil {
		return n, err
	}
	if err := netlink.AddrAdd(tap, addr); err != nil {
		return n, fmt.Errorf("NIC: address %s on %s: %w", vmspec.ProxyNetAddr, tapName, err)
	}
	if err := netlink.LinkSetUp(tap); err != nil {
		return n, fmt.Errorf("NIC: bring %s up: %w", tapName, err)
	}
	// The listener's socket belongs to this namespace for its life.
	ln, err := net.Listen("tcp", vmspec.ProxyListen)
	if err != nil {
		return n, fmt.Errorf("NIC: proxy listener %s: %w", vmspec.ProxyListen, err)
	}
	n.ln = ln
	n.srv = &http.Server{Handler: proxy, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		defer close(n.done)
		n.srv.Serve(ln)
	}()
	return n, nil
}

// startIn starts cmd inside the namespace: the child inherits the network
// namespace of the thread that forks it.
func (n *nicNet) startIn(cmd *exec.Cmd) error {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	orig, err := netns.Get()
	if err != nil {
		return err
	}
	defer orig.Close()
	if err := netns.Set(n.ns); err != nil {
		return fmt.Errorf("NIC: enter %s: %w", n.name, err)
	}
	startErr := cmd.Start()
	if err := netns.Set(orig); err != nil {
		// This thread must not run anything else: keep it locked so the
		// runtime ends it with the goroutine.
		runtime.LockOSThread()
		return errors.Join(startErr, fmt.Errorf("NIC: back to the host namespace: %w", err))
	}
	return startErr
}

// close stops the proxy listener and deletes the namespace (and the tap in
// it).
func (n *nicNet) close() error {
	if n == nil {
		return nil
	}
	var errs []error
	if n.srv != nil {
		n.srv.Close()
		<-n.done
	}
	if n.ns.IsOpen() {
		n.ns.Close()
	}
	if err := netns.DeleteNamed(n.name); err != nil {
		errs = append(errs, fmt.Errorf("NIC: delete namespace %s: %w", n.name, err))
	}
	return errors.Join(errs...)
}
