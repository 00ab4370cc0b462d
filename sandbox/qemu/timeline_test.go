package qemu

import (
	"testing"
	"time"
)

func TestParseGuestMarks(t *testing.T) {
	log := []byte("[    0.000000] Linux version\r\nccos-init: init started at 0.91s\r\nnoise\nccos-init: modules loaded at 1.02s\nccos-init: control port /dev/vport0p1 at 1.10s\nccos-init: bad at -1s\nccos-init: exit 0\n")
	got := ParseGuestMarks(log)
	want := []GuestMark{{"init started", 910 * time.Millisecond}, {"modules loaded", 1020 * time.Millisecond}, {"control port /dev/vport0p1", 1100 * time.Millisecond}}
	if len(got) != len(want) {
		t.Fatalf("got %v", got)
	}
	for i := range want {
		if got[i].What != want[i].What || (got[i].Uptime-want[i].Uptime).Abs() > time.Millisecond {
			t.Errorf("mark %d: %v, want %v", i, got[i], want[i])
		}
	}
}

func FuzzParseGuestMarks(f *testing.F) {
	f.Add([]byte("ccos-init: ready at 1.5s\n"))
	f.Add([]byte("ccos-init: x at 99999999999999999999s\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		for _, m := range ParseGuestMarks(b) {
			if m.Uptime < 0 || m.What == "" {
				t.Fatalf("bad mark %+v", m)
			}
		}
	})
}

func TestParseSmapsRollup(t *testing.T) {
	in := []byte("55d0c0a00000-7ffd1b5f3000 ---p 00000000 00:00 0    [rollup]\nRss:               65680 kB\nPss:               39437 kB\nPss_Anon:          26000 kB\nShared_Clean:      22164 kB\nPrivate_Clean:        84 kB\nPrivate_Dirty:     26576 kB\n")
	m, err := ParseSmapsRollup(in)
	if err != nil {
		t.Fatal(err)
	}
	if m.RSS != 65680<<10 || m.PSS != 39437<<10 || m.Private != (84+26576)<<10 {
		t.Fatalf("%+v", m)
	}
	if _, err := ParseSmapsRollup([]byte("Rss: 1 kB\n")); err == nil {
		t.Error("a rollup without Pss was accepted")
	}
}

func FuzzParseSmapsRollup(f *testing.F) {
	f.Add([]byte("Rss: 10 kB\nPss: 5 kB\nPrivate_Dirty: 3 kB\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		if m, err := ParseSmapsRollup(b); err == nil && (m.RSS < 0 || m.PSS < 0 || m.Private < 0) {
			t.Fatalf("negative memory %+v", m)
		}
	})
}

func TestParseTBCount(t *testing.T) {
	jit := "Translation buffer state:\ngen code size       6089747/1073736704\nTB count            10750\nTB avg target size  17 max=465 bytes\n"
	if n := parseTBCount(jit); n != 10750 {
		t.Errorf("TB count %d", n)
	}
	if n := parseTBCount("nothing"); n != 0 {
		t.Errorf("TB count %d", n)
	}
}
