package chain

import (
	"bufio"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/ccos-project/ccos/rtfs"
)

// The crash test re-executes the test binary as a writer: with these
// variables set, TestMain runs crashWriter instead of the tests.
const (
	envWriterPath = "CCOS_CHAIN_CRASH_WRITER"
	envWriterKey  = "CCOS_CHAIN_CRASH_KEY"
)

func TestMain(m *testing.M) {
	if path := os.Getenv(envWriterPath); path != "" {
		crashWriter(path, os.Getenv(envWriterKey))
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// crashWriter appends events from 8 goroutines until it is killed. After
// each Append returns it writes "seq step\n" to standard output, one
// write(2) per line, so that every complete line is an acknowledged,
// durable event.
func crashWriter(path, skey string) {
	fail := func(err error) {
		fmt.Fprintln(os.Stderr, "writer:", err)
		os.Exit(3)
	}
	signer, err := ParseSigner(skey)
	if err != nil {
		fail(err)
	}
	store, err := OpenFile(path, FileOptions{writeChunk: 16})
	if err != nil {
		fail(err)
	}
	rec, err := NewRecorder(store, signer, Options{CheckpointEvery: 16})
	if err != nil {
		fail(err)
	}
	var mu sync.Mutex
	pid := os.Getpid()
	var wg sync.WaitGroup
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				step := fmt.Sprintf("p%d-w%d-%d", pid, w, i)
				seq, err := rec.Append(context.Background(), Event{Type: TypeStepFinished, Step: step, Payload: rtfs.Int{V: int64(i)}})
				if err != nil {
					fail(err)
				}
				mu.Lock()
				_, err = os.Stdout.WriteString(strconv.FormatUint(seq, 10) + " " + step + "\n")
				mu.Unlock()
				if err != nil {
					fail(err)
				}
			}
		}()
	}
	wg.Wait()
}

// TestCrashRecovery kills a writer with SIGKILL at random points, 100
// times: after every kill the file reopens (a torn tail is truncated), it
// verifies, and every event whose Append had returned is in it.
func TestCrashRecovery(t *testing.T) {
	if testing.Short() {
		t.Skip("crash test in -short mode")
	}
	skey, vkey, err := GenerateKey("ccos.test/crash")
	if err != nil {
		t.Fatal(err)
	}
	verifier, _ := ParseVerifier(vkey)
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 7))
	const runs, runsPerFile = 100, 20
	var acked, truncations int
	for run := 0; run < runs; run++ {
		path := filepath.Join(dir, fmt.Sprintf("crash-%d.chain", run/runsPerFile))
		// Kill after a random number of acknowledgements (0: right after
		// start, often during open and recovery), or a random delay.
		killAfter := rng.IntN(120)
		delay := time.Duration(rng.IntN(40)) * time.Millisecond
		acks := runWriterAndKill(t, exe, path, skey, killAfter, delay)
		acked += len(acks)

		s, err := OpenFile(path, FileOptions{})
		if err != nil {
			t.Fatalf("run %d: reopen: %v", run, err)
		}
		if s.Recovered().DroppedBytes > 0 {
			truncations++
		}
		s.Close()
		rs, err := OpenFile(path, FileOptions{ReadOnly: true})
		if err != nil {
			t.Fatal(err)
		}
		events, _, rep, err := Load(rs, verifier)
		rs.Close()
		if err != nil {
			t.Fatalf("run %d: verify after crash: %v", run, err)
		}
		if rep.Checkpoints == 0 && rep.Events > 16 {
			t.Fatalf("run %d: no checkpoint in %d events", run, rep.Events)
		}
		for seq, step := range acks {
			if seq >= uint64(len(events)) {
				t.Fatalf("run %d: acknowledged seq %d missing (%d events)", run, seq, len(events))
			}
			if events[seq].Step != step {
				t.Fatalf("run %d: seq %d holds step %q, acknowledged %q", run, seq, events[seq].Step, step)
			}
		}
	}
	t.Logf("%d runs, %d acknowledged appends checked, %d torn tails truncated", runs, acked, truncations)
}

// runWriterAndKill starts a writer on path, kills it with SIGKILL after it
// acknowledged killAfter events (or after delay once it acknowledged at
// least one, or after a second), and returns the acknowledged seqs with
// their step ids.
func runWriterAndKill(t *testing.T, exe, path, skey string, killAfter int, delay time.Duration) map[uint64]string {
	t.Helper()
	cmd := exec.Command(exe, "-test.run=^$")
	cmd.Env = append(os.Environ(), envWriterPath+"="+path, envWriterKey+"="+skey)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pid := cmd.Process.Pid
	lines := make(chan string, 1024)
	go func() {
		r := bufio.NewReader(out)
		for {
			line, err := r.ReadString('\n')
			if err != nil {
				// A line cut short by the kill was not acknowledged.
				close(lines)
				return
			}
			lines <- line
		}
	}()
	acks := map[uint64]string{}
	add := func(line string) {
		seqs, step, ok := strings.Cut(strings.TrimSpace(line), " ")
		seq, err := strconv.ParseUint(seqs, 10, 64)
		if !ok || err != nil {
			t.Fatalf("writer printed %q", line)
		}
		acks[seq] = step
	}
	deadline := time.After(time.Second)
	var timer <-chan time.Time
	if killAfter == 0 {
		timer = time.After(delay)
	}
wait:
	for len(acks) < killAfter || killAfter == 0 {
		select {
		case line, ok := <-lines:
			if !ok {
				break wait
			}
			add(line)
			if timer == nil {
				timer = time.After(delay)
			}
		case <-timer:
			break wait
		case <-deadline:
			break wait
		}
	}
	// Only ever the process this test started, by its pid.
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatalf("kill %d: %v", pid, err)
	}
	for line := range lines {
		add(line)
	}
	err = cmd.Wait()
	if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); !ok || !ws.Signaled() {
		t.Fatalf("writer did not die by SIGKILL: %v; stderr: %s", err, stderr.String())
	}
	return acks
}
