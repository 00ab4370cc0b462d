package main

import (
	"bufio"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// startWitness runs `ccos witness` on a free loopback port and returns its
// URL and the witness key it prints. The process is ended when the test
// ends.
func startWitness(t *testing.T, keyFile string, logKeys ...string) (url, wkey string) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	args := []string{"witness", "--key", keyFile, "--state", filepath.Join(t.TempDir(), "w.db"), "--listen", addr}
	for _, k := range logKeys {
		args = append(args, "--log-key", k)
	}
	cmd := exec.Command(ccosBin, args...)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	line, err := bufio.NewReader(out).ReadString('\n')
	wkey, ok := strings.CutPrefix(strings.TrimSpace(line), "witness key: ")
	if err != nil || !ok {
		t.Fatalf("ccos witness printed %q: %v", line, err)
	}
	for i := 0; i < 100; i++ {
		if c, err := net.Dial("tcp", addr); err == nil {
			c.Close()
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	return "http://" + addr, wkey
}

func TestWitnessedCheckpoints(t *testing.T) {
	path, key := makeChain(t, "c.chain", 6)
	dir := t.TempDir()
	wkeyFile := filepath.Join(dir, "witness.key")
	if _, e, code := runCCOS(t, "", "chain", "keygen", "ccos.test/witness", "--out", wkeyFile); code != 0 {
		t.Fatal(e)
	}
	if _, e, code := runCCOS(t, "", "chain", "checkpoint", path, "--key", key); code != 0 {
		t.Fatal(e)
	}
	url, wkey := startWitness(t, wkeyFile, key+".pub")

	// No cosigned checkpoint yet: verify --witness fails.
	if _, e, code := runCCOS(t, "", "chain", "verify", path, "--witness", wkey); code != 1 || !strings.Contains(e, "no cosigned checkpoint") {
		t.Errorf("before cosigning: exit %d, %s", code, e)
	}
	out, e, code := runCCOS(t, "", "chain", "checkpoint", path, "--key", key, "--witness", url)
	if code != 0 || !strings.Contains(out, "\n— ccos.test/witness ") {
		t.Fatalf("checkpoint --witness: exit %d, %s %s", code, out, e)
	}
	if out, e, code := runCCOS(t, "", "chain", "verify", path, "--witness", wkey); code != 0 {
		t.Fatalf("verify --witness: exit %d, %s %s", code, out, e)
	}
	// The witness's plain verifier key works too; another witness's key
	// has no cosignature.
	if _, e, code := runCCOS(t, "", "chain", "verify", path, "--witness", wkeyFile+".pub"); code != 0 {
		t.Errorf("plain witness key: %s", e)
	}
	other := filepath.Join(dir, "other.key")
	runCCOS(t, "", "chain", "keygen", "ccos.test/other-witness", "--out", other)
	if _, e, code := runCCOS(t, "", "chain", "verify", path, "--witness", other+".pub"); code != 1 || !strings.Contains(e, "no valid cosignature of witness ccos.test/other-witness") {
		t.Errorf("other witness: exit %d, %s", code, e)
	}
	// The chain grows; the witness cosigns the extension.
	if _, e, code := runCCOS(t, "", "chain", "checkpoint", path, "--key", key, "--witness", url); code != 0 {
		t.Fatalf("second checkpoint: %s", e)
	}

	// A fork: the same log (same key) with another history of the same
	// length is refused by the witness.
	forked := filepath.Join(dir, "forked.chain")
	data, _ := os.ReadFile(path)
	os.WriteFile(forked, data[:len(data)/3], 0o644) // a torn tail is dropped on open
	for i := 0; i < 10; i++ {
		if _, e, code := runCCOS(t, "", "chain", "checkpoint", forked, "--key", key); code != 0 {
			t.Fatal(e)
		}
	}
	_, e, code = runCCOS(t, "", "chain", "checkpoint", forked, "--key", key, "--witness", url)
	if code != 1 || !(strings.Contains(e, "409") || strings.Contains(e, "422")) {
		t.Errorf("forked chain: exit %d, %s", code, e)
	}
}
