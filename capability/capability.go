// Package capability holds the capabilities a plan can call with
// (call :capability.id args...), and where each runs.
//
// A capability of class Pure computes its result from its arguments alone
// and runs inside the sandbox, in the guest. A capability of class Host
// needs something only the host has (the clock of record, the network
// through the egress proxy, files outside the sandbox): the guest yields it
// to the host, which checks it against what it admitted before running it.
package capability

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"time"

	"github.com/ccos-project/ccos/rtfs"
)

// Class says where a capability runs.
type Class int

// The capability classes.
const (
	// Pure capabilities run in the guest.
	Pure Class = iota
	// Host capabilities are yielded by the guest and run by the host.
	Host
)

func (c Class) String() string {
	if c == Pure {
		return "pure"
	}
	return "host"
}

// Func implements a capability.
type Func func(ctx context.Context, args []rtfs.Value) (rtfs.Value, error)

// Effect kinds a contract or a step can declare.
const (
	EffectNetwork = "network" // scope: :domains [..] :methods [..]
	EffectFS      = "fs"      // scope: :paths [..] :mode :ro|:rw
	EffectTime    = "time"    // reads the clock
	EffectRandom  = "random"  // draws random numbers
	EffectLLM     = "llm"     // scope: :models [..]
	EffectGPU     = "gpu"
	EffectEnv     = "env" // scope: :vars [..]
)

// Effect is one effect a capability may have, with its scope.
type Effect struct {
	Kind    string
	Domains []string
	Methods []string
	Paths   []string
	Models  []string
	Vars    []string
}

// Contract says what a capability may do and cost (spec 17 §4): the
// governance kernel derives step profiles and budgets from it.
type Contract struct {
	Effects []Effect
	// MaxTimeMS bounds one call's duration.
	MaxTimeMS int64
	// CostUSD and Tokens are what one call may cost at most.
	CostUSD float64
	Tokens  int64
}

// Capability is one callable capability.
type Capability struct {
	ID    string
	Class Class
	// Doc says what it does, for listings and errors.
	Doc      string
	Contract Contract
	Fn       Func
}

// ErrUnknown is wrapped by the error for a capability id nobody provides.
var ErrUnknown = errors.New("unknown capability")

// ErrArgs is wrapped by errors about a capability's arguments.
var ErrArgs = errors.New("bad capability arguments")

// Registry maps capability ids to capabilities.
type Registry struct {
	caps map[string]*Capability
}

// NewRegistry returns a registry holding the given capabilities.
func NewRegistry(caps ...*Capability) *Registry {
	r := &Registry{caps: map[string]*Capability{}}
	for _, c := range caps {
		r.caps[c.ID] = c
	}
	return r
}

// Add adds a capability; a later one with the same id replaces it.
func (r *Registry) Add(c *Capability) { r.caps[c.ID] = c }

// Lookup returns the capability with the given id.
func (r *Registry) Lookup(id string) (*Capability, error) {
	if c, ok := r.caps[id]; ok {
		return c, nil
	}
	return nil, fmt.Errorf("%w :%s (known: %v)", ErrUnknown, id, r.IDs())
}

// IDs returns the ids of every capability, sorted.
func (r *Registry) IDs() []string {
	out := make([]string, 0, len(r.caps))
	for id := range r.caps {
		out = append(out, id)
	}
	sort.Strings(out)
	return out
}

// Builtins returns a registry of the built-in capabilities. now is the
// clock of ccos.system.current-time (time.Now if nil).
func Builtins(now func() time.Time) *Registry {
	if now == nil {
		now = time.Now
	}
	return NewRegistry(
		&Capability{ID: "ccos.echo", Class: Pure, Doc: "returns its single argument", Contract: Contract{MaxTimeMS: 100}, Fn: echo},
		&Capability{ID: "ccos.math.add", Class: Pure, Doc: "adds numbers", Contract: Contract{MaxTimeMS: 100}, Fn: add},
		&Capability{ID: "ccos.string.concat", Class: Pure, Doc: "joins strings", Contract: Contract{MaxTimeMS: 100}, Fn: concat},
		&Capability{ID: "ccos.system.current-time", Class: Host, Doc: "the host's current time as an RFC 3339 timestamp",
			Contract: Contract{Effects: []Effect{{Kind: EffectTime}}, MaxTimeMS: 100},
			Fn: func(context.Context, []rtfs.Value) (rtfs.Value, error) {
				return rtfs.Timestamp{T: now().UTC()}, nil
			}},
	)
}

func echo(_ context.Context, args []rtfs.Value) (rtfs.Value, error) {
	if len(args) != 1 {
		return nil, fmt.Errorf("%w: ccos.echo takes 1 argument, got %d", ErrArgs, len(args))
	}
	return args[0], nil
}

func add(_ context.Context, args []rtfs.Value) (rtfs.Value, error) {
	var isum int64
	var fsum float64
	float := false
	for i, a := range args {
		switch x := a.(type) {
		case rtfs.Int:
			s := isum + x.V
			if (x.V > 0 && s < isum) || (x.V < 0 && s > isum) {
				return nil, fmt.Errorf("%w: ccos.math.add: integer overflow", ErrArgs)
			}
			isum = s
			fsum += float64(x.V)
		case rtfs.Float:
			float = true
			fsum += x.V
		default:
			return nil, fmt.Errorf("%w: ccos.math.add: argument %d is %s, not a number", ErrArgs, i+1, rtfs.Describe(a))
		}
	}
	if float {
		return rtfs.Float{V: fsum}, nil
	}
	return rtfs.Int{V: isum}, nil
}

func concat(_ context.Context, args []rtfs.Value) (rtfs.Value, error) {
	var s string
	for i, a := range args {
		x, ok := a.(rtfs.String)
		if !ok {
			return nil, fmt.Errorf("%w: ccos.string.concat: argument %d is %s, not a string", ErrArgs, i+1, rtfs.Describe(a))
		}
		s += x.V
	}
	return rtfs.String{V: s}, nil
}
