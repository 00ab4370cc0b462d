package receipt

import (
	"encoding/hex"
	"errors"
	"fmt"
)

// StatementType is the in-toto Statement v1 type.
const StatementType = "https://in-toto.io/Statement/v1"

// PredicateType is the predicate type of a ccos run receipt, version 1.
// It names the format specified in the package comment.
const PredicateType = "https://github.com/ccos-project/ccos/receipt/v1"

// Subject names of a receipt's subjects.
const (
	SubjectPlan  = "plan"
	SubjectValue = "value"
)

// Statement is an in-toto Statement v1 whose predicate is a run receipt.
type Statement struct {
	Type          string    `json:"_type"`
	Subject       []Subject `json:"subject"`
	PredicateType string    `json:"predicateType"`
	Predicate     Predicate `json:"predicate"`
}

// Subject is an in-toto resource descriptor: a name and its digests.
type Subject struct {
	Name   string            `json:"name"`
	Digest map[string]string `json:"digest"`
}

// Predicate is what a run did, as its host recorded it in the causal
// chain.
type Predicate struct {
	Run         Run          `json:"run"`
	Attestation *Attestation `json:"attestation,omitempty"`
	Steps       []Step       `json:"steps"`
	Egress      []Egress     `json:"egress"`
	Chain       ChainProof   `json:"chain"`
}

// Run is the run as a whole.
type Run struct {
	Session       string `json:"session"`
	Plan          string `json:"plan"`
	PlanHash      string `json:"plan_hash"`
	Agent         string `json:"agent"`
	ConfigDigest  string `json:"config_digest"`
	SecurityLevel string `json:"security_level"`
	RiskTier      string `json:"risk_tier"`
	Policy        string `json:"policy"`
	Isolation     string `json:"isolation"`
	Provider      string `json:"provider"`
	// Sandboxes is how many sandboxes the run started (more than one when
	// a crashed sandbox was replaced).
	Sandboxes int    `json:"sandboxes"`
	Started   string `json:"started"`  // RFC 3339 (UTC, ns) host time of the run's first event
	Finished  string `json:"finished"` // of its last event
	OK        bool   `json:"ok"`
	Failure   string `json:"failure,omitempty"`
	// ValueSHA256 is the hex SHA-256 of the RTFS text of the value the
	// guest reported (also the value subject).
	ValueSHA256 string `json:"value_sha256,omitempty"`
	// PlanError is the guest's report of the plan's error, if any.
	PlanError *PlanError `json:"plan_error,omitempty"`
}

// PlanError is the error the guest reported for the plan.
type PlanError struct {
	Type    string `json:"type"`
	Message string `json:"message"`
}

// Attestation is the host's last verdict on what the sandbox booted.
type Attestation struct {
	Verdict      string            `json:"verdict"`
	Measurements map[string]string `json:"measurements"`
}

// Step is one admitted step: its profile and how it went.
type Step struct {
	Name    string  `json:"name"`
	Profile Profile `json:"profile"`
	// Outcome is "ok" or "failed" (the guest's account of the step's last
	// attempt), "unfinished" (entered, never ended) or "not-run".
	Outcome    string `json:"outcome"`
	Error      string `json:"error,omitempty"`
	Attempts   int    `json:"attempts"`
	DurationMS int64  `json:"duration_ms"`
	// Calls is how many capability calls the host ran for the step.
	Calls int `json:"calls"`
}

// Profile is a step's admitted profile.
type Profile struct {
	Capabilities []string `json:"capabilities"`
	Domains      []string `json:"domains"`
	Methods      []string `json:"methods"`
	MaxTimeMS    int64    `json:"max_time_ms"`
	Retry        int64    `json:"retry"`
	Seed         string   `json:"seed,omitempty"`
	Dynamic      bool     `json:"dynamic"`
}

// Egress is one decision of the egress proxy: no bodies, no headers, no
// reasons (which may quote request data).
type Egress struct {
	Seq    uint64 `json:"seq"`
	Step   string `json:"step"`
	Action string `json:"action"`
	Kind   string `json:"kind"`
	Method string `json:"method"`
	Host   string `json:"host"`
	Port   int64  `json:"port"`
	Rule   string `json:"rule"`
	Status int64  `json:"status,omitempty"`
}

// ChainProof ties the receipt to the causal chain: the run's events are
// FirstSeq..LastSeq (Events of them belong to the run), LastLeafHash is
// the RFC 6962 leaf hash of event LastSeq, and InclusionProof proves it in
// the tree that Checkpoint (a signed note) commits to.
type ChainProof struct {
	Checkpoint     string   `json:"checkpoint"`
	FirstSeq       uint64   `json:"first_seq"`
	LastSeq        uint64   `json:"last_seq"`
	Events         int      `json:"events"`
	LastLeafHash   string   `json:"last_leaf_hash"`
	InclusionProof []string `json:"inclusion_proof"`
}

// ErrStatement is wrapped by every malformed-statement error.
var ErrStatement = errors.New("receipt: malformed statement")

// ParseStatement decodes a statement strictly: known fields only, the
// in-toto v1 type, this package's predicate type, and subjects with hex
// SHA-256 digests.
func ParseStatement(data []byte) (*Statement, error) {
	var st Statement
	if err := decodeStrict(data, &st); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrStatement, err)
	}
	if st.Type != StatementType {
		return nil, fmt.Errorf("%w: _type %q, want %q", ErrStatement, st.Type, StatementType)
	}
	if st.PredicateType != PredicateType {
		return nil, fmt.Errorf("%w: predicateType %q, want %q", ErrStatement, st.PredicateType, PredicateType)
	}
	if len(st.Subject) == 0 {
		return nil, fmt.Errorf("%w: no subject", ErrStatement)
	}
	for i, s := range st.Subject {
		d, ok := s.Digest["sha256"]
		if !ok || len(s.Digest) != 1 {
			return nil, fmt.Errorf("%w: subject %d: want exactly a sha256 digest", ErrStatement, i+1)
		}
		if b, err := hex.DecodeString(d); err != nil || len(b) != 32 || hex.EncodeToString(b) != d {
			return nil, fmt.Errorf("%w: subject %d: sha256 digest %q is not 64 lower-case hex digits", ErrStatement, i+1, d)
		}
	}
	return &st, nil
}
