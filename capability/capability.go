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
	"strings"
	"time"

	"github.com/ccos-project/ccos/rtfs"
)

// Class says where a capability runs.
type Class int

// The capability classes.
const (
	// Pure capabilities compute from their arguments alone; they run in
	// the guest, inside steps or outside.
	Pure Class = iota
	// Local capabilities run in the guest too, and may change the step's
	// own workdir inside the sandbox; only inside steps.
	Local
	// Host capabilities are yielded by the guest and run by the host. The
	// host runs nothing else for a guest.
	Host
)

func (c Class) String() string {
	switch c {
	case Pure:
		return "pure"
	case Local:
		return "local"
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
	// Sandbox is the isolation the capability needs to run in (:runtime
	// {:sandbox ...}): "" for any, else "wasm", "container" or "microvm".
	Sandbox string
}

// Capability is one callable capability.
type Capability struct {
	ID    string
	Class Class
	// Doc says what it does, for listings and errors.
	Doc      string
	Contract Contract
	// Mutates says that a call changes something beyond returning its
	// result (a file, a remote service): its outcome is recorded under the
	// call's idempotency key, so that a retried step does not repeat it.
	Mutates bool
	// ContractFile is the marketplace contract of a capability that is not
	// built in ("" for the built-ins): such a capability may be called only
	// when a config entry enables it.
	ContractFile string
	Fn           Func
	// Args describe the arguments, Returns the value, and Example is a
	// call a plan can copy (for catalogs; admission reads literal Target
	// arguments).
	Args    []Arg
	Returns string
	Example string
}

// ErrUnknown is wrapped by the error for a capability id nobody provides.
var ErrUnknown = errors.New("unknown capability")

// ErrNoEgressProxy is returned by ccos.network.http-fetch where no egress
// proxy is configured: network access goes only through the proxy, and the
// host starts one only for an agent whose config enables the network.
var ErrNoEgressProxy = errors.New("ccos.network.http-fetch: no egress proxy runs for this agent (the config must enable :network with :egress :via :proxy and :allow-domains, and :capabilities :http); nothing reaches the network any other way")

// ErrNoEnvConfigured is wrapped by ccos.system.get-env for a variable the
// agent config does not name in :capabilities :env :vars (or a step's
// declared :env effect does not).
var ErrNoEnvConfigured = errors.New("environment variable not readable")

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

// Builtins returns a registry of the built-in capabilities, with now as
// the clock of ccos.system.current-time (time.Now if nil) and no workdir.
func Builtins(now func() time.Time) *Registry { return BuiltinsWith(Options{Now: now}) }

// Options configure the built-in capabilities.
type Options struct {
	// Now is the clock of ccos.system.current-time (time.Now if nil).
	Now func() time.Time
	// Workdir is the step workdir the ccos.io capabilities are confined to
	// ("" where there is none: on the host).
	Workdir string
	// EnvVars are the environment variables ccos.system.get-env may read
	// (the config's :capabilities :env :vars when :env is enabled); no
	// other variable is readable.
	EnvVars []string
	// LookupEnv reads a variable (os.LookupEnv if nil).
	LookupEnv func(string) (string, bool)
	// Fetch sends ccos.network.http-fetch's requests: the host's egress
	// proxy. Without it the capability refuses (ErrNoEgressProxy).
	Fetch FetchFunc
}

// BuiltinsWith returns a registry of the built-in capabilities.
func BuiltinsWith(o Options) *Registry {
	now := o.Now
	if now == nil {
		now = time.Now
	}
	wd := workdir{dir: o.Workdir}
	local := func(id, doc string, mutates bool, fn Func) *Capability {
		return &Capability{ID: id, Class: Local, Doc: doc, Contract: Contract{MaxTimeMS: 1000}, Mutates: mutates, Fn: fn}
	}
	return describe(NewRegistry(
		local("ccos.io.read-file", "reads a file of the step workdir", false, wd.readFile),
		local("ccos.io.write-file", "writes a file of the step workdir", true, wd.writeFile),
		local("ccos.io.list-dir", "lists a directory of the step workdir", false, wd.listDir),
		local("ccos.io.delete-file", "deletes a file of the step workdir", true, wd.deleteFile),
		&Capability{ID: "ccos.json.parse", Class: Pure, Doc: "parses JSON text (object keys become keywords)", Contract: Contract{MaxTimeMS: 100},
			Fn: func(_ context.Context, args []rtfs.Value) (rtfs.Value, error) {
				if len(args) != 1 {
					return nil, fmt.Errorf("%w: ccos.json.parse takes 1 argument, got %d", ErrArgs, len(args))
				}
				s, ok := args[0].(rtfs.String)
				if !ok {
					return nil, fmt.Errorf("%w: ccos.json.parse: the argument is %s, not a string", ErrArgs, rtfs.Describe(args[0]))
				}
				return rtfs.ParseJSON(s.V)
			}},
		&Capability{ID: "ccos.json.serialize", Class: Pure, Doc: "writes a value as JSON text", Contract: Contract{MaxTimeMS: 100},
			Fn: func(_ context.Context, args []rtfs.Value) (rtfs.Value, error) {
				if len(args) != 1 {
					return nil, fmt.Errorf("%w: ccos.json.serialize takes 1 argument, got %d", ErrArgs, len(args))
				}
				s, err := rtfs.ToJSON(args[0])
				if err != nil {
					return nil, err
				}
				return rtfs.String{V: s}, nil
			}},
		&Capability{ID: "ccos.network.http-fetch", Class: Host, Doc: "fetches a URL through the egress proxy", Mutates: true,
			Contract: Contract{MaxTimeMS: 30000, Effects: []Effect{{Kind: EffectNetwork}}},
			Fn:       fetcher{fetch: o.Fetch}.call},
		&Capability{ID: "ccos.system.get-env", Class: Host, Doc: "reads an environment variable the config names",
			Contract: Contract{MaxTimeMS: 100, Effects: []Effect{{Kind: EffectEnv}}},
			Fn:       env{vars: o.EnvVars, lookup: o.LookupEnv}.get},
		&Capability{ID: "ccos.echo", Class: Pure, Doc: "returns its single argument", Contract: Contract{MaxTimeMS: 100}, Fn: echo},
		&Capability{ID: "ccos.math.add", Class: Pure, Doc: "adds numbers", Contract: Contract{MaxTimeMS: 100}, Fn: add},
		&Capability{ID: "ccos.string.concat", Class: Pure, Doc: "joins strings", Contract: Contract{MaxTimeMS: 100}, Fn: concat},
		&Capability{ID: "ccos.system.current-time", Class: Host, Doc: "the host's current time as an RFC 3339 timestamp",
			Contract: Contract{Effects: []Effect{{Kind: EffectTime}}, MaxTimeMS: 100},
			Fn: func(context.Context, []rtfs.Value) (rtfs.Value, error) {
				return rtfs.Timestamp{T: now().UTC()}, nil
			}},
	))
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

// concat joins its string arguments in one pass, refusing a result over
// MaxValueBytes before building it and stopping when its time is up.
func concat(ctx context.Context, args []rtfs.Value) (rtfs.Value, error) {
	n := 0
	for i, a := range args {
		x, ok := a.(rtfs.String)
		if !ok {
			return nil, fmt.Errorf("%w: ccos.string.concat: argument %d is %s, not a string", ErrArgs, i+1, rtfs.Describe(a))
		}
		if n += len(x.V); n > MaxValueBytes {
			return nil, &rtfs.Error{Type: rtfs.ErrLimit, Message: fmt.Sprintf("ccos.string.concat: the result would be longer than %d bytes (capability.MaxValueBytes)", MaxValueBytes)}
		}
	}
	var b strings.Builder
	b.Grow(n)
	for i, a := range args {
		if i%256 == 0 && expired(ctx) {
			return nil, context.DeadlineExceeded
		}
		b.WriteString(a.(rtfs.String).V)
	}
	return rtfs.String{V: b.String()}, nil
}
