package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/ccos-project/ccos/chain"
	"github.com/ccos-project/ccos/engine"
	"github.com/ccos-project/ccos/mcpserver"
	"github.com/ccos-project/ccos/supervisor/client"
	"github.com/spf13/cobra"
	"golang.org/x/mod/sumdb/note"
)

// mcpFlags are ccos mcp's flags.
type mcpFlags struct {
	httpAddr, supervisorSocket, supervisorAgent string
	allowClientConfig                           bool
	runTimeout                                  time.Duration
	agent                                       agentFlags
	eng                                         engineFlags
}

func init() {
	var af admitFlags
	var f mcpFlags
	cmd := &cobra.Command{
		Use:   "mcp",
		Short: "Serve the Model Context Protocol: tools to check and run plans, the plan guide and the capability catalog",
		Long: "ccos mcp serves one MCP client on standard input and output (or, with\n" +
			"--http ADDR, clients over streamable HTTP on a loopback address). Tools:\n" +
			"run_plan, check_plan, validate_config, get_run, list_runs, verify_chain;\n" +
			"resources: the plan guide, the capability catalog of the agent config\n" +
			"(--config, default " + defaultConfig + ") and the example plans.\n" +
			"Plans run through the run engine, admitted first, or with --supervisor\n" +
			"SOCKET through a running supervisor. A config sent by the client is\n" +
			"checked by check_plan; run_plan runs under it only with\n" +
			"--allow-client-config, and never with host files, environment variables,\n" +
			"secrets, marketplace directories or a chain file of its own.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return serveMCP(cmd.Context(), cmd, af, f)
		},
	}
	fl := cmd.Flags()
	af.register(cmd)
	f.agent.register(cmd, "ccos mcp")
	f.eng.register(cmd)
	fl.StringVar(&f.httpAddr, "http", "", "serve streamable HTTP on this loopback address (127.0.0.1:PORT) instead of stdio")
	fl.StringVar(&f.supervisorSocket, "supervisor", "", "send runs to the supervisor listening on this Unix socket")
	fl.StringVar(&f.supervisorAgent, "agent", "", "with --supervisor: the agent runs go to when a call names none")
	fl.BoolVar(&f.allowClientConfig, "allow-client-config", false, "let run_plan run plans under an agent config the client sends (never with host files, environment, secrets or chain files of its own)")
	fl.DurationVar(&f.runTimeout, "run-timeout", 10*time.Minute, "bound on one run_plan call")
	rootCmd.AddCommand(cmd)
}

func serveMCP(ctx context.Context, cmd *cobra.Command, af admitFlags, f mcpFlags) error {
	if ctx == nil {
		ctx = context.Background()
	}
	if f.httpAddr != "" {
		if err := loopbackOnly(f.httpAddr); err != nil {
			return &exitError{code: exitUsage, msg: "ccos mcp: --http: " + err.Error()}
		}
	}
	eng, closeEng, err := f.eng.open(nil)
	if err != nil {
		return err
	}
	defer closeEng()
	a, err := openAgent(eng, cmd.ErrOrStderr(), af, f.agent)
	if err != nil {
		return err
	}
	level, err := af.securityLevel()
	if err != nil {
		return err
	}
	ao, err := f.agent.options()
	if err != nil {
		return err
	}
	ao.Level, ao.Allow, ao.Deny, ao.Chain, ao.Archive = level, af.allow, af.deny, "", ""
	eo, err := f.eng.egressOptions()
	if err != nil {
		return err
	}
	o := mcpserver.Options{Agent: a, Engine: eng, ClientAgent: ao, AllowClientConfig: f.allowClientConfig,
		ClientEngine: func() (*engine.Engine, error) {
			return engine.New(engine.Options{VMSnapshots: f.eng.snapshots, Egress: eo, Logger: cliLogger()})
		},
		ChainFile: a.ChainFile(), RunTimeout: f.runTimeout, Logger: cliLogger()}
	if f.agent.chainKey != "" {
		// verify_chain checks the checkpoints the server signs.
		if o.Verifier, err = chainKeyVerifier(f.agent.chainKey); err != nil {
			return rejected(fmt.Sprintf("ccos mcp: the chain key %s: %v", f.agent.chainKey, err))
		}
	}
	if f.supervisorSocket != "" {
		o.Supervisor, o.SupervisorAgent = client.Unix(f.supervisorSocket), f.supervisorAgent
		if o.SupervisorAgent == "" {
			o.SupervisorAgent = a.ID()
		}
	}
	srv, err := mcpserver.New(o)
	if err != nil {
		return rejected("ccos mcp: " + err.Error())
	}
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	if f.httpAddr == "" {
		if err := srv.ServeStdio(ctx); err != nil && !errors.Is(err, context.Canceled) {
			return rejected("ccos mcp: " + err.Error())
		}
		return nil
	}
	ln, err := net.Listen("tcp", f.httpAddr)
	if err != nil {
		return rejected("ccos mcp: " + err.Error())
	}
	fmt.Fprintf(cmd.ErrOrStderr(), "ccos mcp: serving streamable HTTP at http://%s/ (agent %s)\n", ln.Addr(), a.ID())
	hs := &http.Server{Handler: srv.Handler(), ReadHeaderTimeout: 10 * time.Second}
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		hs.Shutdown(sctx)
	}()
	if err := hs.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return rejected("ccos mcp: " + err.Error())
	}
	return nil
}

// chainKeyVerifier is the verifier of the signer key in file.
func chainKeyVerifier(file string) (note.Verifier, error) {
	text, err := engine.ReadInput(file, 64<<10)
	if err != nil {
		return nil, err
	}
	v, err := chain.VerifierOf(strings.TrimSpace(string(text)))
	if err != nil {
		return nil, err
	}
	return chain.ParseVerifier(v)
}

// loopbackOnly refuses a listen address that is not a loopback one: the
// MCP transport has no authentication of its own.
func loopbackOnly(addr string) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return err
	}
	if host == "localhost" {
		return nil
	}
	ip := net.ParseIP(host)
	if ip == nil || !ip.IsLoopback() {
		return fmt.Errorf("%s is not a loopback address; the MCP HTTP transport has no authentication, so ccos mcp listens only on 127.0.0.1 or [::1]", addr)
	}
	return nil
}
