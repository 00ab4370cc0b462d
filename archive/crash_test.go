package archive

import (
	"bufio"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// The crash tests re-execute this test binary as a writer process: with
// writerEnv set, TestMain runs writerMain instead of the tests.
const (
	writerEnv     = "CCOS_ARCHIVE_TEST_WRITER"      // archive directory
	writerSeedEnv = "CCOS_ARCHIVE_TEST_WRITER_SEED" // seeds the objects and operations
	writerOpsEnv  = "CCOS_ARCHIVE_TEST_WRITER_OPS"  // number of operations, then exit
	writerStepEnv = "CCOS_ARCHIVE_TEST_CRASH_STEP"  // "step:n": SIGKILL itself at the n-th step
)

func TestMain(m *testing.M) {
	if dir := os.Getenv(writerEnv); dir != "" {
		if err := writerMain(dir); err != nil {
			fmt.Fprintln(os.Stderr, "writer:", err)
			os.Exit(3)
		}
		os.Exit(0)
	}
	code := m.Run()
	if benchDir != "" {
		os.RemoveAll(benchDir)
	}
	os.Exit(code)
}

// writerMain stores objects (and deletes some it stored) and acknowledges
// each operation on stdout once it has returned: "put HASH" or "del HASH";
// "try-del HASH" comes before a Delete starts.
func writerMain(dir string) error {
	seed, _ := strconv.ParseUint(os.Getenv(writerSeedEnv), 10, 64)
	ops, _ := strconv.Atoi(os.Getenv(writerOpsEnv))
	if s := os.Getenv(writerStepEnv); s != "" {
		name, nText, _ := strings.Cut(s, ":")
		n, _ := strconv.Atoi(nText)
		crashHook = func(step string) {
			if step == name {
				if n--; n <= 0 {
					syscall.Kill(os.Getpid(), syscall.SIGKILL)
				}
			}
		}
	}
	a, err := Open(dir)
	if err != nil {
		return err
	}
	rng := rand.New(rand.NewPCG(seed, 7))
	out := bufio.NewWriter(os.Stdout)
	var mine []string
	for i := 0; i < ops; i++ {
		if len(mine) > 0 && rng.IntN(5) == 0 {
			k := rng.IntN(len(mine))
			h := mine[k]
			mine = append(mine[:k], mine[k+1:]...)
			// Announce the delete: if the writer dies before "del", the
			// object may or may not be gone.
			fmt.Fprintln(out, "try-del", h)
			if err := out.Flush(); err != nil {
				return err
			}
			if err := a.Delete(h); err != nil {
				return err
			}
			fmt.Fprintln(out, "del", h)
		} else {
			obj := fmt.Sprintf(`{"kind":"crash-test","seed":%d,"i":%d,"pad":%q}`, seed, i, strings.Repeat("x", rng.IntN(8192)))
			h, err := a.Put([]byte(obj))
			if err != nil {
				return err
			}
			mine = append(mine, h)
			fmt.Fprintln(out, "put", h)
		}
		if err := out.Flush(); err != nil {
			return err
		}
	}
	return a.Close()
}

// startWriter starts a writer process and returns it with a channel that
// yields its acknowledgements and is closed when its stdout closes.
func startWriter(t *testing.T, dir string, seed uint64, ops int, crashStep string) (*exec.Cmd, <-chan string) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), writerEnv+"="+dir, writerSeedEnv+"="+strconv.FormatUint(seed, 10),
		writerOpsEnv+"="+strconv.Itoa(ops), writerStepEnv+"="+crashStep)
	cmd.Stderr = os.Stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	acks := make(chan string, 1024)
	go func() {
		defer close(acks)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			acks <- sc.Text()
		}
	}()
	return cmd, acks
}

// crashSteps are the points of Put and Delete where a writer kills itself.
var crashSteps = []string{
	"object-temp-written", "object-temp-synced", "object-renamed", "object-dir-synced",
	"index-temp-written", "index-temp-synced", "index-renamed", "index-dir-synced",
	"delete-index-written",
}

// TestCrashKilledWriters runs 100 writers into one archive, each killed
// with SIGKILL: half at a random time, half by itself at a named step of a
// write. After each, Open (which recovers) and Verify must find a sound
// archive holding every object whose Put was acknowledged and none whose
// Delete was.
func TestCrashKilledWriters(t *testing.T) {
	runs := 100
	if testing.Short() {
		runs = 20
	}
	dir := filepath.Join(t.TempDir(), "arc")
	present := map[string]bool{} // acknowledged state of every hash
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 1))
	killedMidway := 0
	for run := 0; run < runs; run++ {
		step := ""
		if run%2 == 1 {
			step = fmt.Sprintf("%s:%d", crashSteps[(run/2)%len(crashSteps)], 1+rng.IntN(6))
		}
		cmd, acks := startWriter(t, dir, uint64(run), 60, step)
		var timer *time.Timer
		if step == "" {
			timer = time.AfterFunc(time.Duration(rng.IntN(60_000))*time.Microsecond, func() {
				cmd.Process.Signal(syscall.SIGKILL) // our own child, by PID
			})
		} else {
			// A writer that never reaches its step is killed anyway.
			timer = time.AfterFunc(5*time.Second, func() { cmd.Process.Signal(syscall.SIGKILL) })
		}
		for ack := range acks {
			record(present, ack)
		}
		err := cmd.Wait()
		timer.Stop()
		if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); ok && ws.Signaled() && ws.Signal() == syscall.SIGKILL {
			killedMidway++
		} else if err != nil {
			t.Fatalf("run %d: writer failed: %v", run, err)
		}
		checkCrashState(t, run, dir, present)
	}
	t.Logf("%d runs, %d writers killed before finishing, %d objects acknowledged", runs, killedMidway, len(present))
	if killedMidway < runs/2 {
		t.Errorf("only %d of %d writers were killed mid-way", killedMidway, runs)
	}
}

// record applies one acknowledgement to the expected state: an object whose
// Delete began but was not acknowledged may be present or not, so it is no
// longer checked.
func record(present map[string]bool, ack string) {
	op, h, _ := strings.Cut(ack, " ")
	switch op {
	case "put":
		present[h] = true
	case "del":
		present[h] = false
	case "try-del":
		delete(present, h)
	}
}

func checkCrashState(t *testing.T, run int, dir string, present map[string]bool) {
	t.Helper()
	a, err := Open(dir)
	if err != nil {
		t.Fatalf("run %d: Open after the crash: %v", run, err)
	}
	defer a.Close()
	ms, err := a.Verify()
	if err != nil || len(ms) != 0 {
		t.Fatalf("run %d: Verify after the crash: %v %v", run, ms, err)
	}
	for h, want := range present {
		has, err := a.Has(h)
		if err != nil {
			t.Fatal(err)
		}
		if has != want {
			t.Fatalf("run %d: object %s present=%v, acknowledged state %v", run, h, has, want)
		}
		if want {
			if _, err := a.Get(h); err != nil {
				t.Fatalf("run %d: Get(%s): %v", run, h, err)
			}
		}
	}
}

// TestConcurrentWriterProcesses runs two writer processes on one archive at
// once: the lock file must keep either from losing the other's entries.
func TestConcurrentWriterProcesses(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "arc")
	const ops = 60
	type writer struct {
		cmd  *exec.Cmd
		acks <-chan string
	}
	var ws []writer
	for seed := uint64(1000); seed < 1002; seed++ {
		cmd, acks := startWriter(t, dir, seed, ops, "")
		ws = append(ws, writer{cmd, acks})
	}
	present := map[string]bool{}
	for _, w := range ws {
		for ack := range w.acks {
			record(present, ack)
		}
		if err := w.cmd.Wait(); err != nil {
			t.Fatalf("writer: %v", err)
		}
	}
	if len(present) < ops {
		t.Fatalf("only %d acknowledgements", len(present))
	}
	checkCrashState(t, 0, dir, present)
	a, _ := Open(dir)
	defer a.Close()
	list, _ := a.List()
	live := 0
	for _, p := range present {
		if p {
			live++
		}
	}
	if len(list) != live {
		t.Errorf("index lists %d objects, %d acknowledged as present", len(list), live)
	}
}
