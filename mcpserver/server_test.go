package mcpserver_test

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/ccos-project/ccos/engine"
	"github.com/ccos-project/ccos/guest"
	"github.com/ccos-project/ccos/mcpserver"
	"github.com/ccos-project/ccos/sandbox"
	"github.com/ccos-project/ccos/sandbox/process"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// TestMain makes this test binary the sandbox guest when the process
// provider starts it.
func TestMain(m *testing.M) {
	sandbox.GuestMain = guest.Run
	process.InitIfChild()
	os.Exit(m.Run())
}

// newServer returns a server whose agent runs plans in the process
// sandbox under cfg, recording into a chain file.
func newServer(t *testing.T, cfg string, mod func(*mcpserver.Options)) (*mcpserver.Server, string) {
	t.Helper()
	eng, err := engine.New(engine.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { eng.Close() })
	chainFile := filepath.Join(t.TempDir(), "mcp.chain")
	a, err := eng.LoadAgent([]byte(cfg), "server.rtfs", engine.AgentOptions{Provider: "process", Chain: chainFile})
	if err != nil {
		t.Fatal(err)
	}
	o := mcpserver.Options{Agent: a, Engine: eng, ChainFile: a.ChainFile(),
		ClientEngine: func() (*engine.Engine, error) { return engine.New(engine.Options{}) },
		ClientAgent:  engine.AgentOptions{Provider: "process"}, Logger: slog.New(slog.DiscardHandler)}
	if mod != nil {
		mod(&o)
	}
	srv, err := mcpserver.New(o)
	if err != nil {
		t.Fatal(err)
	}
	return srv, chainFile
}

// connect connects the SDK's client to srv in memory.
func connect(t *testing.T, srv *mcpserver.Server) *mcp.ClientSession {
	t.Helper()
	ct, st := mcp.NewInMemoryTransports()
	ctx := context.Background()
	ss, err := srv.MCP().Connect(ctx, st, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ss.Close() })
	cs, err := mcp.NewClient(&mcp.Implementation{Name: "test-client", Version: "1"}, nil).Connect(ctx, ct, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cs.Close() })
	return cs
}

// call calls a tool and decodes its structured result into out.
func call(t *testing.T, cs *mcp.ClientSession, tool string, args map[string]any, out any) *mcp.CallToolResult {
	t.Helper()
	res, err := cs.CallTool(context.Background(), &mcp.CallToolParams{Name: tool, Arguments: args})
	if err != nil {
		t.Fatalf("%s: %v", tool, err)
	}
	b, err := json.Marshal(res.StructuredContent)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, out); err != nil {
		t.Fatalf("%s: %v\n%s", tool, err, b)
	}
	return res
}

func text(res *mcp.CallToolResult) string {
	var b strings.Builder
	for _, c := range res.Content {
		if tc, ok := c.(*mcp.TextContent); ok {
			b.WriteString(tc.Text)
		}
	}
	return b.String()
}

func codes(ds []engine.Diagnostic) []string {
	var out []string
	for _, d := range ds {
		out = append(out, d.Code)
	}
	return out
}

const minimal = `(profile:minimal "agent.mcp")`

// The tools are listed with input schemas; run_plan runs a plan through
// the engine; check_plan admits without running; refusals carry every
// diagnostic with its code, place and hint; runs are listed and shown;
// the chain they were recorded in verifies.
func TestTools(t *testing.T) {
	srv, _ := newServer(t, minimal, nil)
	cs := connect(t, srv)
	ctx := context.Background()

	tools, err := cs.ListTools(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, tool := range tools.Tools {
		names = append(names, tool.Name)
		if tool.OutputSchema == nil || tool.InputSchema == nil {
			t.Errorf("%s has no input or output schema", tool.Name)
		}
		if tool.Name == "run_plan" {
			b, _ := json.Marshal(tool.InputSchema)
			if !strings.Contains(string(b), `"required":["plan"]`) {
				t.Errorf("run_plan's input schema does not require plan: %s", b)
			}
		}
	}
	slices.Sort(names)
	if want := []string{"check_plan", "get_run", "list_runs", "run_plan", "validate_config", "verify_chain"}; !slices.Equal(names, want) {
		t.Errorf("tools %v, want %v", names, want)
	}

	var run mcpserver.RunOutput
	res := call(t, cs, "run_plan", map[string]any{"plan": `(plan "hi" :body (step "greet" (println "hello") (call :ccos.string.concat "Hello, " "world")))`}, &run)
	if res.IsError || !run.OK || run.Value == nil || *run.Value != `"Hello, world"` || run.Output != "hello\n" || run.Status != "succeeded" ||
		len(run.Steps) != 1 || run.RunID == "" || run.Provider != "process" {
		t.Fatalf("run_plan: %+v\n%s", run, text(res))
	}
	if !strings.Contains(text(res), `"Hello, world"`) {
		t.Errorf("the text result does not carry the value: %s", text(res))
	}

	// A plan that is refused: every reason, each at its place.
	var refused mcpserver.RunOutput
	res = call(t, cs, "run_plan", map[string]any{"file": "bad.rtfs", "plan": `(plan "bad" :body (do
  (step "a" (call :nope.one))
  (step "b" (call :nope.two))))`}, &refused)
	if !res.IsError || refused.OK || refused.Status != mcpserver.StatusNotAdmitted ||
		!slices.Equal(codes(refused.Diagnostics), []string{"UNKNOWN_CAPABILITY", "UNKNOWN_CAPABILITY"}) {
		t.Fatalf("refused plan: %+v", refused)
	}
	d := refused.Diagnostics[1]
	if d.File != "bad.rtfs" || d.Line != 3 || d.Col != 13 || d.Step != "b" || d.Hint == "" || d.Value != "nope.two" {
		t.Errorf("diagnostic: %+v", d)
	}
	if !strings.Contains(text(res), "bad.rtfs:3:13: UNKNOWN_CAPABILITY") {
		t.Errorf("text: %s", text(res))
	}

	// A plan that does not read: the reader's place and message.
	var syntax mcpserver.RunOutput
	call(t, cs, "run_plan", map[string]any{"plan": `(step "x" (call :ccos.echo 1)`}, &syntax)
	if len(syntax.Diagnostics) == 0 || syntax.Diagnostics[0].Code != engine.CodeSyntax || syntax.Diagnostics[0].Line != 1 {
		t.Errorf("syntax error: %+v", syntax)
	}

	// A plan that fails while it runs: the RTFS error and where.
	var failed mcpserver.RunOutput
	res = call(t, cs, "run_plan", map[string]any{"plan": `(step "div" (/ 1 0))`}, &failed)
	if !res.IsError || failed.Status != "failed" || len(failed.Diagnostics) != 1 || failed.Diagnostics[0].Code != "DivisionByZero" || failed.Diagnostics[0].Line != 1 {
		t.Errorf("failed plan: %+v", failed)
	}

	var check mcpserver.CheckOutput
	res = call(t, cs, "check_plan", map[string]any{"plan": `(step "now" (call :ccos.system.current-time))`}, &check)
	if res.IsError || !check.Admitted || check.Admission == nil || len(check.Admission.Profiles) != 1 ||
		check.Admission.Profiles[0].Determinism.Time != "real" {
		t.Errorf("check_plan: %+v", check)
	}

	var got mcpserver.RunOutput
	call(t, cs, "get_run", map[string]any{"run_id": run.RunID}, &got)
	if got.RunID != run.RunID || got.Value == nil || *got.Value != `"Hello, world"` {
		t.Errorf("get_run: %+v", got)
	}
	var unknown mcpserver.RunOutput
	if res := call(t, cs, "get_run", map[string]any{"run_id": "ccos-nope"}, &unknown); !res.IsError || unknown.Diagnostics[0].Code != "UNKNOWN_RUN" {
		t.Errorf("get_run of an unknown run: %+v", unknown)
	}
	var list mcpserver.ListRunsOutput
	call(t, cs, "list_runs", map[string]any{}, &list)
	if len(list.Runs) != 4 || list.Runs[len(list.Runs)-1].RunID != run.RunID {
		t.Errorf("list_runs: %+v", list)
	}
	call(t, cs, "list_runs", map[string]any{"status": "succeeded"}, &list)
	if len(list.Runs) != 1 {
		t.Errorf("list_runs succeeded: %+v", list)
	}

	var v mcpserver.VerifyOutput
	res = call(t, cs, "verify_chain", map[string]any{}, &v)
	if res.IsError || !v.OK || v.Events == 0 {
		t.Errorf("verify_chain: %+v %s", v, text(res))
	}
}

// validate_config reports every diagnostic of a config with its place,
// and the expanded config when it is valid.
func TestValidateConfig(t *testing.T) {
	srv, _ := newServer(t, minimal, nil)
	cs := connect(t, srv)
	var out mcpserver.ConfigOutput
	res := call(t, cs, "validate_config", map[string]any{"config": `(agent.config
  :version "0.1"
  :agent-id "Not An Id"
  :features [:network])`}, &out)
	if !res.IsError || out.Valid || out.Errors != 1 || !slices.Contains(codes(out.Diagnostics), "INVALID_AGENT_ID") {
		t.Fatalf("%+v", out)
	}
	for _, d := range out.Diagnostics {
		if d.File != "agent.config.rtfs" || d.Line == 0 || d.Hint == "" || d.Path == "" {
			t.Errorf("diagnostic without place, path or hint: %+v", d)
		}
	}
	res = call(t, cs, "validate_config", map[string]any{"config": `(profile:networked "agent.ok" ["api.example.com"])`}, &out)
	if res.IsError || !out.Valid || !strings.Contains(out.Expanded, ":allow-domains [\"api.example.com\"]") {
		t.Errorf("%+v", out)
	}
}

// A config sent by the client: check_plan checks against it; run_plan
// runs under it only when the operator allows it; either way it may not
// grant host resources.
func TestClientConfig(t *testing.T) {
	plan := `(step "tz" (call :ccos.system.get-env "TZ"))`
	withEnv := `(assoc-in (profile:minimal "agent.client") [:capabilities :env] {:enabled true :vars ["TZ"]})`
	srv, _ := newServer(t, minimal, nil)
	cs := connect(t, srv)

	var check mcpserver.CheckOutput
	call(t, cs, "check_plan", map[string]any{"plan": plan, "config": withEnv}, &check)
	if check.Admitted || len(check.Diagnostics) != 1 || check.Diagnostics[0].Code != mcpserver.CodeClientConfig ||
		check.Diagnostics[0].Path != "capabilities.env" {
		t.Errorf("a client config reading the environment: %+v", check)
	}
	call(t, cs, "check_plan", map[string]any{"plan": `(step "s" (call :ccos.echo 1))`, "config": `(profile:minimal "agent.client")`}, &check)
	if !check.Admitted || check.Agent != "agent.client" {
		t.Errorf("check under a client config: %+v", check)
	}

	var run mcpserver.RunOutput
	res := call(t, cs, "run_plan", map[string]any{"plan": `(step "s" (call :ccos.echo 1))`, "config": `(profile:minimal "agent.client")`}, &run)
	if !res.IsError || run.Status != mcpserver.StatusInvalidConfig || run.Diagnostics[0].Code != mcpserver.CodeClientConfig {
		t.Errorf("run under a client config without --allow-client-config: %+v", run)
	}

	srv, _ = newServer(t, minimal, func(o *mcpserver.Options) { o.AllowClientConfig = true })
	cs = connect(t, srv)
	res = call(t, cs, "run_plan", map[string]any{"plan": `(step "s" (call :ccos.echo 1))`, "config": `(profile:minimal "agent.client")`}, &run)
	if res.IsError || !run.OK || run.Agent != "agent.client" || *run.Value != "1" {
		t.Errorf("run under an allowed client config: %+v", run)
	}
	// The same agent id as the server's is another agent, in its own
	// engine.
	res = call(t, cs, "run_plan", map[string]any{"plan": `(step "s" (call :ccos.echo 2))`, "config": minimal}, &run)
	if res.IsError || !run.OK {
		t.Errorf("client config with the server's agent id: %+v", run)
	}
	res = call(t, cs, "run_plan", map[string]any{"plan": plan, "config": `(assoc-in (profile:minimal "agent.client") [:causal_chain :storage] {:mode :append_file :path "/tmp/x.chain"})`}, &run)
	if !res.IsError || run.Diagnostics[0].Path != "causal_chain.storage.path" {
		t.Errorf("client config with a chain file: %+v", run)
	}
	res = call(t, cs, "run_plan", map[string]any{"plan": `(step "s" (call :ccos.echo 1))`, "config": `(-> (profile:networked "agent.client" ["evil.example"])
  (assoc :secrets [{:name "t" :domain "evil.example" :header "Authorization" :env "HOME"}]))`}, &run)
	if !res.IsError || run.Diagnostics[0].Path != "secrets" || run.Diagnostics[0].Code != mcpserver.CodeClientConfig {
		t.Errorf("client config binding a host credential: %+v", run)
	}
	var bad mcpserver.RunOutput
	call(t, cs, "run_plan", map[string]any{"plan": plan, "config": `(profile:minimal "Bad")`}, &bad)
	if bad.Status != mcpserver.StatusInvalidConfig || bad.Diagnostics[0].Code != "INVALID_AGENT_ID" || bad.Diagnostics[0].File != "config.rtfs" {
		t.Errorf("invalid client config: %+v", bad)
	}
}

// The resources: the plan guide, the catalog of the server's agent (the
// same document as `ccos capabilities --json`) and the example plans.
func TestResources(t *testing.T) {
	srv, _ := newServer(t, minimal, nil)
	cs := connect(t, srv)
	ctx := context.Background()
	list, err := cs.ListResources(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	var uris []string
	for _, r := range list.Resources {
		uris = append(uris, r.URI)
	}
	for _, want := range []string{mcpserver.GuideURI, mcpserver.CatalogURI, mcpserver.ExampleURIPrefix + "hello.rtfs"} {
		if !slices.Contains(uris, want) {
			t.Errorf("no resource %s in %v", want, uris)
		}
	}
	read := func(uri string) string {
		r, err := cs.ReadResource(ctx, &mcp.ReadResourceParams{URI: uri})
		if err != nil || len(r.Contents) != 1 {
			t.Fatalf("%s: %v", uri, err)
		}
		return r.Contents[0].Text
	}
	if g := read(mcpserver.GuideURI); !strings.Contains(g, "(step ") {
		t.Errorf("guide: %.200s", g)
	}
	var cat struct {
		Agent        string `json:"agent"`
		Capabilities []struct {
			ID string `json:"id"`
		} `json:"capabilities"`
	}
	if err := json.Unmarshal([]byte(read(mcpserver.CatalogURI)), &cat); err != nil || cat.Agent != "agent.mcp" || len(cat.Capabilities) == 0 {
		t.Errorf("catalog: %v %+v", err, cat)
	}
	if p := read(mcpserver.ExampleURIPrefix + "hello.rtfs"); !strings.Contains(p, `(plan "hello"`) {
		t.Errorf("example: %s", p)
	}
}

// The streamable HTTP transport serves the same tools; a request whose
// Host is not a loopback name is refused (DNS rebinding).
func TestStreamableHTTP(t *testing.T) {
	srv, _ := newServer(t, minimal, nil)
	hs := httptest.NewServer(srv.Handler())
	defer hs.Close()
	ctx := context.Background()
	cs, err := mcp.NewClient(&mcp.Implementation{Name: "http-client", Version: "1"}, nil).
		Connect(ctx, &mcp.StreamableClientTransport{Endpoint: hs.URL, DisableStandaloneSSE: true}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer cs.Close()
	var run mcpserver.RunOutput
	res := call(t, cs, "run_plan", map[string]any{"plan": `(step "add" (call :ccos.math.add 40 2))`}, &run)
	if res.IsError || !run.OK || *run.Value != "42" {
		t.Fatalf("%+v", run)
	}
}
