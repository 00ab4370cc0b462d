package egress

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/netip"
)

// CurrentStep returns the name of the step programmed for agent, if any.
func (p *Proxy) CurrentStep(agent string) (string, bool) {
	st := p.agent(agent)
	if st == nil {
		return "", false
	}
	s := st.step.Load()
	if s == nil {
		return "", false
	}
	return s.acl.name, true
}

// StepRequest is the body of PUT /v1/agents/{agent}/step on the control
// API: the StepACL of the step the agent enters.
type StepRequest struct {
	Step    string   `json:"step"`
	Domains []string `json:"domains"`
	Methods []string `json:"methods,omitempty"`
	Ranges  []string `json:"ranges,omitempty"`
	Rate    float64  `json:"rate,omitempty"`
	Burst   int      `json:"burst,omitempty"`
}

// maxControlBody bounds a control request; a step ACL is small.
const maxControlBody = 1 << 20

// ControlHandler is the proxy's control API, for a host whose proxy runs
// in another process (spec 19 §5: "per-step domain/method whitelist sent to
// proxy via control API"). Serve it only where the host alone can reach it,
// such as a Unix socket of mode 0600; never on the listener sandboxes use.
//
//	PUT    /v1/agents/{agent}/step  StepRequest -> 204; 409 if it would widen the agent's ACL
//	DELETE /v1/agents/{agent}/step  -> 204
//	GET    /v1/agents/{agent}/step  -> 200 {"step": name} or 404
//
// Unknown agents are 404; malformed or unknown JSON fields are 400.
func (p *Proxy) ControlHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("PUT /v1/agents/{agent}/step", func(w http.ResponseWriter, r *http.Request) {
		agent := r.PathValue("agent")
		var req StepRequest
		dec := json.NewDecoder(io.LimitReader(r.Body, maxControlBody))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&req); err != nil {
			http.Error(w, "egress control: "+err.Error(), http.StatusBadRequest)
			return
		}
		if dec.More() {
			http.Error(w, "egress control: one JSON object per request", http.StatusBadRequest)
			return
		}
		acl := StepACL{Domains: req.Domains, Methods: req.Methods, Rate: req.Rate, Burst: req.Burst}
		for _, s := range req.Ranges {
			pr, err := netip.ParsePrefix(s)
			if err != nil {
				http.Error(w, fmt.Sprintf("egress control: range %q: %v", s, err), http.StatusBadRequest)
				return
			}
			acl.Ranges = append(acl.Ranges, pr)
		}
		err := p.SetStep(agent, req.Step, acl)
		switch {
		case err == nil:
			w.WriteHeader(http.StatusNoContent)
		case errors.Is(err, ErrUnknownAgent):
			http.Error(w, err.Error(), http.StatusNotFound)
		case errors.Is(err, ErrWiden):
			http.Error(w, err.Error(), http.StatusConflict)
		default:
			http.Error(w, err.Error(), http.StatusBadRequest)
		}
	})
	mux.HandleFunc("DELETE /v1/agents/{agent}/step", func(w http.ResponseWriter, r *http.Request) {
		agent := r.PathValue("agent")
		if p.agent(agent) == nil {
			http.Error(w, "egress control: unknown agent "+agent, http.StatusNotFound)
			return
		}
		p.ClearStep(agent)
		w.WriteHeader(http.StatusNoContent)
	})
	mux.HandleFunc("GET /v1/agents/{agent}/step", func(w http.ResponseWriter, r *http.Request) {
		step, ok := p.CurrentStep(r.PathValue("agent"))
		if !ok {
			http.Error(w, "egress control: no step", http.StatusNotFound)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]string{"step": step})
	})
	return mux
}
