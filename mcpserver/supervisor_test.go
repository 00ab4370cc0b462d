package mcpserver_test

import (
	"context"
	"net"
	"net/http"
	"path/filepath"
	"testing"
	"time"

	"github.com/ccos-project/ccos/engine"
	"github.com/ccos-project/ccos/mcpserver"
	"github.com/ccos-project/ccos/supervisor"
	"github.com/ccos-project/ccos/supervisor/client"
)

// With a supervisor, run_plan submits to it (admitted there, every reason
// of a refusal returned as diagnostics) and waits; get_run and list_runs
// read its store.
func TestSupervisorMode(t *testing.T) {
	dir := t.TempDir()
	eng, err := engine.New(engine.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := eng.LoadAgent([]byte(`(profile:minimal "agent.sup")`), "sup.rtfs",
		engine.AgentOptions{Provider: "process", Chain: filepath.Join(dir, "sup.chain")}); err != nil {
		t.Fatal(err)
	}
	store, err := supervisor.OpenStore(filepath.Join(dir, "runs.db"))
	if err != nil {
		t.Fatal(err)
	}
	sup, err := supervisor.New(supervisor.Options{Engine: eng, Store: store})
	if err != nil {
		t.Fatal(err)
	}
	socket := filepath.Join(dir, "s.sock")
	ln, err := net.Listen("unix", socket)
	if err != nil {
		t.Fatal(err)
	}
	hs := &http.Server{Handler: sup.Handler(nil)}
	go hs.Serve(ln)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		sup.Drain(ctx)
		hs.Close()
		eng.Close()
		store.Close()
	})

	srv, _ := newServer(t, minimal, func(o *mcpserver.Options) {
		o.Supervisor, o.SupervisorAgent = client.Unix(socket), "agent.sup"
	})
	cs := connect(t, srv)
	var run mcpserver.RunOutput
	res := call(t, cs, "run_plan", map[string]any{"plan": `(step "add" (println "via the supervisor") (call :ccos.math.add 40 2))`}, &run)
	if res.IsError || !run.OK || run.Agent != "agent.sup" || *run.Value != "42" || run.Output != "via the supervisor\n" {
		t.Fatalf("run through the supervisor: %+v\n%s", run, text(res))
	}
	var refused mcpserver.RunOutput
	res = call(t, cs, "run_plan", map[string]any{"plan": `(do (step "a" (call :nope.a)) (step "b" (call :nope.b)))`}, &refused)
	if !res.IsError || refused.Status != mcpserver.StatusNotAdmitted || len(refused.Diagnostics) != 2 ||
		refused.Diagnostics[1].Code != "UNKNOWN_CAPABILITY" || refused.Diagnostics[1].Line != 1 || refused.Diagnostics[1].Step != "b" {
		t.Errorf("refused by the supervisor: %+v", refused)
	}
	var got mcpserver.RunOutput
	call(t, cs, "get_run", map[string]any{"run_id": run.RunID}, &got)
	if got.RunID != run.RunID || *got.Value != "42" {
		t.Errorf("get_run: %+v", got)
	}
	var list mcpserver.ListRunsOutput
	call(t, cs, "list_runs", map[string]any{"status": "succeeded"}, &list)
	if len(list.Runs) != 1 || list.Runs[0].RunID != run.RunID {
		t.Errorf("list_runs: %+v", list)
	}
	var withConfig mcpserver.RunOutput
	res = call(t, cs, "run_plan", map[string]any{"plan": `1`, "config": minimal}, &withConfig)
	if !res.IsError || withConfig.Diagnostics[0].Code != mcpserver.CodeClientConfig {
		t.Errorf("a client config with a supervisor: %+v", withConfig)
	}
}
