package supervisor

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// MaxSubmission bounds a submission's JSON body.
const MaxSubmission = 1 << 20

// Handler returns the control plane's HTTP handler; gatherer serves
// /metrics (nil: no metrics route).
func (s *Supervisor) Handler(gatherer prometheus.Gatherer) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/plans", s.handleSubmit)
	mux.HandleFunc("GET /v1/health", func(w http.ResponseWriter, _ *http.Request) {
		h := s.Health()
		code := http.StatusOK
		if h.Status != "ok" {
			code = http.StatusServiceUnavailable
		}
		writeJSON(w, code, h)
	})
	if gatherer != nil {
		mux.Handle("GET /metrics", promhttp.HandlerFor(gatherer, promhttp.HandlerOpts{}))
	}
	return mux
}

// ErrorBody is the body of every error answer.
type ErrorBody struct {
	Error string `json:"error"`
	// Kind is "bad-request", "not-admitted", "failed" or "stopped".
	Kind string `json:"kind"`
}

func (s *Supervisor) handleSubmit(w http.ResponseWriter, r *http.Request) {
	sub, err := DecodeSubmission(http.MaxBytesReader(w, r.Body, MaxSubmission))
	if err != nil {
		writeJSON(w, http.StatusBadRequest, ErrorBody{Error: err.Error(), Kind: "bad-request"})
		return
	}
	res, err := s.Submit(r.Context(), sub)
	var ae *AdmissionError
	switch {
	case errors.As(err, &ae):
		writeJSON(w, http.StatusUnprocessableEntity, ErrorBody{Error: err.Error(), Kind: "not-admitted"})
	case errors.Is(err, ErrStopped):
		writeJSON(w, http.StatusServiceUnavailable, ErrorBody{Error: err.Error(), Kind: "stopped"})
	case err != nil:
		writeJSON(w, http.StatusBadGateway, ErrorBody{Error: err.Error(), Kind: "failed"})
	default:
		writeJSON(w, http.StatusOK, res)
	}
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
	if len(sub.Approvals) > 16 {
		return sub, errors.New("submission: more than 16 approvals")
	}
	if len(sub.File) > 256 {
		return sub, errors.New("submission: \"file\" longer than 256 bytes")
	}
	return sub, nil
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
