//go:build linux

package vminit

import (
	"strings"
	"testing"
)

func TestParseParams(t *testing.T) {
	p, err := parseParams("console=ttyS0 quiet root=/dev/vda ro rootfstype=squashfs ccos.control=virtio-serial:ctl ccos.workdir_mb=32\n")
	if err != nil {
		t.Fatal(err)
	}
	if p.control != "ctl" || p.rootfs != "/dev/vda" || p.rootfsFS != "squashfs" || p.workdirMB != 32 {
		t.Errorf("parsed %+v", p)
	}
	p, err = parseParams("ccos.net=10.77.0.2/30 ccos.proxy=10.77.0.1:3128")
	if err != nil || p.net.String() != "10.77.0.2/30" || p.proxy != "10.77.0.1:3128" {
		t.Errorf("network: %+v %v", p, err)
	}
	p, err = parseParams("ccos.control=vsock:1024 root=/dev/vda")
	if err != nil || p.vsockPort != 1024 {
		t.Errorf("vsock: %+v %v", p, err)
	}
	p, err = parseParams("quiet")
	if err != nil || p.control != "ctl" || p.rootfs != "" || p.workdirMB != 64 {
		t.Errorf("defaults: %+v %v", p, err)
	}
	for _, bad := range []string{
		"ccos.control=vsock:0",            // no port
		"ccos.control=vsock:x",            // not a number
		"ccos.control=tcp:1",              // no such transport
		"ccos.control=virtio-serial:../x", // a path
		"ccos.workdir_mb=0",
		"ccos.workdir_mb=lots",
		"ccos.unknown=1",
		"root=/etc/passwd",
		"ccos.net=10.77.0.2/30",                      // no proxy
		"ccos.net=fe80::1/64 ccos.proxy=10.0.0.1:1",  // not IPv4
		"ccos.net=10.77.0.2/30 ccos.proxy=10.77.0.1", // no port
	} {
		if _, err := parseParams(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

func FuzzParseParams(f *testing.F) {
	for _, s := range []string{"root=/dev/vda ccos.control=virtio-serial:ctl", "ccos.workdir_mb=9", "a=b=c ccos.x", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		p, err := parseParams(s)
		if err != nil {
			return
		}
		if (p.vsockPort == 0 && (p.control == "" || strings.ContainsAny(p.control, "/\x00"))) || p.workdirMB <= 0 {
			t.Fatalf("accepted %q as %+v", s, p)
		}
		if p.rootfs != "" && !strings.HasPrefix(p.rootfs, "/dev/") {
			t.Fatalf("accepted rootfs %q", p.rootfs)
		}
	})
}
