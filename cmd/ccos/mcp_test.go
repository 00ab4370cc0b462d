package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// mcpInspectorVersion is the MCP Inspector scripts/test installs.
const mcpInspectorVersion = "0.15.0"

// mcpInspector returns the directory the MCP Inspector is installed in, or
// skips (fails under CI) saying how to get it.
func mcpInspector(t *testing.T) string {
	t.Helper()
	missing := func(format string, args ...any) {
		t.Helper()
		if os.Getenv("CI") != "" {
			t.Fatalf(format, args...)
		}
		t.Skipf(format, args...)
	}
	for _, tool := range []string{"node", "npx"} {
		if _, err := exec.LookPath(tool); err != nil {
			missing("%s is not installed: the end-to-end MCP test needs Node.js 20 or newer with npm (https://nodejs.org, or the distribution's nodejs package)", tool)
		}
	}
	dir := os.Getenv("CCOS_MCP_INSPECTOR")
	if dir == "" {
		cache, err := os.UserCacheDir()
		if err == nil {
			dir = filepath.Join(cache, "ccos-test", "mcp-inspector-"+mcpInspectorVersion)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "node_modules", ".bin", "mcp-inspector")); err != nil {
		missing("the MCP Inspector is not installed in %q: run scripts/test, or npm install --prefix %s @modelcontextprotocol/inspector@%s",
			dir, dir, mcpInspectorVersion)
	}
	return dir
}

// inspect runs the Inspector's CLI mode against target and decodes its
// JSON answer.
func inspect(t *testing.T, dir string, target []string, args ...string) map[string]any {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "npx", append(append([]string{"--no-install", "mcp-inspector", "--cli"}, target...), args...)...)
	cmd.Dir = dir
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		t.Fatalf("mcp-inspector %v: %v\n%s\n%s", args, err, out.String(), errb.String())
	}
	var doc map[string]any
	if err := json.Unmarshal(out.Bytes(), &doc); err != nil {
		t.Fatalf("mcp-inspector %v: %v\n%s", args, err, out.String())
	}
	return doc
}

// An MCP client this project did not write, the MCP Inspector, lists the
// tools of `ccos mcp`, reads the catalog and runs plans through it, over
// stdio and over streamable HTTP; a refused plan comes back with its
// diagnostics.
func TestMCPInspector(t *testing.T) {
	dir := mcpInspector(t)
	stdio := []string{ccosBin, "mcp", "--provider", "process"}

	doc := inspect(t, dir, stdio, "--method", "tools/list")
	var names []string
	for _, tool := range doc["tools"].([]any) {
		names = append(names, tool.(map[string]any)["name"].(string))
	}
	for _, want := range []string{"run_plan", "check_plan", "validate_config", "get_run", "list_runs", "verify_chain"} {
		if !strings.Contains(strings.Join(names, " "), want) {
			t.Errorf("tools/list: no %s in %v", want, names)
		}
	}

	doc = inspect(t, dir, stdio, "--method", "tools/call", "--tool-name", "run_plan",
		"--tool-arg", `plan=(plan "sum" :body (step "add" (call :ccos.math.add 40 2)))`)
	sc, _ := doc["structuredContent"].(map[string]any)
	if sc["ok"] != true || sc["value"] != "42" || sc["status"] != "succeeded" {
		t.Errorf("run_plan: %v", doc)
	}

	doc = inspect(t, dir, stdio, "--method", "tools/call", "--tool-name", "run_plan",
		"--tool-arg", `plan=(step "s" (call :no.such.capability))`)
	sc, _ = doc["structuredContent"].(map[string]any)
	diags, _ := sc["diagnostics"].([]any)
	if doc["isError"] != true || len(diags) != 1 || diags[0].(map[string]any)["code"] != "UNKNOWN_CAPABILITY" {
		t.Errorf("refused plan: %v", doc)
	}

	doc = inspect(t, dir, stdio, "--method", "resources/read", "--uri", "ccos://catalog")
	contents, _ := doc["contents"].([]any)
	if len(contents) != 1 || !strings.Contains(contents[0].(map[string]any)["text"].(string), `"ccos.math.add"`) {
		t.Errorf("catalog: %v", doc)
	}

	// Streamable HTTP on a loopback port.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	srv := exec.CommandContext(ctx, ccosBin, "mcp", "--provider", "process", "--http", "127.0.0.1:0")
	stderr, err := srv.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	defer srv.Wait()
	defer cancel()
	addr := make(chan string, 1)
	go func() {
		re := regexp.MustCompile(`at (http://127\.0\.0\.1:\d+/)`)
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			if m := re.FindStringSubmatch(sc.Text()); m != nil {
				addr <- m[1]
			}
		}
		close(addr)
	}()
	var url string
	select {
	case url = <-addr:
	case <-time.After(30 * time.Second):
	}
	if url == "" {
		t.Fatal("ccos mcp --http did not say where it listens")
	}
	doc = inspect(t, dir, []string{url + "mcp", "--transport", "http"}, "--method", "tools/call", "--tool-name", "check_plan",
		"--tool-arg", `plan=(step "now" (call :ccos.system.current-time))`)
	sc, _ = doc["structuredContent"].(map[string]any)
	if sc["admitted"] != true {
		t.Errorf("check_plan over HTTP: %v", doc)
	}
}
