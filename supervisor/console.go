package supervisor

import (
	"context"
	"embed"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"mime"
	"net/http"
	"path"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf16"
	"unicode/utf8"

	"github.com/ccos-project/ccos/chain"
	"github.com/ccos-project/ccos/engine"
	"github.com/ccos-project/ccos/plan"
	"github.com/ccos-project/ccos/rtfs"
)

// The web console is static files (ui/, embedded) served at /ui/ by the
// API's own handler: same listeners, same identity. Everything it shows
// it reads from the API routes below and those of http.go, with the
// identity of the browser's connection; it performs no action.

//go:embed ui
var consoleFiles embed.FS

// consoleRoutes are the routes the console needs beyond the run API.
var consoleRoutes = []Route{
	{"GET", "/ui/", false, (*Supervisor).handleConsole},
	{"GET", "/v1/events", false, (*Supervisor).handleRunChanges},
	{"GET", "/v1/runs/{id}/plan", false, (*Supervisor).handlePlan},
	{"GET", "/v1/agents/{agent}/chain", false, (*Supervisor).handleChain},
	{"POST", "/v1/agents/{agent}/chain/verify", false, (*Supervisor).handleChainVerify},
	{"GET", "/v1/agents/{agent}/chain/proof", false, (*Supervisor).handleChainProof},
}

func init() { Routes = append(Routes, consoleRoutes...) }

// consoleState is what the console's routes keep; its zero value is ready.
type consoleState struct {
	once sync.Once
	// verifying bounds the chain verifications running at once: each
	// reads a whole chain.
	verifying chan struct{}
}

func (c *consoleState) slots() chan struct{} {
	c.once.Do(func() { c.verifying = make(chan struct{}, 2) })
	return c.verifying
}

// consoleCSP lets the console's pages load their own script and style and
// talk to the API, and nothing else: no inline script, no other origin,
// no framing.
const consoleCSP = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; " +
	"base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

// handleConsole serves the console's embedded files: a handful of static
// files by exact name (no directory listing, no ranges: the standard file
// server's range parsing is more than four small files need).
func (s *Supervisor) handleConsole(w http.ResponseWriter, r *http.Request) {
	name := strings.TrimPrefix(r.URL.Path, "/ui/")
	if name == "" {
		name = "index.html"
	}
	if strings.Contains(name, "/") || strings.HasPrefix(name, ".") {
		writeError(w, http.StatusNotFound, "not-found", fmt.Errorf("no console file %s", name))
		return
	}
	data, err := fs.ReadFile(consoleFiles, "ui/"+name)
	if err != nil {
		writeError(w, http.StatusNotFound, "not-found", fmt.Errorf("no console file %s", name))
		return
	}
	h := w.Header()
	h.Set("Content-Security-Policy", consoleCSP)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("Cache-Control", "no-cache")
	ctype := mime.TypeByExtension(path.Ext(name))
	if ctype == "" {
		ctype = "application/octet-stream"
	}
	h.Set("Content-Type", ctype)
	h.Set("Content-Length", strconv.Itoa(len(data)))
	if r.Method != http.MethodHead {
		w.Write(data)
	}
}

// sseID is the id of a change in GET /v1/events: the supervisor's start
// (so that a client of an earlier supervisor starts again) and the
// change's number.
func (s *Supervisor) sseID(n uint64) string {
	return strconv.FormatInt(s.start.UnixNano(), 36) + "-" + strconv.FormatUint(n, 10)
}

// parseSSEID returns the change number of an id of this supervisor.
func (s *Supervisor) parseSSEID(id string) (uint64, bool) {
	epoch, n, ok := strings.Cut(id, "-")
	if !ok || epoch != strconv.FormatInt(s.start.UnixNano(), 36) {
		return 0, false
	}
	v, err := strconv.ParseUint(n, 10, 64)
	return v, err == nil
}

// handleRunChanges streams the changes of the runs the identity may see
// (submitted, started, ended, queued again) as Server-Sent Events: a
// "hello" event, then a "run" event with the run's current state at each
// change; "reset" when the changes since Last-Event-ID are no longer
// known (the client lists the runs again).
func (s *Supervisor) handleRunChanges(w http.ResponseWriter, r *http.Request) {
	agent := r.URL.Query().Get("agent")
	id := identity(r)
	if !id.Operator() {
		if agent != "" && agent != id.Agent {
			writeError(w, http.StatusForbidden, "forbidden", fmt.Errorf("this client's certificate names agent %s", id.Agent))
			return
		}
		agent = id.Agent
	}
	fl, ok := w.(http.Flusher)
	if !ok {
		writeError(w, http.StatusInternalServerError, "failed", errors.New("streaming is not supported on this connection"))
		return
	}
	feed := s.o.Store.changes
	after, known := feed.last(), true
	if v := r.Header.Get("Last-Event-ID"); v != "" {
		after, known = s.parseSSEID(v)
	}
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	hello, _ := json.Marshal(map[string]any{"agent": agent})
	fmt.Fprintf(w, "event: hello\ndata: %s\n\n", hello)
	if !known {
		after = feed.last()
		fmt.Fprintf(w, "id: %s\nevent: reset\ndata: {}\n\n", s.sseID(after))
	}
	fl.Flush()
	ctx := r.Context()
	keepalive := time.NewTicker(15 * time.Second)
	defer keepalive.Stop()
	for {
		ids, last, lost, changed := feed.since(after)
		switch {
		case lost:
			fmt.Fprintf(w, "id: %s\nevent: reset\ndata: {}\n\n", s.sseID(last))
		case len(ids) > 0:
			runs, err := s.o.Store.runs(ctx, ids)
			if err != nil {
				return
			}
			for _, run := range runs {
				if agent == "" || run.Agent == agent {
					b, _ := json.Marshal(run)
					fmt.Fprintf(w, "id: %s\nevent: run\ndata: %s\n\n", s.sseID(last), b)
				}
			}
			// The id moves on even when none of the runs was this
			// client's.
			fmt.Fprintf(w, "id: %s\n\n", s.sseID(last))
		}
		after = last
		fl.Flush()
		select {
		case <-changed:
		case <-keepalive.C:
			io.WriteString(w, ": keep-alive\n\n")
			fl.Flush()
		case <-ctx.Done():
			return
		}
	}
}

// runs returns the runs of ids that exist (without their source), in the
// order of ids.
func (s *Store) runs(ctx context.Context, ids []string) ([]*Run, error) {
	byID := map[string]*Run{}
	for start := 0; start < len(ids); start += 500 {
		part := ids[start:min(start+500, len(ids))]
		args := make([]any, len(part))
		for i, id := range part {
			args[i] = id
		}
		rows, err := s.r.QueryContext(ctx, `SELECT `+runColumns+` FROM runs WHERE id IN (?`+strings.Repeat(", ?", len(part)-1)+`)`, args...)
		if err != nil {
			return nil, err
		}
		for rows.Next() {
			r, err := scanRun(rows)
			if err != nil {
				rows.Close()
				return nil, err
			}
			byID[r.ID] = r
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return nil, err
		}
	}
	out := make([]*Run, 0, len(byID))
	for _, id := range ids {
		if r, ok := byID[id]; ok {
			out = append(out, r)
		}
	}
	return out, nil
}

// PlanView is a run's plan as read: its steps and where each is written
// in the run's source.
type PlanView struct {
	RunID string     `json:"run_id"`
	Name  string     `json:"name,omitempty"`
	File  string     `json:"file,omitempty"`
	Steps []StepSpan `json:"steps"`
}

// StepSpan is one step of a plan and the source range of its form.
type StepSpan struct {
	Name  string    `json:"name"`
	Start SourcePos `json:"start"`
	End   SourcePos `json:"end"`
	// Calls are the capabilities the step can reach, as the admission's
	// analysis found them.
	Calls []string `json:"calls"`
}

// SourcePos is a position in a plan's source: line and column (from 1,
// the column in characters), the offset in bytes, and the offset in
// UTF-16 code units (what a browser's strings count).
type SourcePos struct {
	Line   int `json:"line"`
	Col    int `json:"col"`
	Offset int `json:"offset"`
	UTF16  int `json:"utf16"`
}

// utf16Offset converts a byte offset of src into UTF-16 code units.
func utf16Offset(src string, off int) int {
	n := 0
	for _, r := range src[:min(off, len(src))] {
		if r == utf8.RuneError {
			n++
			continue
		}
		n += utf16.RuneLen(r)
	}
	return n
}

func sourcePos(src string, p rtfs.Pos) SourcePos {
	return SourcePos{Line: p.Line, Col: p.Col, Offset: p.Offset, UTF16: utf16Offset(src, p.Offset)}
}

// handlePlan answers the steps of a run's plan with their source ranges,
// so that the console can show the step being run in the source.
func (s *Supervisor) handlePlan(w http.ResponseWriter, r *http.Request) {
	run, ok := s.visibleRun(w, r)
	if !ok {
		return
	}
	p, err := plan.Read([]byte(run.Source), run.File)
	if err != nil {
		writeError(w, http.StatusInternalServerError, "failed", fmt.Errorf("the plan of run %s does not read: %w", run.ID, err))
		return
	}
	v := PlanView{RunID: run.ID, Name: p.Name, File: run.File, Steps: []StepSpan{}}
	for _, st := range p.Steps {
		sp := StepSpan{Name: st.Name, Start: sourcePos(run.Source, st.Span.Start), End: sourcePos(run.Source, st.Span.End), Calls: []string{}}
		for _, c := range st.Calls {
			sp.Calls = append(sp.Calls, c.Capability)
		}
		v.Steps = append(v.Steps, sp)
	}
	writeJSON(w, http.StatusOK, v)
}

// visibleRecorder returns an agent's chain recorder if the identity may
// see the agent.
func (s *Supervisor) visibleRecorder(w http.ResponseWriter, r *http.Request) (string, *chain.Recorder, bool) {
	name := r.PathValue("agent")
	if !identity(r).may(name) {
		writeError(w, http.StatusForbidden, "forbidden", fmt.Errorf("this client's certificate names agent %s, not %s", identity(r).Agent, name))
		return "", nil, false
	}
	a, ok := s.o.Engine.Agent(name)
	if !ok {
		writeError(w, http.StatusNotFound, "not-found", fmt.Errorf("%w: %s", ErrUnknownAgent, name))
		return "", nil, false
	}
	rec, err := a.Recorder()
	if err != nil {
		writeError(w, http.StatusServiceUnavailable, "unavailable", fmt.Errorf("the causal chain of agent %s: %w", name, err))
		return "", nil, false
	}
	return name, rec, true
}

// ChainInfo is an agent's causal chain as the recorder holds it.
type ChainInfo struct {
	Agent string `json:"agent"`
	// Size is the number of events; Root the Merkle root over them
	// (base64).
	Size uint64 `json:"size"`
	Root string `json:"root"`
	// Checkpoint is the latest signed checkpoint (nil when none).
	Checkpoint *CheckpointInfo `json:"checkpoint,omitempty"`
	// Signing is set when runs end with a signed checkpoint; Verifier
	// when the supervisor can check checkpoint signatures.
	Signing  bool `json:"signing"`
	Verifier bool `json:"verifier"`
}

// CheckpointInfo is a signed checkpoint: origin, tree size, root (base64)
// and the whole signed note.
type CheckpointInfo struct {
	Origin string `json:"origin"`
	Size   uint64 `json:"size"`
	Root   string `json:"root"`
	Note   string `json:"note"`
}

func checkpointInfo(c *chain.Checkpoint) *CheckpointInfo {
	if c == nil {
		return nil
	}
	return &CheckpointInfo{Origin: c.Origin, Size: c.Size, Root: b64(c.Root), Note: string(c.Note)}
}

func b64(b []byte) string { return base64.StdEncoding.EncodeToString(b) }

func (s *Supervisor) handleChain(w http.ResponseWriter, r *http.Request) {
	name, rec, ok := s.visibleRecorder(w, r)
	if !ok {
		return
	}
	writeJSON(w, http.StatusOK, ChainInfo{Agent: name, Size: rec.Size(), Root: b64(rec.Root()),
		Checkpoint: checkpointInfo(rec.LastCheckpoint()), Signing: rec.CanCheckpoint(), Verifier: s.o.ChainVerifier != nil})
}

// ChainVerification is the result of verifying an agent's chain from its
// stored bytes.
type ChainVerification struct {
	Agent string `json:"agent"`
	// OK is set when every event, link, the tree and every checkpoint
	// verified.
	OK          bool   `json:"ok"`
	Events      uint64 `json:"events"`
	Checkpoints int    `json:"checkpoints"`
	Root        string `json:"root"`
	// SignaturesChecked is set when checkpoint signatures were checked
	// (the supervisor has the verifier key); without it their sizes and
	// roots were.
	SignaturesChecked bool `json:"signatures_checked"`
	// Error is the first damage; BadSeq the sequence number of the first
	// event that does not verify.
	Error  string  `json:"error,omitempty"`
	BadSeq *uint64 `json:"bad_seq,omitempty"`
	// Checkpoint is the latest checkpoint that verified.
	Checkpoint *CheckpointInfo `json:"checkpoint,omitempty"`
	Millis     float64         `json:"duration_ms"`
}

// handleChainVerify verifies an agent's chain on the server, from the
// bytes its store holds: every event's encoding and hash, the links, the
// Merkle tree and every checkpoint.
func (s *Supervisor) handleChainVerify(w http.ResponseWriter, r *http.Request) {
	name, rec, ok := s.visibleRecorder(w, r)
	if !ok {
		return
	}
	select {
	case s.console.slots() <- struct{}{}:
		defer func() { <-s.console.slots() }()
	case <-r.Context().Done():
		return
	}
	start := time.Now()
	_, rep, err := rec.Verify(s.o.ChainVerifier)
	v := ChainVerification{Agent: name, OK: err == nil, Events: rep.Events, Checkpoints: rep.Checkpoints, Root: b64(rep.Root),
		SignaturesChecked: s.o.ChainVerifier != nil, Checkpoint: checkpointInfo(rep.Last), Millis: float64(time.Since(start).Microseconds()) / 1000}
	if err != nil {
		v.Error = err.Error()
		if seq, ok := chain.BadSeq(err); ok {
			v.BadSeq = &seq
		}
	}
	writeJSON(w, http.StatusOK, v)
}

// ChainProof is the inclusion proof of one event of an agent's chain in
// the tree its latest checkpoint signs, checked by the server. The
// event's payload is not part of it.
type ChainProof struct {
	Agent string `json:"agent"`
	Index uint64 `json:"index"`
	Event struct {
		Type    string    `json:"type"`
		Origin  string    `json:"origin"`
		Time    time.Time `json:"time"`
		Session string    `json:"session,omitempty"`
		Plan    string    `json:"plan,omitempty"`
		Step    string    `json:"step,omitempty"`
	} `json:"event"`
	LeafHash   string          `json:"leaf_hash"`
	Proof      []string        `json:"proof"`
	Checkpoint *CheckpointInfo `json:"checkpoint"`
	// SignatureChecked is set when the checkpoint's signature was
	// checked; Verified when the proof leads to its root.
	SignatureChecked bool `json:"signature_checked"`
	Verified         bool `json:"verified"`
}

func (s *Supervisor) handleChainProof(w http.ResponseWriter, r *http.Request) {
	name, rec, ok := s.visibleRecorder(w, r)
	if !ok {
		return
	}
	q := r.URL.Query().Get("index")
	index, err := strconv.ParseUint(q, 10, 64)
	if err != nil {
		writeError(w, http.StatusBadRequest, "bad-request", fmt.Errorf("index %q: want the sequence number of an event (0, 1, ...)", q))
		return
	}
	select {
	case s.console.slots() <- struct{}{}:
		defer func() { <-s.console.slots() }()
	case <-r.Context().Done():
		return
	}
	inc, err := rec.Prove(s.o.ChainVerifier, index)
	switch {
	case errors.Is(err, chain.ErrNoEvent):
		writeError(w, http.StatusNotFound, "not-found", err)
		return
	case err != nil:
		writeError(w, http.StatusConflict, "conflict", err)
		return
	}
	p := ChainProof{Agent: name, Index: index, LeafHash: b64(inc.LeafHash), Proof: make([]string, len(inc.Proof)),
		Checkpoint: checkpointInfo(inc.Checkpoint), SignatureChecked: inc.SignatureChecked, Verified: true}
	for i, h := range inc.Proof {
		p.Proof[i] = b64(h)
	}
	e := inc.Event
	p.Event.Type, p.Event.Origin, p.Event.Time = string(e.Type), e.Origin.String(), e.Time.UTC()
	p.Event.Session, p.Event.Plan, p.Event.Step = e.Session, e.Plan, e.Step
	writeJSON(w, http.StatusOK, p)
}

// AgentLimits are the bounds an agent's runs get, as the supervisor
// derives them from its config and options.
type AgentLimits struct {
	// The sandbox's bounds (each sandbox of the agent).
	MemoryBytes  int64   `json:"memory_bytes"`
	PIDs         int     `json:"pids"`
	CPUPercent   int     `json:"cpu_percent"`
	WorkdirBytes int64   `json:"workdir_bytes"`
	DeadlineMS   float64 `json:"deadline_ms"`
	LogBytes     int64   `json:"log_bytes"`
	// VCPUs and MemMB are the microVM's, when the config has :microvm.
	VCPUs int `json:"vcpus,omitempty"`
	MemMB int `json:"mem_mb,omitempty"`
	// Concurrent is how many runs of the agent's provider run at once on
	// this supervisor; Queue how many may wait.
	Concurrent int `json:"concurrent"`
	Queue      int `json:"queue"`
	// DLP is the egress proxy's data-loss prevention policy ("" when off).
	DLP string `json:"dlp,omitempty"`
}

// agentLimits derives an agent's limits.
func (s *Supervisor) agentLimits(a *engine.Agent, provider string) AgentLimits {
	l := a.Limits()
	cfg := a.Config().Config
	out := AgentLimits{MemoryBytes: l.MemoryBytes, PIDs: l.PIDs, CPUPercent: l.CPUPercent, WorkdirBytes: l.WorkdirBytes,
		DeadlineMS: float64(l.Deadline.Milliseconds()), LogBytes: l.LogBytes, Concurrent: max(s.limits[provider], 1), Queue: s.o.QueueSize}
	if cfg.MicroVM != nil {
		out.VCPUs, out.MemMB = cfg.MicroVM.Resources.VCPUs, cfg.MicroVM.Resources.MemMB
	}
	if cfg.Orchestrator.DLP.Enabled {
		out.DLP = string(cfg.Orchestrator.DLP.Policy)
	}
	return out
}
