package supervisor

import (
	"bytes"
	"context"
	"crypto/x509"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/ccos-project/ccos/engine"
	"github.com/ccos-project/ccos/governance"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// MaxSubmission bounds a submission's JSON body.
const MaxSubmission = 2 << 20

// OpenAPI is the API's OpenAPI 3.1 document (openapi.json in this
// package), served at GET /v1/openapi.json.
//
//go:embed openapi.json
var OpenAPI []byte

// Route is one route of the API.
type Route struct {
	Method, Pattern string
	// Admin routes are the Unix socket's only: an agent's certificate
	// cannot reach them.
	Admin   bool
	handler func(*Supervisor, http.ResponseWriter, *http.Request)
}

// Routes are the API's routes; the OpenAPI document describes exactly
// these (a test checks both ways).
var Routes = []Route{
	{"POST", "/v1/agents/{agent}/runs", false, (*Supervisor).handleSubmit},
	{"GET", "/v1/agents", false, (*Supervisor).handleAgents},
	{"GET", "/v1/runs", false, (*Supervisor).handleList},
	{"GET", "/v1/runs/{id}", false, (*Supervisor).handleGet},
	{"GET", "/v1/runs/{id}/events", false, (*Supervisor).handleEvents},
	{"POST", "/v1/runs/{id}/cancel", false, (*Supervisor).handleCancel},
	{"GET", "/v1/runs/{id}/receipt", false, (*Supervisor).handleReceipt},
	{"GET", "/v1/health", false, (*Supervisor).handleHealth},
	{"GET", "/v1/openapi.json", false, func(_ *Supervisor, w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Write(OpenAPI)
	}},
}

// Identity is who a request comes from: the Unix socket's peer (the
// operator: every agent) or a client certificate naming one agent.
type Identity struct {
	// Agent is the agent a client certificate names; "" for the operator.
	Agent string
}

// Operator reports whether the identity may act for every agent.
func (id Identity) Operator() bool { return id.Agent == "" }

// may reports whether the identity may act for agent.
func (id Identity) may(agent string) bool { return id.Operator() || id.Agent == agent }

type identityKey struct{}

// identityOf returns who a request comes from. A request over TLS needs a
// verified client certificate, whose subject common name is the agent it
// acts for; any other request came over the Unix socket, whose file mode
// let only the operator connect.
func identityOf(r *http.Request) (Identity, error) {
	if r.TLS == nil {
		return Identity{}, nil
	}
	if len(r.TLS.VerifiedChains) == 0 || len(r.TLS.VerifiedChains[0]) == 0 {
		return Identity{}, errors.New("no verified client certificate")
	}
	return IdentityOfCert(r.TLS.VerifiedChains[0][0])
}

// IdentityOfCert is the identity a client certificate carries: its
// subject common name names the agent.
func IdentityOfCert(c *x509.Certificate) (Identity, error) {
	if c.Subject.CommonName == "" {
		return Identity{}, errors.New("the client certificate's subject has no common name (it must name the agent)")
	}
	return Identity{Agent: c.Subject.CommonName}, nil
}

func identity(r *http.Request) Identity {
	id, _ := r.Context().Value(identityKey{}).(Identity)
	return id
}

// Handler returns the API's HTTP handler; gatherer serves /metrics (nil:
// no metrics route). The same handler serves the Unix socket and the
// mTLS listener: the identity decides what a request may see.
func (s *Supervisor) Handler(gatherer prometheus.Gatherer) http.Handler {
	mux := http.NewServeMux()
	for _, rt := range Routes {
		rt := rt
		mux.HandleFunc(rt.Method+" "+rt.Pattern, func(w http.ResponseWriter, r *http.Request) {
			id, err := identityOf(r)
			if err != nil {
				writeError(w, http.StatusUnauthorized, "unauthorized", err)
				return
			}
			if rt.Admin && !id.Operator() {
				writeError(w, http.StatusForbidden, "forbidden", errors.New("this route is the operator's"))
				return
			}
			rt.handler(s, w, r.WithContext(context.WithValue(r.Context(), identityKey{}, id)))
		})
	}
	if gatherer != nil {
		mux.Handle("GET /metrics", promhttp.HandlerFor(gatherer, promhttp.HandlerOpts{}))
	}
	return checkHost(mux)
}

// checkHost refuses a request over the Unix socket whose Host header is not
// a local name. The socket is the operator's; an operator who forwards it
// to a local TCP port for the console must not let a web page of another
// origin reach the API through that port by rebinding its own name to
// 127.0.0.1 (the browser then sends the page's name as Host). Requests
// over TLS are authenticated by their client certificate instead.
func checkHost(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.TLS == nil && !localHost(r.Host) {
			writeError(w, http.StatusMisdirectedRequest, "forbidden", fmt.Errorf("host %q is not a local name: the supervisor's socket answers only localhost, 127.0.0.1, [::1] and supervisor", r.Host))
			return
		}
		next.ServeHTTP(w, r)
	})
}

func localHost(hostport string) bool {
	host := hostport
	if h, _, err := net.SplitHostPort(hostport); err == nil {
		host = h
	}
	switch strings.ToLower(strings.Trim(host, "[]")) {
	case "", "localhost", "127.0.0.1", "::1", "supervisor":
		return true
	}
	return false
}

// ErrorBody is the body of every error answer.
type ErrorBody struct {
	Error string `json:"error"`
	// Kind is bad-request, unauthorized, forbidden, not-found,
	// not-admitted, queue-full, conflict, unavailable or failed.
	Kind string `json:"kind"`
	// Reasons are every reason a plan was not admitted.
	Reasons []Reason `json:"reasons,omitempty"`
}

// Reason is one reason a plan was refused.
type Reason struct {
	Rule    string `json:"rule,omitempty"`
	Step    string `json:"step,omitempty"`
	Value   string `json:"value,omitempty"`
	Message string `json:"message"`
	Hint    string `json:"hint,omitempty"`
	Where   string `json:"where,omitempty"`
}

func (s *Supervisor) handleSubmit(w http.ResponseWriter, r *http.Request) {
	agent := r.PathValue("agent")
	if !identity(r).may(agent) {
		writeError(w, http.StatusForbidden, "forbidden", fmt.Errorf("this client's certificate names agent %s, not %s", identity(r).Agent, agent))
		return
	}
	sub, err := DecodeSubmission(http.MaxBytesReader(w, r.Body, MaxSubmission))
	if err != nil {
		writeError(w, http.StatusBadRequest, "bad-request", err)
		return
	}
	run, err := s.Submit(r.Context(), agent, sub)
	var ae *engine.AdmissionError
	switch {
	case errors.As(err, &ae):
		writeJSON(w, http.StatusUnprocessableEntity, ErrorBody{Error: err.Error(), Kind: "not-admitted", Reasons: reasonsOf(ae)})
	case errors.Is(err, ErrUnknownAgent):
		writeError(w, http.StatusNotFound, "not-found", err)
	case errors.Is(err, ErrQueueFull):
		w.Header().Set("Retry-After", "1")
		writeError(w, http.StatusTooManyRequests, "queue-full", err)
	case errors.Is(err, ErrStopped):
		writeError(w, http.StatusServiceUnavailable, "unavailable", err)
	case err != nil:
		writeError(w, http.StatusInternalServerError, "failed", err)
	default:
		w.Header().Set("Location", "/v1/runs/"+run.ID)
		writeJSON(w, http.StatusAccepted, run)
	}
}

func (s *Supervisor) handleAgents(w http.ResponseWriter, r *http.Request) {
	var out []AgentInfo
	for _, info := range s.Agents() {
		if identity(r).may(info.Agent) {
			out = append(out, info)
		}
	}
	writeJSON(w, http.StatusOK, map[string]any{"agents": orEmpty(out)})
}

func orEmpty[T any](xs []T) []T {
	if xs == nil {
		return []T{}
	}
	return xs
}

func (s *Supervisor) handleList(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	f := Filter{Agent: q.Get("agent"), Before: q.Get("before")}
	if id := identity(r); !id.Operator() {
		if f.Agent != "" && f.Agent != id.Agent {
			writeError(w, http.StatusForbidden, "forbidden", fmt.Errorf("this client's certificate names agent %s", id.Agent))
			return
		}
		f.Agent = id.Agent
	}
	if st := q.Get("status"); st != "" {
		status, err := ParseStatus(st)
		if err != nil {
			writeError(w, http.StatusBadRequest, "bad-request", err)
			return
		}
		f.Status = status
	}
	if l := q.Get("limit"); l != "" {
		n, err := strconv.Atoi(l)
		if err != nil || n < 1 || n > 1000 {
			writeError(w, http.StatusBadRequest, "bad-request", fmt.Errorf("limit %q: want 1 to 1000", l))
			return
		}
		f.Limit = n
	}
	runs, next, err := s.List(r.Context(), f)
	if err != nil {
		writeError(w, http.StatusBadRequest, "bad-request", err)
		return
	}
	writeJSON(w, http.StatusOK, RunList{Runs: orEmpty(runs), Next: next})
}

// RunList is a page of runs.
type RunList struct {
	Runs []*Run `json:"runs"`
	// Next is the cursor of the next page (the before parameter); empty
	// at the end.
	Next string `json:"next,omitempty"`
}

// visibleRun returns the run if the request's identity may see it.
func (s *Supervisor) visibleRun(w http.ResponseWriter, r *http.Request) (*Run, bool) {
	run, err := s.Get(r.Context(), r.PathValue("id"))
	if errors.Is(err, ErrNotFound) || (err == nil && !identity(r).may(run.Agent)) {
		writeError(w, http.StatusNotFound, "not-found", fmt.Errorf("no run %s", r.PathValue("id")))
		return nil, false
	}
	if err != nil {
		writeError(w, http.StatusInternalServerError, "failed", err)
		return nil, false
	}
	return run, true
}

func (s *Supervisor) handleGet(w http.ResponseWriter, r *http.Request) {
	if run, ok := s.visibleRun(w, r); ok {
		writeJSON(w, http.StatusOK, run)
	}
}

func (s *Supervisor) handleCancel(w http.ResponseWriter, r *http.Request) {
	if _, ok := s.visibleRun(w, r); !ok {
		return
	}
	run, err := s.Cancel(r.Context(), r.PathValue("id"))
	switch {
	case errors.Is(err, ErrFinal):
		writeError(w, http.StatusConflict, "conflict", err)
	case err != nil:
		writeError(w, http.StatusInternalServerError, "failed", err)
	default:
		writeJSON(w, http.StatusAccepted, run)
	}
}

func (s *Supervisor) handleReceipt(w http.ResponseWriter, r *http.Request) {
	run, ok := s.visibleRun(w, r)
	if !ok {
		return
	}
	env, err := s.Receipt(r.Context(), run.ID)
	switch {
	case err != nil:
		writeError(w, http.StatusInternalServerError, "failed", err)
	case env == nil:
		writeError(w, http.StatusNotFound, "not-found", fmt.Errorf("run %s has no receipt (it is not over, or its agent's chain has no signing key)", run.ID))
	default:
		w.Header().Set("Content-Type", "application/json")
		w.Write(env)
	}
}

func (s *Supervisor) handleHealth(w http.ResponseWriter, r *http.Request) {
	h := s.Health(r.Context())
	code := http.StatusOK
	if h.Status != "ok" {
		code = http.StatusServiceUnavailable
	}
	writeJSON(w, code, h)
}

// handleEvents streams a run's events as Server-Sent Events: every event
// after Last-Event-ID (or the last_event_id parameter), live while the run
// is in progress, then an "end" event with the run's final status.
func (s *Supervisor) handleEvents(w http.ResponseWriter, r *http.Request) {
	run, ok := s.visibleRun(w, r)
	if !ok {
		return
	}
	after := 0
	if v := r.Header.Get("Last-Event-ID"); v != "" {
		after, _ = strconv.Atoi(v)
	} else if v := r.URL.Query().Get("last_event_id"); v != "" {
		after, _ = strconv.Atoi(v)
	}
	fl, ok := w.(http.Flusher)
	if !ok {
		writeError(w, http.StatusInternalServerError, "failed", errors.New("streaming is not supported on this connection"))
		return
	}
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	send := func(seq int, data []byte) {
		fmt.Fprintf(w, "id: %d\nevent: run\ndata: %s\n\n", seq, data)
	}
	ctx := r.Context()
	// Stored events first (all of them for a finished run), then the live
	// ones from the run's hub.
	for {
		evs, err := s.o.Store.events(ctx, run.ID, after, 500)
		if err != nil || len(evs) == 0 {
			break
		}
		for _, e := range evs {
			send(e.Seq, e.Data)
			after = e.Seq
		}
		fl.Flush()
	}
	keepalive := time.NewTicker(15 * time.Second)
	defer keepalive.Stop()
	h := s.awaitHub(ctx, run.ID, func() { io.WriteString(w, ": keep-alive\n\n"); fl.Flush() }, keepalive.C)
	for h != nil {
		seqs, data, done, changed := h.since(after)
		for i := range seqs {
			send(seqs[i], data[i])
			after = seqs[i]
		}
		fl.Flush()
		if done {
			break
		}
		select {
		case <-changed:
		case <-keepalive.C:
			io.WriteString(w, ": keep-alive\n\n")
			fl.Flush()
		case <-ctx.Done():
			return
		}
	}
	// The run may have ended between the reads: catch up from the store.
	if evs, err := s.o.Store.events(ctx, run.ID, after, 1<<30); err == nil {
		for _, e := range evs {
			send(e.Seq, e.Data)
		}
	}
	if final, err := s.Get(ctx, run.ID); err == nil {
		b, _ := json.Marshal(map[string]any{"run_id": final.ID, "status": final.Status})
		fmt.Fprintf(w, "event: end\ndata: %s\n\n", b)
	}
	fl.Flush()
}

// DecodeSubmission reads one submission strictly: one JSON object, no
// unknown fields, a non-empty plan, at most 16 approvals.
func DecodeSubmission(r io.Reader) (Submission, error) {
	var sub Submission
	dec := json.NewDecoder(r)
	dec.DisallowUnknownFields()
	if err := dec.Decode(&sub); err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return sub, fmt.Errorf("submission larger than %d bytes", mbe.Limit)
		}
		return sub, fmt.Errorf("submission: %w", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return sub, errors.New("submission: data after the JSON object")
	}
	if sub.Plan == "" {
		return sub, errors.New("submission: \"plan\" is empty")
	}
	if len(sub.Plan) > engine.MaxPlanBytes {
		return sub, fmt.Errorf("submission: the plan is larger than %d bytes", engine.MaxPlanBytes)
	}
	if len(sub.Approvals) > engine.MaxApprovals {
		return sub, fmt.Errorf("submission: more than %d approvals", engine.MaxApprovals)
	}
	if len(sub.File) > 256 {
		return sub, errors.New("submission: \"file\" longer than 256 bytes")
	}
	switch sub.Isolation {
	case "", "wasm", "container", "microvm":
	default:
		return sub, fmt.Errorf("submission: isolation %q: want wasm, container or microvm", sub.Isolation)
	}
	return sub, nil
}

func writeError(w http.ResponseWriter, code int, kind string, err error) {
	writeJSON(w, code, ErrorBody{Error: err.Error(), Kind: kind})
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		code = http.StatusInternalServerError
		buf.Reset()
		fmt.Fprintf(&buf, "{\"error\":%q,\"kind\":\"failed\"}\n", err.Error())
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	w.Write(buf.Bytes())
}

// reasonsOf lists an admission error's reasons.
func reasonsOf(ae *engine.AdmissionError) []Reason {
	var rs governance.Rejections
	if !errors.As(ae.Err, &rs) {
		return []Reason{{Message: ae.Err.Error()}}
	}
	out := make([]Reason, 0, len(rs))
	for _, r := range rs {
		x := Reason{Rule: fmt.Sprint(r.Rule), Step: r.Step, Value: r.Value, Message: r.Msg, Hint: r.Hint}
		if !r.Span.IsZero() {
			x.Where = r.Span.String()
		}
		out = append(out, x)
	}
	return out
}
