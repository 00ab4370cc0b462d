// Command testguest is the wasip1 program the wasm provider's tests run.
// The first line on standard input selects what it does; probes report one
// line each, "NAME ok" or "NAME err: ...", then "end".
package main

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"time"
	"unsafe"
)

//go:wasmimport wasi_snapshot_preview1 sock_accept
func sockAccept(fd, flags int32, newFD unsafe.Pointer) uint32

//go:wasmimport wasi_snapshot_preview1 sock_shutdown
func sockShutdown(fd, how int32) uint32

var in = bufio.NewReader(os.Stdin)

func main() {
	line, err := in.ReadString('\n')
	if err != nil {
		fmt.Fprintln(os.Stderr, "testguest: no mode:", err)
		os.Exit(10)
	}
	mode, arg, _ := strings.Cut(strings.TrimSpace(line), " ")
	switch mode {
	case "echo":
		echo()
	case "files":
		files(arg)
	case "fill":
		fill()
	case "net":
		network(arg)
	case "alloc":
		alloc()
	case "spin":
		spin()
	case "sleep":
		time.Sleep(time.Hour)
	case "block":
		for {
			if _, err := in.ReadByte(); err != nil {
				break
			}
		}
	case "stderr":
		flood(arg)
	case "stdout":
		chunk := make([]byte, 1<<16)
		for {
			os.Stdout.Write(chunk)
		}
	case "garbage":
		os.Stdout.Write([]byte(arg))
		os.Stdout.Write([]byte{0, 0xff, 0xfe, '\n', 0x80})
	case "env":
		fmt.Printf("args=%q env=%q\n", os.Args, os.Environ())
	case "clock":
		fmt.Println(time.Now().Unix())
	case "exit":
		n, _ := strconv.Atoi(arg)
		os.Exit(n)
	default:
		fmt.Fprintln(os.Stderr, "testguest: unknown mode", mode)
		os.Exit(11)
	}
}

func echo() {
	for {
		line, err := in.ReadString('\n')
		if err != nil {
			return
		}
		os.Stdout.WriteString(line)
	}
}

func report(name string, err error) {
	if err != nil {
		fmt.Printf("%s err: %v\n", name, err)
		return
	}
	fmt.Printf("%s ok\n", name)
}

func write(path string) error { return os.WriteFile(path, []byte("escaped"), 0o644) }

func read(path string) error {
	_, err := os.ReadFile(path)
	return err
}

func files(token string) {
	report("write-work", write("/work/inside-"+token))
	report("read-work", read("/work/inside-"+token))
	report("write-root", write("/"+token))
	report("write-tmp", write("/tmp/"+token))
	report("write-etc", write("/etc/"+token))
	report("write-dotdot", write("/work/../"+token))
	report("write-dotdot-deep", write("/work/../../../../"+token))
	report("write-relative", write("../"+token))
	report("read-passwd", read("/etc/passwd"))
	report("read-shadow", read("/etc/shadow"))
	report("read-passwd-dotdot", read("/work/../../../../etc/passwd"))
	report("read-proc-environ", read("/proc/self/environ"))
	_, err := os.ReadDir("/")
	report("readdir-root", err)
	report("symlink-out", os.Symlink("../../../../../../../../etc", "/work/esc"))
	report("read-via-symlink", read("/work/esc/passwd"))
	report("hardlink-out", os.Link("/work/../../../../etc/passwd", "/work/pw"))
	report("read-capabilities", read("/capabilities/cap.txt"))
	report("write-capabilities", write("/capabilities/"+token))
	fmt.Println("end")
}

// fill writes to /work until refused and reports how much it wrote.
func fill() {
	f, err := os.Create("/work/fill")
	if err != nil {
		fmt.Println("create err:", err)
		return
	}
	chunk := make([]byte, 64<<10)
	total := 0
	for {
		n, err := f.Write(chunk)
		total += n
		if err != nil {
			fmt.Printf("wrote %d err: %v\n", total, err)
			break
		}
	}
	err = f.Truncate(1 << 40)
	fmt.Printf("truncate err: %v\n", err)
	f.Close()
	os.Remove("/work/fill")
	n := 0
	for ; ; n++ {
		if err := os.Mkdir(fmt.Sprintf("/work/d%d", n), 0o755); err != nil {
			fmt.Printf("made %d dirs err: %v\n", n, err)
			break
		}
	}
	fmt.Println("end")
}

func network(port string) {
	c, err := net.Dial("tcp", "127.0.0.1:"+port)
	if c != nil {
		c.Close()
	}
	report("dial", err)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if l != nil {
		l.Close()
	}
	report("listen", err)
	for fd := int32(0); fd < 32; fd++ {
		var nfd int32
		if errno := sockAccept(fd, 0, unsafe.Pointer(&nfd)); errno == 0 {
			report(fmt.Sprintf("sock_accept-%d", fd), nil)
		}
		if errno := sockShutdown(fd, 3); errno == 0 {
			report(fmt.Sprintf("sock_shutdown-%d", fd), nil)
		}
	}
	report("raw-sockets", nil)
	fmt.Println("end")
}

var keep [][]byte

func alloc() {
	for {
		b := make([]byte, 1<<20)
		for i := 0; i < len(b); i += 4096 {
			b[i] = 1
		}
		keep = append(keep, b)
	}
}

var counter uint64

func spin() {
	for {
		counter++
	}
}

func flood(arg string) {
	n, _ := strconv.ParseInt(arg, 10, 64)
	chunk := make([]byte, 1<<20)
	for i := range chunk {
		chunk[i] = 'x'
	}
	var total int64
	for total < n {
		w, err := os.Stderr.Write(chunk)
		total += int64(w)
		if err != nil {
			fmt.Printf("stderr err: %v\n", err)
			return
		}
	}
	fmt.Printf("wrote %d\n", total)
}
