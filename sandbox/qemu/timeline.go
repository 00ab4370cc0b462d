package qemu

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"regexp"
	"strconv"
	"time"

	"github.com/ccos-project/ccos/sandbox"
)

// StepTime is how long one named step of a start took.
type StepTime struct {
	Name string        `json:"name"`
	Took time.Duration `json:"took_ns"`
}

// GuestMark is one milestone the guest's /init logged on its console
// ("ccos-init: WHAT at UPTIMEs"), at the guest's own uptime: the time since
// its kernel started.
type GuestMark struct {
	What   string        `json:"what"`
	Uptime time.Duration `json:"uptime_ns"`
}

// Timeline is what one start of a QEMU sandbox took, from the host's and
// the guest's side.
type Timeline struct {
	// Clone is set when the sandbox was cloned from a template.
	Clone bool `json:"clone"`
	// Steps are the host's start steps, in order; their sum is the time
	// from Start to the guest's hello.
	Steps []StepTime `json:"steps"`
	// Connected and Ready are the times from QEMU's start to its control
	// connection and to the guest's first bytes.
	Connected time.Duration `json:"connected_ns"`
	Ready     time.Duration `json:"ready_ns"`
	// ReadyCPU is the CPU time QEMU had used by then (user and system,
	// all its threads): unlike the times above, it hardly depends on what
	// else the host runs.
	ReadyCPU time.Duration `json:"ready_cpu_ns"`
	// TranslatedBlocks is how many blocks of guest code TCG has translated
	// so far (QEMU's "info jit" TB count; 0 under KVM or when unknown): a
	// clone starts with an empty translation cache, so this is the work
	// that grows its start.
	TranslatedBlocks int `json:"translated_blocks"`
	// Guest are the guest's own milestones, from its console log (empty
	// when the console is off); for a clone they are the template's boot
	// followed by the clone's wake-up.
	Guest []GuestMark `json:"guest"`
}

// TimelineOf returns the timeline of a sandbox this provider started, or
// false for another sandbox. Call it while the sandbox runs (the console
// log is read from the VM's directory).
func TimelineOf(sb sandbox.Sandbox) (Timeline, bool) {
	b, ok := sb.(*box)
	if !ok {
		return Timeline{}, false
	}
	tl := Timeline{Clone: b.role == roleClone, Steps: b.steps, ReadyCPU: b.readyCPU}
	if !b.connected.IsZero() {
		tl.Connected = b.connected.Sub(b.started)
	}
	if !b.ready.IsZero() {
		tl.Ready = b.ready.Sub(b.started)
	}
	if log, err := os.ReadFile(b.serialLog); err == nil {
		tl.Guest = ParseGuestMarks(log)
	}
	if m, err := dialMonitor(b.qmpPath, 0, 2*time.Second); err == nil {
		if jit, err := m.hmp("info jit"); err == nil {
			tl.TranslatedBlocks = parseTBCount(jit)
		}
		m.close()
	}
	return tl, true
}

var tbCount = regexp.MustCompile(`(?m)^TB count\s+([0-9]+)`)

// parseTBCount reads the TB count of QEMU's "info jit"; 0 when absent.
func parseTBCount(jit string) int {
	m := tbCount.FindStringSubmatch(jit)
	if m == nil {
		return 0
	}
	n, _ := strconv.Atoi(m[1])
	return n
}

var markLine = regexp.MustCompile(`ccos-init: (.+) at ([0-9]+(?:\.[0-9]+)?)s\s*$`)

// ParseGuestMarks reads the /init milestones of a guest console log; other
// lines are skipped.
func ParseGuestMarks(log []byte) []GuestMark {
	var out []GuestMark
	sc := bufio.NewScanner(bytes.NewReader(log))
	sc.Buffer(make([]byte, 4096), 1<<20)
	for sc.Scan() {
		m := markLine.FindSubmatch(bytes.TrimRight(sc.Bytes(), "\r"))
		if m == nil {
			continue
		}
		sec, err := strconv.ParseFloat(string(m[2]), 64)
		if err != nil || sec < 0 || sec > 1e6 {
			continue
		}
		out = append(out, GuestMark{What: string(m[1]), Uptime: time.Duration(sec * float64(time.Second))})
	}
	return out
}

// String prints the timeline on a few lines.
func (tl Timeline) String() string {
	var b bytes.Buffer
	for _, s := range tl.Steps {
		fmt.Fprintf(&b, "host %-24s %8.1f ms\n", s.Name, ms(s.Took))
	}
	fmt.Fprintf(&b, "host QEMU start to control connection %.1f ms, to the guest's first bytes %.1f ms (QEMU CPU time %.1f ms; %d blocks translated)\n", ms(tl.Connected), ms(tl.Ready), ms(tl.ReadyCPU), tl.TranslatedBlocks)
	for _, g := range tl.Guest {
		fmt.Fprintf(&b, "guest %-40s at %8.1f ms uptime\n", g.What, ms(g.Uptime))
	}
	return b.String()
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// processCPU returns the CPU time a process has used (user and system, all
// its threads), from /proc/PID/stat; 0 when it cannot be read.
func processCPU(pid int) time.Duration {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	// The command name (field 2) may hold spaces: fields count from its ")".
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0
	}
	f := bytes.Fields(b[i+1:])
	if len(f) < 13 {
		return 0
	}
	utime, err1 := strconv.ParseInt(string(f[11]), 10, 64)
	stime, err2 := strconv.ParseInt(string(f[12]), 10, 64)
	if err1 != nil || err2 != nil {
		return 0
	}
	// USER_HZ is 100 on Linux.
	return time.Duration(utime+stime) * 10 * time.Millisecond
}

// Memory is a process's memory from /proc/PID/smaps_rollup, in bytes.
type Memory struct {
	// RSS is resident memory; PSS divides each shared page among the
	// processes that map it; Private is resident memory no other process
	// maps (clean and dirty).
	RSS, PSS, Private int64
}

// ProcessMemory reads the memory of process pid.
func ProcessMemory(pid int) (Memory, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/smaps_rollup", pid))
	if err != nil {
		return Memory{}, err
	}
	return ParseSmapsRollup(b)
}

// ParseSmapsRollup reads the Rss, Pss and Private_* lines of a
// smaps_rollup file ("Pss:   1234 kB").
func ParseSmapsRollup(b []byte) (Memory, error) {
	var m Memory
	seen := 0
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		k, v, ok := bytes.Cut(sc.Bytes(), []byte(":"))
		if !ok {
			continue
		}
		f := bytes.Fields(v)
		if len(f) != 2 || string(f[1]) != "kB" {
			continue
		}
		kb, err := strconv.ParseInt(string(f[0]), 10, 64)
		if err != nil || kb < 0 || kb > 1<<40 {
			return Memory{}, fmt.Errorf("smaps_rollup: bad %s line", k)
		}
		switch string(k) {
		case "Rss":
			m.RSS, seen = kb<<10, seen|1
		case "Pss":
			m.PSS, seen = kb<<10, seen|2
		case "Private_Clean", "Private_Dirty":
			m.Private += kb << 10
			seen |= 4
		}
	}
	if seen != 7 {
		return Memory{}, fmt.Errorf("smaps_rollup: no Rss, Pss and Private lines")
	}
	return m, nil
}
