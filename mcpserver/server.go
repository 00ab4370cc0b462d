// Package mcpserver is ccos's Model Context Protocol front end: the tools
// and resources a model needs to write, check and run plans (`ccos mcp`,
// over stdio or streamable HTTP).
//
// Tools: run_plan and check_plan take a plan's RTFS text (and optionally
// an agent config's RTFS text), validate_config a config's, get_run and
// list_runs show runs, verify_chain checks the causal chain. Every result
// is structured (an output schema per tool) and carries the diagnostics
// the CLI prints — code, place (file, line, col), message and hint — so
// a model can repair what it wrote. Resources: the plan guide
// (docs/PLANS.md), the capability catalog of the server's agent, and the
// example plans.
//
// Runs go through the run engine (engine.Agent.Run, which admits first)
// or, with a supervisor, through its API (which admits at submission):
// nothing here runs a plan around admission.
package mcpserver

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/ccos-project/ccos/engine"
	"github.com/ccos-project/ccos/supervisor/client"
	"github.com/modelcontextprotocol/go-sdk/mcp"
	"golang.org/x/mod/sumdb/note"
)

// Options configure a server.
type Options struct {
	// Agent is the server's agent: plans without a config run under it,
	// and the catalog resource lists its capabilities. Required.
	Agent *engine.Agent
	// Engine is the engine Agent is loaded in: runs without a supervisor
	// go through it.
	Engine *engine.Engine
	// ClientEngine builds an engine for a config a client sends (each
	// such config is an agent of its own, in an engine of its own); nil
	// refuses client configs for check_plan and run_plan.
	ClientEngine func() (*engine.Engine, error)
	// ClientAgent are the options of agents loaded from client configs;
	// their chain is always the server agent's.
	ClientAgent engine.AgentOptions
	// AllowClientConfig lets run_plan run plans under a config the client
	// sends (check_plan always may check against one). Such a config may
	// not name host resources (see OperatorOnly).
	AllowClientConfig bool
	// Supervisor, when set, receives runs (and answers get_run and
	// list_runs) instead of Engine; SupervisorAgent is the agent runs are
	// submitted to when a call names none.
	Supervisor      *client.Client
	SupervisorAgent string
	// ChainFile is the causal chain verify_chain checks (read-only);
	// Verifier checks its checkpoints' signatures (nil: the verifier
	// stored beside the chain in FILE.pub, if any).
	ChainFile string
	Verifier  note.Verifier
	// RunTimeout bounds one run_plan call (10 minutes when 0).
	RunTimeout time.Duration
	// Logger receives the server's logs (stderr with stdio!).
	Logger *slog.Logger
	// Version is reported to clients.
	Version string
}

// Server is a ccos MCP server. It is safe for concurrent use.
type Server struct {
	o    Options
	log  *slog.Logger
	srv  *mcp.Server
	runs *runStore
}

// ErrNoAgent is returned by New without Options.Agent.
var ErrNoAgent = errors.New("mcpserver: a server needs an agent (Options.Agent)")

// New returns a server with its tools and resources.
func New(o Options) (*Server, error) {
	if o.Agent == nil {
		return nil, ErrNoAgent
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.RunTimeout <= 0 {
		o.RunTimeout = 10 * time.Minute
	}
	if o.Version == "" {
		o.Version = "dev"
	}
	s := &Server{o: o, log: o.Logger, runs: newRunStore(1000)}
	s.srv = mcp.NewServer(&mcp.Implementation{Name: "ccos", Title: "ccos: governed, isolated RTFS plans", Version: o.Version},
		&mcp.ServerOptions{Instructions: instructions, Logger: o.Logger})
	s.addTools()
	s.addResources()
	return s, nil
}

const instructions = "ccos runs plans written in RTFS (a small Lisp) inside a sandbox, under an agent config " +
	"that says what they may reach. Read the plan guide (resource ccos://guide/plans) and the capability " +
	"catalog (ccos://catalog) first; check a plan with check_plan before run_plan. Every refusal comes " +
	"with diagnostics (code, file:line:col, message, hint): fix what they name and try again."

// MCP returns the SDK server (to connect it to a transport of one's own).
func (s *Server) MCP() *mcp.Server { return s.srv }

// ServeStdio serves one client on standard input and output until it
// leaves or ctx ends.
func (s *Server) ServeStdio(ctx context.Context) error {
	return s.srv.Run(ctx, &mcp.StdioTransport{})
}

// Handler serves clients over streamable HTTP. It applies the SDK's
// protection against DNS rebinding (a loopback listener answers only
// requests addressed to a loopback name) and refuses cross-origin
// browser requests.
func (s *Server) Handler() http.Handler {
	h := mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return s.srv },
		&mcp.StreamableHTTPOptions{Logger: s.log, SessionTimeout: 30 * time.Minute})
	return http.NewCrossOriginProtection().Handler(h)
}

func (s *Server) String() string { return fmt.Sprintf("mcpserver(agent %s)", s.o.Agent.ID()) }
