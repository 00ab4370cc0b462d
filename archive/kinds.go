package archive

import (
	"encoding/json"
	"errors"
	"fmt"
)

// The "kind" members of the typed objects this package stores.
const (
	KindPlan        = "ccos.plan"
	KindCheckpoint  = "ccos.checkpoint"
	KindIntent      = "ccos.intent"
	KindIntentGraph = "ccos.intent-graph"
	KindReceipt     = "ccos.receipt"
)

// ErrWrongKind is a typed Get of an object of another kind.
var ErrWrongKind = errors.New("archive: object is of another kind")

// ErrInvalid is a typed object that misses a required field.
var ErrInvalid = errors.New("archive: invalid object")

// Plan is an admitted plan as archived: its source text, name and steps.
// Stored as {"kind":"ccos.plan","name":...,"source":...,"steps":[...]}
// (plus "file" when known).
type Plan struct {
	Name   string   `json:"name"`
	Source string   `json:"source"`
	Steps  []string `json:"steps"`
	File   string   `json:"file,omitempty"`
}

type planRecord struct {
	Kind string `json:"kind"`
	Plan
}

// PutPlan stores p and returns its hash. The source is required.
func (a *Archive) PutPlan(p Plan) (string, error) {
	if p.Source == "" {
		return "", fmt.Errorf("%w: plan %q has no source text", ErrInvalid, p.Name)
	}
	if p.Steps == nil {
		p.Steps = []string{}
	}
	return a.PutValue(planRecord{Kind: KindPlan, Plan: p})
}

// GetPlan returns the plan stored as h.
func (a *Archive) GetPlan(h string) (*Plan, error) {
	var r planRecord
	if err := a.getKind(h, KindPlan, &r); err != nil {
		return nil, err
	}
	return &r.Plan, nil
}

// Checkpoint is a signed checkpoint of the causal chain, kept as the opaque
// text of the signed note, with the hash of the archived plan it belongs to
// (optional). Stored as {"kind":"ccos.checkpoint","note":...,"plan":...}.
type Checkpoint struct {
	Note string `json:"note"`
	Plan string `json:"plan,omitempty"`
}

type checkpointRecord struct {
	Kind string `json:"kind"`
	Checkpoint
}

// PutCheckpoint stores c and returns its hash. The note is required; Plan,
// if set, must be a hash.
func (a *Archive) PutCheckpoint(c Checkpoint) (string, error) {
	if c.Note == "" {
		return "", fmt.Errorf("%w: checkpoint without note text", ErrInvalid)
	}
	if c.Plan != "" && !ValidHash(c.Plan) {
		return "", fmt.Errorf("%w: checkpoint plan %q", ErrBadHash, c.Plan)
	}
	return a.PutValue(checkpointRecord{Kind: KindCheckpoint, Checkpoint: c})
}

// GetCheckpoint returns the checkpoint stored as h.
func (a *Archive) GetCheckpoint(h string) (*Checkpoint, error) {
	var r checkpointRecord
	if err := a.getKind(h, KindCheckpoint, &r); err != nil {
		return nil, err
	}
	return &r.Checkpoint, nil
}

// Receipt is a run's signed receipt (a DSSE envelope, kept as its exact
// text), with the run id and the hash of the archived plan (optional).
// Stored as {"kind":"ccos.receipt","envelope":...,"run":...,"plan":...}.
type Receipt struct {
	Envelope string `json:"envelope"`
	Run      string `json:"run"`
	Plan     string `json:"plan,omitempty"`
}

type receiptRecord struct {
	Kind string `json:"kind"`
	Receipt
}

// PutReceipt stores r and returns its hash. The envelope and run are
// required; Plan, if set, must be a hash.
func (a *Archive) PutReceipt(r Receipt) (string, error) {
	if r.Envelope == "" || r.Run == "" {
		return "", fmt.Errorf("%w: receipt without envelope or run", ErrInvalid)
	}
	if r.Plan != "" && !ValidHash(r.Plan) {
		return "", fmt.Errorf("%w: receipt plan %q", ErrBadHash, r.Plan)
	}
	return a.PutValue(receiptRecord{Kind: KindReceipt, Receipt: r})
}

// GetReceipt returns the receipt stored as h.
func (a *Archive) GetReceipt(h string) (*Receipt, error) {
	var r receiptRecord
	if err := a.getKind(h, KindReceipt, &r); err != nil {
		return nil, err
	}
	return &r.Receipt, nil
}

func (a *Archive) getKind(h, kind string, v any) error {
	data, err := a.Get(h)
	if err != nil {
		return err
	}
	if k := kindOf(data); k != kind {
		return fmt.Errorf("%w: %s is %q, not %q", ErrWrongKind, h, k, kind)
	}
	if err := json.Unmarshal(data, v); err != nil {
		return fmt.Errorf("archive: decoding %s: %w", h, err)
	}
	return nil
}

// Intent is one node of the intent graph. Members of its JSON form that
// this version does not know are kept in Extra and written back unchanged,
// so that a newer producer's fields survive a restore and a backup.
type Intent struct {
	ID   string `json:"id"`
	Goal string `json:"goal"`
	// Constraints are free-form JSON values by name.
	Constraints map[string]json.RawMessage `json:"constraints,omitempty"`
	// Status is free text, such as "active", "completed" or "failed".
	Status string `json:"status,omitempty"`
	// Created is the creation time in Unix seconds.
	Created  int64                      `json:"created,omitempty"`
	Metadata map[string]json.RawMessage `json:"metadata,omitempty"`
	// Extra holds the unknown members, by name.
	Extra map[string]json.RawMessage `json:"-"`
}

var intentKnown = []string{"id", "goal", "constraints", "status", "created", "metadata"}

type intentFields Intent // Intent without its methods

// MarshalJSON writes the known members and the Extra ones (a known name in
// Extra is ignored).
func (i Intent) MarshalJSON() ([]byte, error) {
	return marshalWithExtra(intentFields(i), i.Extra, intentKnown)
}

// UnmarshalJSON reads the known members and keeps the others in Extra.
func (i *Intent) UnmarshalJSON(data []byte) error {
	var f intentFields
	extra, err := unmarshalWithExtra(data, &f, intentKnown)
	if err != nil {
		return fmt.Errorf("intent: %w", err)
	}
	*i = Intent(f)
	i.Extra = extra
	return nil
}

// Edge is a directed, typed edge of the intent graph, such as
// {"from":"a","to":"b","edge_type":"DependsOn"}. Decoding also accepts
// "type" for "edge_type". Unknown members are kept in Extra.
type Edge struct {
	From     string                     `json:"from"`
	To       string                     `json:"to"`
	Type     string                     `json:"edge_type"`
	Weight   *float64                   `json:"weight,omitempty"`
	Metadata map[string]json.RawMessage `json:"metadata,omitempty"`
	Extra    map[string]json.RawMessage `json:"-"`
}

var edgeKnown = []string{"from", "to", "edge_type", "type", "weight", "metadata"}

type edgeFields Edge

// MarshalJSON writes the known members and the Extra ones.
func (e Edge) MarshalJSON() ([]byte, error) {
	return marshalWithExtra(edgeFields(e), e.Extra, edgeKnown)
}

// UnmarshalJSON reads the known members and keeps the others in Extra.
func (e *Edge) UnmarshalJSON(data []byte) error {
	var f struct {
		edgeFields
		Alias string `json:"type"`
	}
	extra, err := unmarshalWithExtra(data, &f, edgeKnown)
	if err != nil {
		return fmt.Errorf("edge: %w", err)
	}
	*e = Edge(f.edgeFields)
	if e.Type == "" {
		e.Type = f.Alias
	}
	e.Extra = extra
	return nil
}

func marshalWithExtra(known any, extra map[string]json.RawMessage, names []string) ([]byte, error) {
	raw, err := json.Marshal(known)
	if err != nil || len(extra) == 0 {
		return raw, err
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(raw, &m); err != nil {
		return nil, err
	}
	for k, v := range extra {
		if !contains(names, k) {
			m[k] = v
		}
	}
	return json.Marshal(m)
}

// unmarshalWithExtra decodes the members named in names into known and
// returns the others. Names match exactly, as in the upstream format (a
// member "Goal" is unknown, not "goal"), unlike encoding/json's own
// case-insensitive matching.
func unmarshalWithExtra(data []byte, known any, names []string) (map[string]json.RawMessage, error) {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(data, &m); err != nil {
		return nil, err
	}
	if m == nil {
		return nil, errors.New("want an object, got null")
	}
	var extra map[string]json.RawMessage
	for k, v := range m {
		if !contains(names, k) {
			if extra == nil {
				extra = map[string]json.RawMessage{}
			}
			extra[k] = v
			delete(m, k)
		}
	}
	raw, err := json.Marshal(m)
	if err != nil {
		return nil, err
	}
	if err := json.Unmarshal(raw, known); err != nil {
		return nil, err
	}
	return extra, nil
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
