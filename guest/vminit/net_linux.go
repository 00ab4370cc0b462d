//go:build linux

package vminit

import (
	"fmt"
	"net"
	"time"

	"golang.org/x/sys/unix"
)

// setupLoopback brings lo up: the guest agent may talk to itself, nothing
// else.
func setupLoopback() error {
	return ifUp("lo", nil)
}

// setupNIC gives eth0 its address and brings it up. No route is added
// beyond the interface's own /30: the proxy at the other end is the only
// address the guest can reach.
func setupNIC(addr *net.IPNet, wait time.Duration) error {
	deadline := time.Now().Add(wait)
	for {
		if _, err := net.InterfaceByName("eth0"); err == nil {
			break
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the NIC eth0 did not appear within %v (is virtio_net in the initramfs?)", wait)
		}
		time.Sleep(5 * time.Millisecond)
	}
	return ifUp("eth0", addr)
}

// ifUp sets an interface's IPv4 address and netmask (when addr is not nil)
// and brings it up, with the classic interface ioctls.
func ifUp(name string, addr *net.IPNet) error {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("%s: socket: %w", name, err)
	}
	defer unix.Close(fd)
	if addr != nil {
		ifr, err := unix.NewIfreq(name)
		if err != nil {
			return err
		}
		if err := ifr.SetInet4Addr(addr.IP.To4()); err != nil {
			return err
		}
		if err := unix.IoctlIfreq(fd, unix.SIOCSIFADDR, ifr); err != nil {
			return fmt.Errorf("%s: set address %s: %w", name, addr, err)
		}
		if err := ifr.SetInet4Addr(net.IP(addr.Mask).To4()); err != nil {
			return err
		}
		if err := unix.IoctlIfreq(fd, unix.SIOCSIFNETMASK, ifr); err != nil {
			return fmt.Errorf("%s: set netmask: %w", name, err)
		}
	}
	ifr, err := unix.NewIfreq(name)
	if err != nil {
		return err
	}
	if err := unix.IoctlIfreq(fd, unix.SIOCGIFFLAGS, ifr); err != nil {
		return fmt.Errorf("%s: get flags: %w", name, err)
	}
	ifr.SetUint16(ifr.Uint16() | unix.IFF_UP)
	if err := unix.IoctlIfreq(fd, unix.SIOCSIFFLAGS, ifr); err != nil {
		return fmt.Errorf("%s: bring up: %w", name, err)
	}
	return nil
}
