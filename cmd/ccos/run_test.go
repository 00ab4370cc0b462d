package main

import (
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"strings"
	"testing"
)

// The in-process provider of the tests gives no isolation: the CLI cannot
// reach it at all (--provider mock is an unknown provider), even with
// --allow-weaker.
func TestRunMockUnreachable(t *testing.T) {
	_, errOut, code := runCCOS(t, "", "run", "--provider", "mock", "--allow-weaker", "../../examples/plans/hello.rtfs")
	if code != 1 || !strings.Contains(errOut, `unknown sandbox provider "mock"`) {
		t.Fatalf("exit %d, stderr %q", code, errOut)
	}
}

func TestRunJSON(t *testing.T) {
	out, errOut, code := runCCOS(t, "", "run", "--provider", "process", "../../examples/plans/hello.rtfs")
	if code != 0 || out != "greeting the world from inside the sandbox\n\"Hello, world\"\n" {
		t.Fatalf("exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	out, _, code = runCCOS(t, "", "run", "--provider", "process", "--json", "../../examples/plans/multi-step.rtfs")
	var doc struct {
		Plan, Provider, Value string
		OK                    bool
		Steps                 []struct{ Name string }
	}
	if code != 0 || json.Unmarshal([]byte(out), &doc) != nil {
		t.Fatalf("exit %d, stdout %s", code, out)
	}
	if doc.Plan != "multi-step" || !doc.OK || len(doc.Steps) != 4 || !strings.HasPrefix(doc.Value, "{:total 55 :sum-of-squares 385") {
		t.Errorf("unexpected document: %s", out)
	}
}

func TestRunRejections(t *testing.T) {
	bad := writeTemp(t, "bad.rtfs", `(do (step "a" 1) (step "a" 2))`)
	fails := writeTemp(t, "fails.rtfs", `(step "s" (/ 1 0))`)
	badCfg := writeTemp(t, "cfg.rtfs", `(agent.config :version "0.1" :agent-id "a.b" :orchestrator {:isolation {:mode :vm}})`)
	vmCfg := writeTemp(t, "vm.rtfs", `(assoc-in (profile:microvm-min "agent.vm") [:microvm :attestation :expect_rootfs_hash] "sha256:32c1e93f492092af1ca282d02427ba535f453598fd276c28b842d7325e03615a")`)
	mock := []string{"--provider", "process"}
	tests := []struct {
		name string
		args []string
		code int
		want string
	}{
		{"duplicate step", append(append([]string{"run"}, mock...), bad), 1, `step "a" is written twice`},
		{"plan error", append(append([]string{"run"}, mock...), fails), 1, "DivisionByZero"},
		{"invalid config", []string{"run", "--config", badCfg, bad}, 1, "INVALID_VALUE: expected one of :wasm, :container, :microvm, found keyword :vm"},
		{"weaker provider refused", []string{"run", "--config", vmCfg, "--provider", "process", fails}, 1, "allow weaker isolation explicitly (--allow-weaker)"},
		{"unknown provider", []string{"run", "--provider", "nope", fails}, 1, `unknown sandbox provider "nope"`},
		{"attestation mismatch refuses to boot", []string{"run", "--config", vmCfg, fails}, 1, "but the config expects sha256:32c1e93f492092af1ca282d02427ba535f453598fd276c28b842d7325e03615a; refusing to boot"},
		{"missing plan", []string{"run", "/nonexistent.rtfs"}, 1, "cannot read /nonexistent.rtfs"},
		{"no plan argument", []string{"run"}, 2, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, errOut, code := runCCOS(t, "", tc.args...)
			if code != tc.code || !strings.Contains(errOut, tc.want) {
				t.Errorf("exit %d (want %d), stderr %q (want %q)", code, tc.code, errOut, tc.want)
			}
		})
	}
}

func TestDoctor(t *testing.T) {
	out, _, code := runCCOS(t, "", "doctor", "--json")
	var doc struct {
		Providers []struct {
			Provider  string
			Available bool
			Reason    string
		}
	}
	if code != 0 || json.Unmarshal([]byte(out), &doc) != nil || len(doc.Providers) == 0 {
		t.Fatalf("exit %d, %s", code, out)
	}
	names := map[string]bool{}
	for _, p := range doc.Providers {
		names[p.Provider] = true
		if !p.Available && p.Reason == "" {
			t.Errorf("provider %s is unavailable and does not say why", p.Provider)
		}
	}
	if names["mock"] {
		t.Error("doctor lists the tests' in-process provider")
	}
	for _, want := range []string{"process", "wasm", "gvisor", "qemu", "firecracker"} {
		if !names[want] {
			t.Errorf("doctor does not list %s", want)
		}
	}
}

// The examples run in the process sandbox (namespaces, seccomp, cgroups),
// and a runaway plan ends with a clear limit error while the next run works.
func TestRunProcess(t *testing.T) {
	out, errOut, code := runCCOS(t, "", "run", "--provider", "process", "../../examples/plans/hello.rtfs")
	if code != 0 || out != "greeting the world from inside the sandbox\n\"Hello, world\"\n" {
		t.Fatalf("hello: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	out, errOut, code = runCCOS(t, "", "run", "--provider", "process", "--json", "../../examples/plans/multi-step.rtfs")
	if code != 0 || !strings.Contains(out, `"provider": "process"`) || !strings.Contains(out, `{:total 55 :sum-of-squares 385`) {
		t.Fatalf("multi-step: exit %d, stdout %s, stderr %s", code, out, errOut)
	}
	loop := writeTemp(t, "loop.rtfs", `(step "spin" (loop [i 0] (recur (inc i))))`)
	_, errOut, code = runCCOS(t, "", "run", "--provider", "process", loop)
	if code != 1 || !strings.Contains(errOut, "LimitExceeded") {
		t.Errorf("runaway plan: exit %d, stderr %q", code, errOut)
	}
	big := writeTemp(t, "big.rtfs", `(step "grow" (count (reduce (fn [acc _] (concat acc acc)) [1] (range 40))))`)
	_, errOut, code = runCCOS(t, "", "run", "--provider", "process", big)
	if code != 1 || !strings.Contains(errOut, "LimitExceeded") {
		t.Errorf("huge allocation: exit %d, stderr %q", code, errOut)
	}
	out, _, code = runCCOS(t, "", "run", "--provider", "process", "../../examples/plans/hello.rtfs")
	if code != 0 || !strings.HasSuffix(out, "\"Hello, world\"\n") {
		t.Errorf("run after the runaway ones: exit %d, %q", code, out)
	}
}

func TestBenchSandbox(t *testing.T) {
	out, errOut, code := runCCOS(t, "", "bench", "sandbox", "--n", "2", "--json")
	var doc struct {
		Results []struct {
			Provider, Mode string
			P50            float64 `json:"p50_ms"`
		}
	}
	if code != 0 || json.Unmarshal([]byte(out), &doc) != nil {
		t.Fatalf("exit %d, stdout %s, stderr %s", code, out, errOut)
	}
	modes := map[string]bool{}
	for _, r := range doc.Results {
		if r.P50 <= 0 {
			t.Errorf("%s %s: p50 %v", r.Provider, r.Mode, r.P50)
		}
		modes[r.Provider+"/"+r.Mode] = true
	}
	for _, want := range []string{"process/cold start, step, stop", "process/warm pool dispatch", "bwrap (baseline)/cold start, step, stop"} {
		if !modes[want] {
			t.Errorf("no %s row in %s", want, out)
		}
	}
	if _, _, code := runCCOS(t, "", "bench", "sandbox", "--n", "0"); code != 1 {
		t.Errorf("--n 0: exit %d", code)
	}
}

// The default config (profile:minimal) asks for :wasm isolation: the
// examples run in wazero, and a runaway plan ends with a clear error.
func TestRunWasmDefault(t *testing.T) {
	out, errOut, code := runCCOS(t, "", "run", "../../examples/plans/hello.rtfs")
	if code != 0 || out != "greeting the world from inside the sandbox\n\"Hello, world\"\n" {
		t.Fatalf("hello: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	out, errOut, code = runCCOS(t, "", "run", "--json", "../../examples/plans/multi-step.rtfs")
	if code != 0 || !strings.Contains(out, `"provider": "wasm"`) || !strings.Contains(out, `{:total 55 :sum-of-squares 385`) {
		t.Fatalf("multi-step: exit %d, stdout %s, stderr %s", code, out, errOut)
	}
	loop := writeTemp(t, "loop.rtfs", `(step "spin" (loop [i 0] (recur (inc i))))`)
	if _, errOut, code := runCCOS(t, "", "run", loop); code != 1 || !strings.Contains(errOut, "LimitExceeded") {
		t.Errorf("runaway plan: exit %d, stderr %q", code, errOut)
	}
}

// The workdir capabilities run in each sandbox, confined to its workdir.
func TestRunFilesExample(t *testing.T) {
	want := "[\"draft 1\" [\"notes.txt\"] \"refused: ccos.io.read-file: openat ../../etc/passwd: path escapes from parent\"]\n"
	for _, args := range [][]string{
		{"run", "../../examples/plans/files.rtfs"},
		{"run", "--config", "../../examples/container.rtfs", "../../examples/plans/files.rtfs"},
	} {
		out, errOut, code := runCCOS(t, "", args...)
		if code != 0 || out != want {
			t.Errorf("%v: exit %d, stdout %q, stderr %q", args, code, out, errOut)
		}
	}
}

// Every run is recorded in the causal chain; verify passes on it and
// fails on any altered byte.
func TestRunRecordsChain(t *testing.T) {
	dir := t.TempDir()
	key, chainFile := dir+"/key", dir+"/runs.chain"
	if _, errOut, code := runCCOS(t, "", "chain", "keygen", "ccos-test", "--out", key); code != 0 {
		t.Fatalf("keygen: %s", errOut)
	}
	arc := dir + "/archive"
	for _, p := range []string{"hello.rtfs", "multi-step.rtfs"} {
		if _, errOut, code := runCCOS(t, "", "run", "--provider", "process", "--chain", chainFile, "--chain-key", key,
			"--archive", arc, "../../examples/plans/"+p); code != 0 {
			t.Fatalf("run %s: %s", p, errOut)
		}
	}
	// The archive holds both plans, their intents, the intent graph and
	// both checkpoints, and verifies.
	out, errOut, code := runCCOS(t, "", "archive", "verify", arc)
	if code != 0 || !strings.Contains(out, "objects") {
		t.Errorf("archive verify: exit %d, %s %s", code, out, errOut)
	}
	out, errOut, code = runCCOS(t, "", "chain", "verify", chainFile, "--key", key+".pub")
	if code != 0 || !strings.Contains(out, "2 checkpoints") {
		t.Fatalf("verify: exit %d, %s %s", code, out, errOut)
	}
	data, err := os.ReadFile(chainFile)
	if err != nil {
		t.Fatal(err)
	}
	data[len(data)/2] ^= 0x40
	writeFile(t, chainFile, string(data))
	if _, errOut, code := runCCOS(t, "", "chain", "verify", chainFile, "--key", key+".pub"); code != 1 {
		t.Errorf("verify of a tampered chain: exit %d, %s", code, errOut)
	}
}

// Without QEMU (nor Firecracker) a microVM config does not run in anything
// weaker.
func TestRunNoMicroVMNoFallback(t *testing.T) {
	fails := writeTemp(t, "fails.rtfs", `(step "s" (/ 1 0))`)
	vmCfg := writeTemp(t, "vm.rtfs", `(assoc-in (profile:microvm-min "agent.vm") [:microvm :attestation :expect_rootfs_hash] "sha256:32c1e93f492092af1ca282d02427ba535f453598fd276c28b842d7325e03615a")`)
	cmd := exec.Command(ccosBin, "run", "--config", vmCfg, fails)
	cmd.Env = append(os.Environ(), "PATH=/nonexistent")
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 1 || !strings.Contains(string(out), "does not fall back to weaker isolation") ||
		!strings.Contains(string(out), "qemu-system-x86_64 not found") {
		t.Errorf("%v: %s", err, out)
	}
}

// ccos.system.get-env reads on the host only the variables the config
// names, and within a step only those of its profile.
func TestRunGetEnv(t *testing.T) {
	t.Setenv("CCOS_TEST_LANG", "eo.UTF-8")
	t.Setenv("CCOS_TEST_HIDDEN", "secret")
	cfg := writeTemp(t, "env.rtfs", `(assoc-in (profile:minimal "agent.env") [:capabilities :env] {:enabled true :vars ["CCOS_TEST_LANG" "CCOS_TEST_UNSET"]})`)
	ok := writeTemp(t, "ok.rtfs", `(step "s" [(call :ccos.system.get-env "CCOS_TEST_LANG") (call :ccos.system.get-env "CCOS_TEST_UNSET")])`)
	hidden := writeTemp(t, "hidden.rtfs", `(step "s" [:effects [[:env {:vars ["CCOS_TEST_LANG"]}]]] (call (keyword "ccos.system.get-env") "CCOS_TEST_HIDDEN"))`)
	narrowed := writeTemp(t, "narrow.rtfs", `(step "s" [:effects [[:env {:vars ["CCOS_TEST_LANG"]}]]] (call :ccos.system.get-env "CCOS_TEST_UNSET"))`)
	run := []string{"run", "--provider", "process", "--security-level", "full", "--config", cfg}
	out, errOut, code := runCCOS(t, "", append(run, ok)...)
	if code != 0 || out != "[\"eo.UTF-8\" nil]\n" {
		t.Fatalf("exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	_, errOut, code = runCCOS(t, "", append(run, hidden)...)
	if code != 1 || !strings.Contains(errOut, "CCOS_TEST_HIDDEN is not in the agent config's :capabilities :env :vars") {
		t.Errorf("unnamed variable: exit %d, stderr %q", code, errOut)
	}
	// A literal name outside the step's declared effect is refused at
	// admission; a computed one by the host at run time.
	_, errOut, code = runCCOS(t, "", append(run, narrowed)...)
	if code != 1 || !strings.Contains(errOut, "UNDECLARED_EFFECT") || !strings.Contains(errOut, "CCOS_TEST_UNSET") {
		t.Errorf("literal variable outside the step's effect: exit %d, stderr %q", code, errOut)
	}
	narrowedComputed := writeTemp(t, "narrow2.rtfs", `(step "s" [:effects [[:env {:vars ["CCOS_TEST_LANG"]}]]] (call :ccos.system.get-env (str "CCOS_TEST_" "UNSET")))`)
	_, errOut, code = runCCOS(t, "", append(run, narrowedComputed)...)
	if code != 1 || !strings.Contains(errOut, "not in the step's admitted effect") {
		t.Errorf("computed variable outside the step's effect: exit %d, stderr %q", code, errOut)
	}
	_, errOut, code = runCCOS(t, "", "run", "--provider", "process", "--security-level", "full", ok)
	if code != 1 || !strings.Contains(errOut, "ENV_NOT_CONFIGURED") {
		t.Errorf("no :env in the config: exit %d, stderr %q", code, errOut)
	}
}

// A retried step does not repeat its side effects, in a real sandbox: the
// chain shows one write of the file and one replay of its recorded result.
func TestRunRetryExample(t *testing.T) {
	chainFile := t.TempDir() + "/runs.chain"
	out, errOut, code := runCCOS(t, "", "run", "--chain", chainFile, "../../examples/plans/retry.rtfs")
	if code != 0 || out != "{:attempts 2 :written 4 :files [\"report.txt\"]}\n" {
		t.Fatalf("exit %d, stdout %q, stderr %s", code, out, errOut)
	}
	shown, errOut, code := runCCOS(t, "", "chain", "show", chainFile)
	if code != 0 {
		t.Fatal(errOut)
	}
	writes := strings.Count(shown, "capability.call") - strings.Count(shown, ":ccos.io.list-dir :args")
	if writes != 1 || strings.Count(shown, "{:replayed :ccos.io.write-file") != 1 || !strings.Contains(shown, "{:attempt 2 :cause") {
		t.Errorf("%d write(s) in the chain:\n%s", writes, shown)
	}
}

// A plan's :intent goes into the archive's intent graph, with an edge to
// its parent and the run's outcome as its status.
func TestRunArchivesIntents(t *testing.T) {
	dir := t.TempDir()
	arc := dir + "/archive"
	parent := writeTemp(t, "deploy.rtfs", `(plan "deploy" :intent {:id "deploy" :goal "ship it" :constraints {:max-cost 3} :owner "ops"}
  :body (step "a" (call :ccos.math.add 1 2)))`)
	child := writeTemp(t, "notify.rtfs", `(plan "notify" :intent {:id "notify" :parent "deploy"} :body (step "b" (/ 1 0)))`)
	bad := writeTemp(t, "bad.rtfs", `(plan "bad" :intent {:id 7} :body 1)`)
	if _, errOut, code := runCCOS(t, "", "run", "--archive", arc, parent); code != 0 {
		t.Fatal(errOut)
	}
	if _, _, code := runCCOS(t, "", "run", "--archive", arc, child); code != 1 {
		t.Fatalf("the failing plan exited %d", code)
	}
	if _, errOut, code := runCCOS(t, "", "run", "--archive", arc, bad); code != 1 || !strings.Contains(errOut, ":intent :id must be a string") {
		t.Errorf("bad intent: %d %s", code, errOut)
	}
	if _, errOut, code := runCCOS(t, "", "archive", "backup", arc, "--out", dir+"/bk.json"); code != 0 {
		t.Fatal(errOut)
	}
	var bk struct {
		Intents map[string]struct {
			Goal, Status string
			Constraints  map[string]any
			Metadata     map[string]any
		}
		Edges []struct{ From, To, EdgeType string }
	}
	data, _ := os.ReadFile(dir + "/bk.json")
	if err := json.Unmarshal(data, &bk); err != nil {
		t.Fatal(err)
	}
	d, n := bk.Intents["deploy"], bk.Intents["notify"]
	if d.Goal != "ship it" || d.Status != "completed" || d.Constraints["max-cost"] != 3.0 || d.Metadata["owner"] != "ops" || d.Metadata["plan"] == nil {
		t.Errorf("deploy intent: %+v", d)
	}
	if n.Status != "failed" || len(bk.Edges) != 1 || bk.Edges[0].From != "notify" || bk.Edges[0].To != "deploy" {
		t.Errorf("notify intent %+v, edges %+v", n, bk.Edges)
	}
	if _, ok := bk.Intents["bad"]; ok || len(bk.Intents) != 2 {
		t.Errorf("intents: %v", bk.Intents)
	}
}
