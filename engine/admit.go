package engine

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"sync"

	"github.com/ccos-project/ccos/config"
	"github.com/ccos-project/ccos/governance"
	"github.com/ccos-project/ccos/plan"
)

// PlanInput is a plan as a front end receives it.
type PlanInput struct {
	// Source is the plan's RTFS text; File names it in diagnostics.
	Source []byte
	File   string
	// Approvals are approval texts (from `ccos plan approve`).
	Approvals []string
	// Isolation, when set, is the isolation the run needs: at least the
	// config's mode; a stronger one admits and runs the plan under it.
	Isolation config.IsolationMode
}

// MaxPlanBytes bounds a plan's text.
const MaxPlanBytes = 1 << 20

// MaxApprovals bounds the approvals of one plan.
const MaxApprovals = 16

// Admitted is a plan the governance kernel admitted for an agent.
type Admitted struct {
	Plan      *plan.Plan
	Admission *governance.Admission
	// Context is the security context it was admitted in.
	Context governance.RuntimeContext
	// CacheHit is set when the admission came from the agent's cache.
	CacheHit bool
}

// AdmissionError is a plan that was not admitted: it does not read
// (Stage "plan"), an approval does not parse ("approval"), or the
// governance kernel refused it ("admission", Err a governance.Rejections
// with every reason).
type AdmissionError struct {
	Stage string
	File  string
	Err   error
}

func (e *AdmissionError) Error() string {
	switch e.Stage {
	case "admission":
		return fmt.Sprintf("plan %s was not admitted:\n%v", e.File, e.Err)
	case "approval":
		return fmt.Sprintf("plan %s: %v", e.File, e.Err)
	}
	return e.Err.Error()
}

func (e *AdmissionError) Unwrap() error { return e.Err }

// Admit reads a plan and asks the governance kernel to admit it under the
// agent's config and security context: the one admission entry point of
// every front end. The same plan text, file name, approvals and isolation
// are admitted once (a bounded cache).
func (a *Agent) Admit(in PlanInput) (*Admitted, error) {
	file := in.File
	if file == "" {
		file = "<plan>"
	}
	if len(in.Source) > MaxPlanBytes {
		return nil, &AdmissionError{Stage: "plan", File: file, Err: fmt.Errorf("plan %s is larger than %d bytes", file, MaxPlanBytes)}
	}
	if len(in.Approvals) > MaxApprovals {
		return nil, &AdmissionError{Stage: "approval", File: file, Err: fmt.Errorf("%d approvals; at most %d are read", len(in.Approvals), MaxApprovals)}
	}
	rc := a.rc
	if in.Isolation != "" && in.Isolation != rc.Isolation {
		if ModeStrength(in.Isolation) < ModeStrength(rc.Isolation) {
			return nil, &AdmissionError{Stage: "admission", File: file, Err: fmt.Errorf("the run asks for :%s isolation, weaker than the config's :%s", in.Isolation, rc.Isolation)}
		}
		rc.Isolation = in.Isolation
	}
	key := admissionKey(in, file, rc.Isolation)
	if ad, ok := a.cache.get(key); ok {
		hit := *ad
		hit.CacheHit = true
		return &hit, nil
	}
	p, err := plan.Read(in.Source, file)
	if err != nil {
		return nil, &AdmissionError{Stage: "plan", File: file, Err: err}
	}
	var approvals []governance.Approval
	for i, text := range in.Approvals {
		ap, err := governance.ParseApproval(text)
		if err != nil {
			return nil, &AdmissionError{Stage: "approval", File: file, Err: fmt.Errorf("approval %d: %w", i+1, err)}
		}
		approvals = append(approvals, ap)
	}
	adm, err := governance.AdmitIn(rc, p, a.res.Config, a.caps, approvals)
	if err != nil {
		return nil, &AdmissionError{Stage: "admission", File: file, Err: err}
	}
	ad := &Admitted{Plan: p, Admission: adm, Context: rc}
	a.cache.put(key, ad)
	return ad, nil
}

func admissionKey(in PlanInput, file string, iso config.IsolationMode) string {
	h := sha256.New()
	fmt.Fprintf(h, "%d:%s\x00%d:%s\x00%s\x00", len(in.Source), in.Source, len(file), file, iso)
	for _, ap := range in.Approvals {
		fmt.Fprintf(h, "%d:%s\x00", len(ap), ap)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// admissionCache is a bounded cache of admissions, oldest evicted first.
type admissionCache struct {
	mu    sync.Mutex
	max   int
	m     map[string]*Admitted
	order []string
}

func newAdmissionCache(size int) *admissionCache {
	if size <= 0 {
		size = 256
	}
	return &admissionCache{max: size, m: map[string]*Admitted{}}
}

func (c *admissionCache) get(key string) (*Admitted, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	ad, ok := c.m[key]
	return ad, ok
}

func (c *admissionCache) put(key string, ad *Admitted) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.m[key]; ok {
		return
	}
	c.m[key] = ad
	c.order = append(c.order, key)
	if len(c.order) > c.max {
		delete(c.m, c.order[0])
		c.order = c.order[1:]
	}
}
