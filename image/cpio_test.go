package image

import (
	"bytes"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"testing"
)

// cpioMember is a member as read back by readCPIO: every header field.
type cpioMember struct {
	Name                                     string
	Ino, Mode, UID, GID, Nlink, Mtime        uint32
	DevMajor, DevMinor, RdevMajor, RdevMinor uint32
	Data                                     []byte
}

// readCPIO parses a newc archive independently of the writer, checking the
// magic, the padding and the trailer; it returns the members before the
// trailer.
func readCPIO(data []byte) ([]cpioMember, error) {
	var out []cpioMember
	off := 0
	for {
		if len(data)-off < cpioHeader {
			return nil, fmt.Errorf("offset %d: truncated header", off)
		}
		h := data[off : off+cpioHeader]
		if string(h[:6]) != cpioMagic {
			return nil, fmt.Errorf("offset %d: magic %q", off, h[:6])
		}
		var f [13]uint32
		for i := range f {
			v, err := strconv.ParseUint(string(h[6+8*i:14+8*i]), 16, 32)
			if err != nil {
				return nil, fmt.Errorf("offset %d: field %d: %v", off, i, err)
			}
			f[i] = uint32(v)
		}
		namesize, size := int(f[11]), int(f[6])
		nameEnd := off + cpioHeader + namesize
		if namesize == 0 || nameEnd > len(data) || data[nameEnd-1] != 0 {
			return nil, fmt.Errorf("offset %d: bad name size %d", off, namesize)
		}
		name := string(data[off+cpioHeader : nameEnd-1])
		dataOff := nameEnd + pad4(cpioHeader+namesize)
		if !allZero(data[nameEnd:min(dataOff, len(data))]) {
			return nil, fmt.Errorf("%s: non-zero name padding", name)
		}
		if dataOff+size > len(data) {
			return nil, fmt.Errorf("%s: truncated data", name)
		}
		if f[12] != 0 {
			return nil, fmt.Errorf("%s: check field %d in a 070701 archive", name, f[12])
		}
		next := dataOff + size + pad4(size)
		if next > len(data) || !allZero(data[dataOff+size:next]) {
			return nil, fmt.Errorf("%s: bad data padding", name)
		}
		if name == cpioTrailer {
			if !allZero(data[next:]) || len(data)%cpioBlock != 0 {
				return nil, fmt.Errorf("bad block padding after the trailer (archive of %d bytes)", len(data))
			}
			return out, nil
		}
		out = append(out, cpioMember{
			Name: name, Ino: f[0], Mode: f[1], UID: f[2], GID: f[3], Nlink: f[4], Mtime: f[5],
			DevMajor: f[7], DevMinor: f[8], RdevMajor: f[9], RdevMinor: f[10],
			Data: data[dataOff : dataOff+size],
		})
		off = next
	}
}

func allZero(b []byte) bool { return bytes.Count(b, []byte{0}) == len(b) }

func TestCPIORoundTrip(t *testing.T) {
	entries := []cpioEntry{
		{Name: "lib/modules/a.ko", Mode: modeReg | 0o644, Data: []byte("abc")},
		{Name: "init", Mode: modeReg | 0o755, Data: []byte("0123")},
		{Name: "lib", Mode: modeDir | 0o755},
		{Name: "dev", Mode: modeDir | 0o755},
		{Name: "dev/console", Mode: modeChar | 0o600, RdevMajor: 5, RdevMinor: 1},
		{Name: "lib/modules", Mode: modeDir | 0o755},
		{Name: "empty", Mode: modeReg | 0o644},
	}
	var buf bytes.Buffer
	if err := writeCPIO(&buf, entries, 1700000000); err != nil {
		t.Fatal(err)
	}
	got, err := readCPIO(buf.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	want := []struct {
		name  string
		mode  uint32
		nlink uint32
		data  string
	}{
		{"dev", modeDir | 0o755, 2, ""},
		{"dev/console", modeChar | 0o600, 1, ""},
		{"empty", modeReg | 0o644, 1, ""},
		{"init", modeReg | 0o755, 1, "0123"},
		{"lib", modeDir | 0o755, 2, ""},
		{"lib/modules", modeDir | 0o755, 2, ""},
		{"lib/modules/a.ko", modeReg | 0o644, 1, "abc"},
	}
	if len(got) != len(want) {
		t.Fatalf("%d members, want %d: %+v", len(got), len(want), got)
	}
	for i, w := range want {
		g := got[i]
		if g.Name != w.name || g.Mode != w.mode || g.Nlink != w.nlink || string(g.Data) != w.data ||
			g.Ino != uint32(i+1) || g.Mtime != 1700000000 || g.UID != 0 || g.GID != 0 {
			t.Errorf("member %d = %+v, want %+v with ino %d", i, g, w, i+1)
		}
	}
	if c := got[1]; c.RdevMajor != 5 || c.RdevMinor != 1 {
		t.Errorf("dev/console rdev %d:%d", c.RdevMajor, c.RdevMinor)
	}
	// The first header, byte for byte: the format is fixed-width hex.
	const first = "070701" + "00000001" + "000041ED" + "00000000" + "00000000" + "00000002" + "6553F100" +
		"00000000" + "00000000" + "00000000" + "00000000" + "00000000" + "00000004" + "00000000" + "dev\x00"
	if !strings.HasPrefix(buf.String(), first) {
		t.Errorf("archive starts %q, want %q", buf.String()[:len(first)], first)
	}
}

func TestCPIOErrors(t *testing.T) {
	dir := cpioEntry{Name: "d", Mode: modeDir | 0o755}
	tests := []struct {
		name    string
		entries []cpioEntry
		mtime   int64
		want    string
	}{
		{"absolute", []cpioEntry{{Name: "/init", Mode: modeReg}}, 0, "not a clean relative path"},
		{"dotdot", []cpioEntry{{Name: "../x", Mode: modeReg}}, 0, "not a clean relative path"},
		{"unclean", []cpioEntry{dir, {Name: "d//x", Mode: modeReg}}, 0, "not a clean relative path"},
		{"empty", []cpioEntry{{Name: "", Mode: modeReg}}, 0, "not a clean relative path"},
		{"nul", []cpioEntry{{Name: "a\x00b", Mode: modeReg}}, 0, "not a clean relative path"},
		{"trailer", []cpioEntry{{Name: cpioTrailer, Mode: modeReg}}, 0, "reserved"},
		{"duplicate", []cpioEntry{dir, dir}, 0, "appears twice"},
		{"no parent", []cpioEntry{{Name: "lib/x", Mode: modeReg}}, 0, "without its directory"},
		{"parent is a file", []cpioEntry{{Name: "lib", Mode: modeReg}, {Name: "lib/x", Mode: modeReg}}, 0, "without its directory"},
		{"negative mtime", []cpioEntry{dir}, -1, "32 bits"},
		{"mtime too big", []cpioEntry{dir}, 1 << 32, "32 bits"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := writeCPIO(&bytes.Buffer{}, tt.entries, tt.mtime)
			if !errors.Is(err, errCPIO) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want errCPIO with %q", err, tt.want)
			}
		})
	}
}

// FuzzCPIO writes archives of arbitrary names and contents: the writer
// either refuses them or writes what an independent reader reads back.
func FuzzCPIO(f *testing.F) {
	f.Add("init", []byte("\x7fELF"), "lib/modules/virtio.ko", []byte("module"), uint32(0))
	f.Add("a", []byte{}, "a/b", []byte("xyz12"), uint32(0xffffffff))
	f.Add("x/../y", []byte("1"), "TRAILER!!!", []byte("2"), uint32(1))
	f.Fuzz(func(t *testing.T, dirName string, fileData []byte, fileName string, data []byte, mtime uint32) {
		entries := []cpioEntry{
			{Name: dirName, Mode: modeDir | 0o755},
			{Name: dirName + "/f", Mode: modeReg | 0o644, Data: fileData},
			{Name: fileName, Mode: modeReg | 0o600, Data: data},
		}
		var buf bytes.Buffer
		if err := writeCPIO(&buf, entries, int64(mtime)); err != nil {
			if !errors.Is(err, errCPIO) {
				t.Fatalf("error %v does not wrap errCPIO", err)
			}
			return
		}
		got, err := readCPIO(buf.Bytes())
		if err != nil {
			t.Fatalf("reading back: %v", err)
		}
		if len(got) != len(entries) {
			t.Fatalf("%d members, want %d", len(got), len(entries))
		}
		byName := map[string]cpioMember{}
		for i, m := range got {
			if i > 0 && got[i-1].Name >= m.Name {
				t.Fatalf("members out of order: %q then %q", got[i-1].Name, m.Name)
			}
			if m.Ino != uint32(i+1) || m.Mtime != mtime {
				t.Fatalf("member %q: ino %d mtime %d", m.Name, m.Ino, m.Mtime)
			}
			byName[m.Name] = m
		}
		for _, e := range entries {
			m, ok := byName[e.Name]
			if !ok || m.Mode != e.Mode || !bytes.Equal(m.Data, e.Data) {
				t.Fatalf("member %q read back as %+v", e.Name, m)
			}
		}
	})
}
