package mcpserver

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"sort"

	"github.com/ccos-project/ccos/chain"
	"github.com/ccos-project/ccos/docs"
	"github.com/ccos-project/ccos/engine"
	"github.com/ccos-project/ccos/examples"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// Resource URIs.
const (
	GuideURI   = "ccos://guide/plans"
	CatalogURI = "ccos://catalog"
	// ExampleURIPrefix is followed by an example plan's file name.
	ExampleURIPrefix = "ccos://examples/plans/"
)

func (s *Server) addResources() {
	text := func(uri, mime, body string) *mcp.ReadResourceResult {
		return &mcp.ReadResourceResult{Contents: []*mcp.ResourceContents{{URI: uri, MIMEType: mime, Text: body}}}
	}
	s.srv.AddResource(&mcp.Resource{URI: GuideURI, Name: "plan-guide", Title: "How to write a ccos plan",
		Description: "The plan language as ccos runs it: plans, steps, effects, capability calls, errors, with examples that run.",
		MIMEType:    "text/markdown"},
		func(context.Context, *mcp.ReadResourceRequest) (*mcp.ReadResourceResult, error) {
			return text(GuideURI, "text/markdown", docs.Plans), nil
		})
	s.srv.AddResource(&mcp.Resource{URI: CatalogURI, Name: "capability-catalog", Title: "Capabilities this agent may call",
		Description: "Every capability the server's agent config makes callable (arguments, effects, risk, guest or host, an example call) and those admission would refuse, with the rules.",
		MIMEType:    "application/json"},
		func(context.Context, *mcp.ReadResourceRequest) (*mcp.ReadResourceResult, error) {
			b, err := json.MarshalIndent(s.o.Agent.Catalog(), "", "  ")
			if err != nil {
				return nil, err
			}
			return text(CatalogURI, "application/json", string(b)), nil
		})
	plans := examples.Plans()
	names := make([]string, 0, len(plans))
	for n := range plans {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		uri, body := ExampleURIPrefix+n, plans[n]
		s.srv.AddResource(&mcp.Resource{URI: uri, Name: "example-" + n, Title: "Example plan " + n,
			Description: "An example plan that runs under the default config.", MIMEType: "text/plain"},
			func(context.Context, *mcp.ReadResourceRequest) (*mcp.ReadResourceResult, error) {
				return text(uri, "text/plain", body), nil
			})
	}
}

func (s *Server) verifyChain(_ context.Context, _ *mcp.CallToolRequest, _ VerifyArgs) (*mcp.CallToolResult, VerifyOutput, error) {
	out := VerifyOutput{File: s.o.ChainFile, Diagnostics: []engine.Diagnostic{}}
	fail := func(code, msg, hint string) (*mcp.CallToolResult, VerifyOutput, error) {
		out.Diagnostics = append(out.Diagnostics, engine.Diagnostic{Code: code, Severity: "error", Message: msg, Hint: hint})
		return result(true, "the chain does not verify:", out.Diagnostics), out, nil
	}
	if s.o.ChainFile == "" {
		return fail("NO_CHAIN_FILE", "this server keeps its causal chain in memory, so there is no file to verify",
			"the operator starts ccos mcp with --chain FILE (or a config with :causal_chain :storage :append_file)")
	}
	v := s.o.Verifier
	if v == nil {
		pub, err := chain.ReadVerifierFile(s.o.ChainFile + ".pub")
		switch {
		case err == nil:
			v = pub
		case !errors.Is(err, os.ErrNotExist):
			return fail("CHAIN_VERIFIER", err.Error(), "")
		}
	}
	st, err := chain.OpenReadOnly(chain.ModeForPath(s.o.ChainFile), s.o.ChainFile)
	if err != nil {
		return fail("CHAIN_UNREADABLE", err.Error(), "")
	}
	defer st.Close()
	_, rep, verr := chain.VerifyTree(st, v)
	if rep != nil {
		out.Events, out.Checkpoints, out.Root = rep.Events, rep.Checkpoints, base64.StdEncoding.EncodeToString(rep.Root)
	}
	if verr != nil {
		var ve *chain.VerifyError
		var re *chain.RecordError
		switch {
		case errors.As(verr, &ve):
			out.BadSeq = &ve.Seq
		case errors.As(verr, &re):
			out.BadSeq = &re.Seq
		}
		return fail("CHAIN_DAMAGED", verr.Error(), "the chain was changed after it was written; keep the file and compare it with a signed checkpoint")
	}
	out.OK = true
	return result(false, fmt.Sprintf("%s: ok: %d events, %d checkpoints, root %s", out.File, out.Events, out.Checkpoints, out.Root), nil), out, nil
}
