//go:build linux

// Command hostile is the /init of the qemu provider's escape tests. It sets
// the VM up like the real init (package vminit), then does what
// /store/capabilities/mode says:
//
//   - "escape": tries to get out of the VM and writes one line per attempt
//     to the control port, "contained NAME: detail" or "ESCAPED NAME:
//     detail", then "done", and powers off;
//   - "nic": checks that the egress proxy is the VM's only way out, with
//     the same one-line answers;
//   - "vsock": checks the Firecracker control path of vminit (listen and
//     accept on a vsock port) against a connection over vsock loopback;
//   - "hold": says "holding", then nothing more, and never powers off (for
//     the deadline and kill tests);
//   - "random": says what it draws from the kernel's generator, its
//     hostname and machine id, and how many files its workdir holds (then
//     leaves one there), for the snapshot clone tests;
//   - "scribble": writes over most of its RAM, for the template tests.
package main

import (
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/ccos-project/ccos/guest/vminit"
	"golang.org/x/sys/unix"
)

func main() {
	env, err := vminit.Setup()
	if err != nil {
		fmt.Fprintln(os.Stderr, "hostile: setup:", err)
		vminit.PowerOff()
	}
	mode, _ := os.ReadFile("/store/capabilities/mode")
	if env.Hold {
		if err := env.HoldForRestore(); err != nil {
			fmt.Fprintln(os.Stderr, "hostile:", err)
			vminit.PowerOff()
		}
	}
	port := env.Link()
	switch strings.TrimSpace(string(mode)) {
	case "escape":
		escape(port)
	case "nic":
		nic(port, env.Proxy)
	case "vsock":
		vsockCheck(port)
	case "random":
		// What a clone draws from the kernel's generator, who it is, and
		// whether its workdir is its own (empty: no other clone's marker).
		b := make([]byte, 16)
		rand.Read(b)
		host, _ := os.Hostname()
		id, _ := os.ReadFile("/etc/machine-id")
		entries, _ := os.ReadDir("/work")
		os.WriteFile("/work/marker", []byte("x"), 0o644)
		fmt.Fprintf(port, "random %x\nidentity %s %s\nworkdir %d\ndone\n", b, host, strings.TrimSpace(string(id)), len(entries))
	case "scribble":
		// A clone writes over most of its RAM: the template's memory must
		// not change.
		const size = 96 << 20
		mem, err := unix.Mmap(-1, 0, size, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
		if err != nil {
			fmt.Fprintf(port, "mmap: %v\ndone\n", err)
			break
		}
		for i := range mem {
			mem[i] = 0xa5
		}
		// The page cache too: drop it, so the kernel reuses its pages.
		os.WriteFile("/proc/sys/vm/drop_caches", []byte("3"), 0o200)
		fmt.Fprintf(port, "scribbled %d bytes\ndone\n", size)
	case "hold":
		fmt.Fprintln(port, "holding")
		for {
			time.Sleep(time.Hour)
		}
	default:
		fmt.Fprintf(port, "unknown mode %q\n", mode)
	}
	port.Close()
	vminit.PowerOff()
}

func escape(w io.Writer) {
	report := func(name string, escaped bool, detail string) {
		verdict := "contained"
		if escaped {
			verdict = "ESCAPED"
		}
		fmt.Fprintf(w, "%s %s: %s\n", verdict, name, strings.ReplaceAll(detail, "\n", " "))
	}
	// The rootfs is read-only: writing fails with EROFS, and so does a
	// read-write remount.
	err := os.WriteFile("/store/owned", []byte("x"), 0o644)
	report("write-rootfs", !errors.Is(err, unix.EROFS), fmt.Sprint(err))
	err = unix.Mount("", "/store", "", unix.MS_REMOUNT, "")
	_, statErr := os.Stat("/store/owned")
	werr := os.WriteFile("/store/owned", []byte("x"), 0o644)
	report("remount-rw", werr == nil || statErr == nil, fmt.Sprintf("remount: %v; write: %v", err, werr))
	// The raw device is read-only too.
	f, err := os.OpenFile("/dev/vda", os.O_WRONLY, 0)
	if err == nil {
		_, err = f.Write([]byte("x"))
		f.Close()
	}
	report("write-device", err == nil, fmt.Sprint(err))
	// The host's file system is not there: no other block device, no 9p
	// or virtiofs share, no host files.
	devs, _ := filepath.Glob("/sys/block/*")
	var blocks []string
	for _, d := range devs {
		if b := filepath.Base(d); !strings.HasPrefix(b, "loop") && !strings.HasPrefix(b, "ram") {
			blocks = append(blocks, b)
		}
	}
	report("block-devices", len(blocks) != 1 || blocks[0] != "vda", strings.Join(blocks, ","))
	var mountErrs []string
	for _, fs := range []string{"9p", "virtiofs"} {
		os.MkdirAll("/mnt/"+fs, 0o755)
		if err := unix.Mount("host", "/mnt/"+fs, fs, 0, ""); err == nil {
			mountErrs = append(mountErrs, fs+" mounted")
		}
	}
	report("host-share", len(mountErrs) > 0, strings.Join(mountErrs, ","))
	var found []string
	for _, p := range []string{"/etc/shadow", "/etc/passwd", "/root", "/home", "/usr", "/boot", "/var"} {
		// An empty directory of the initramfs is not a host file.
		if entries, err := os.ReadDir(p); err == nil && len(entries) == 0 {
			continue
		}
		if _, err := os.Stat(p); err == nil {
			found = append(found, p)
		}
	}
	report("host-files", len(found) > 0, "present: "+strings.Join(found, ","))
	// No network: only the loopback interface, and nothing routes out.
	ifs, _ := net.Interfaces()
	var names []string
	for _, i := range ifs {
		names = append(names, i.Name)
	}
	report("interfaces", len(names) > 1 || (len(names) == 1 && names[0] != "lo"), strings.Join(names, ","))
	var reached []string
	for _, addr := range []string{"10.0.2.2:22", "10.0.2.3:53", "169.254.169.254:80", "1.1.1.1:443"} {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			reached = append(reached, addr)
		}
	}
	report("network", len(reached) > 0, "reached: "+strings.Join(reached, ","))
	// The workdir is a size-limited tmpfs.
	var st unix.Statfs_t
	err = unix.Statfs("/work", &st)
	size := int64(st.Blocks) * st.Bsize
	report("workdir-limit", err != nil || st.Type != unix.TMPFS_MAGIC || size > 64<<20, fmt.Sprintf("tmpfs of %d bytes (%v)", size, err))
	fmt.Fprintln(w, "done")
}

func nic(w io.Writer, proxy string) {
	report := func(name string, escaped bool, detail string) {
		verdict := "contained"
		if escaped {
			verdict = "ESCAPED"
		}
		fmt.Fprintf(w, "%s %s: %s\n", verdict, name, strings.ReplaceAll(detail, "\n", " "))
	}
	// The proxy answers a forward-proxy request.
	c, err := net.DialTimeout("tcp", proxy, 5*time.Second)
	answer := ""
	if err == nil {
		c.SetDeadline(time.Now().Add(10 * time.Second))
		fmt.Fprintf(c, "GET http://origin.test/hello HTTP/1.1\r\nHost: origin.test\r\nConnection: close\r\n\r\n")
		b, _ := io.ReadAll(c)
		c.Close()
		answer = string(b)
	}
	report("proxy-reachable", err != nil || !strings.Contains(answer, "via the proxy"), fmt.Sprintf("%v %.60q", err, answer))
	// Nothing else: no other port on the proxy's address, no other address.
	host, _, _ := net.SplitHostPort(proxy)
	var reached []string
	for _, addr := range []string{host + ":22", host + ":80", "10.77.0.3:80", "10.0.2.2:22", "169.254.169.254:80", "1.1.1.1:443", "[2606:4700::1111]:443"} {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			reached = append(reached, addr)
		}
	}
	report("only-the-proxy", len(reached) > 0, "reached: "+strings.Join(reached, ","))
	routes, _ := os.ReadFile("/proc/net/route")
	var defaults []string
	for _, l := range strings.Split(string(routes), "\n")[1:] {
		f := strings.Fields(l)
		if len(f) > 2 && f[1] == "00000000" {
			defaults = append(defaults, l)
		}
	}
	report("no-default-route", len(defaults) > 0, strings.Join(defaults, ";"))
	ifs, _ := net.Interfaces()
	var names []string
	for _, i := range ifs {
		names = append(names, i.Name)
	}
	report("interfaces", strings.Join(names, ",") != "lo,eth0", strings.Join(names, ","))
	fmt.Fprintln(w, "done")
}

func vsockCheck(w io.Writer) {
	const port = 1024
	type result struct {
		got string
		err error
	}
	res := make(chan result, 1)
	go func() {
		f, err := vminit.AcceptVsock(port)
		if err != nil {
			res <- result{err: err}
			return
		}
		defer f.Close()
		buf := make([]byte, 5)
		_, err = io.ReadFull(f, buf)
		if err == nil {
			_, err = f.Write([]byte("pong!"))
		}
		res <- result{string(buf), err}
	}()
	var conn int
	var err error
	for i := 0; i < 200; i++ {
		conn, err = unix.Socket(unix.AF_VSOCK, unix.SOCK_STREAM, 0)
		if err == nil {
			if err = unix.Connect(conn, &unix.SockaddrVM{CID: unix.VMADDR_CID_LOCAL, Port: port}); err == nil {
				break
			}
			unix.Close(conn)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err != nil {
		fmt.Fprintf(w, "FAILED vsock connect: %v\ndone\n", err)
		return
	}
	c := os.NewFile(uintptr(conn), "vsock-client")
	c.Write([]byte("ping!"))
	reply := make([]byte, 5)
	_, rerr := io.ReadFull(c, reply)
	c.Close()
	r := <-res
	if r.err != nil || rerr != nil || r.got != "ping!" || string(reply) != "pong!" {
		fmt.Fprintf(w, "FAILED vsock: accept side %q %v, client %q %v\ndone\n", r.got, r.err, reply, rerr)
		return
	}
	fmt.Fprintln(w, "ok vsock: accepted on port 1024, ping/pong over the connection")
	fmt.Fprintln(w, "done")
}
