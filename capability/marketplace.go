package capability

// The marketplace: capability contracts loaded from the directories of
// the agent config's :marketplace :registry_paths (spec 17 §4, §6 step 4).
//
// A contract file (*.rtfs or *.edn) holds one map:
//
//	{:id :com.collaboration.slack-post
//	 :doc "posts a message to a Slack channel"
//	 :effects [[:network {:domains ["slack.com"] :methods [:POST]}]]
//	 :resources {:max_time_ms 5000 :cost_usd 0.001 :tokens 0}
//	 :runtime {:sandbox :wasm}}
//
// :id is required; the rest is optional. Contracts are read, never
// written: each registry directory is opened as an os.Root and its files
// read-only through it, so neither ".." nor a symbolic link can lead out
// of the directory. A contract may narrow a built-in capability (the
// built-in keeps its implementation and takes the narrower contract) but
// never broaden it, and a config entry (:capabilities :entries) may narrow
// its capability's contract but never broaden it.
//
// Broadening is judged field by field: an effect kind the parent lacks; a
// domain, method, path, model or variable outside the parent's list (an
// empty list in the parent leaves that scope to the step and the config);
// a larger :max_time_ms (0 in the parent: no per-call limit), :cost_usd or
// :tokens; a weaker :sandbox (:microvm is stronger than :wasm and
// :container, which rank equal).

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"

	"github.com/ccos-project/ccos/domain"
	"github.com/ccos-project/ccos/rtfs"
)

// MaxContractBytes bounds one contract file.
const MaxContractBytes = 1 << 20

// Listing is one contract loaded from a registry directory.
type Listing struct {
	ID       string
	Doc      string
	Contract Contract
	// File is the contract's path (the registry directory joined with the
	// file's path inside it).
	File string
	// Span is where the contract map is written; spans locates its fields
	// ("effects", "resources.max_time_ms", "runtime.sandbox").
	Span  rtfs.Span
	spans map[string]rtfs.Span
}

// FieldSpan returns where a field of the contract is written, or the
// contract's span.
func (l *Listing) FieldSpan(field string) rtfs.Span {
	for field != "" {
		if sp, ok := l.spans[field]; ok {
			return sp
		}
		i := strings.LastIndexByte(field, '.')
		if i < 0 {
			break
		}
		field = field[:i]
	}
	return l.Span
}

// ErrNotImplemented is wrapped when a capability known only by its
// marketplace contract is called: this ccos has no runtime for contract
// modules, so such a capability can be admitted but not run.
var ErrNotImplemented = errors.New("the capability has a contract but no implementation in this ccos")

var contractKeys = []string{"id", "doc", "effects", "resources", "runtime"}

// Resource keys of contracts and config entries.
const (
	ResourceMaxTimeMS = "max_time_ms"
	ResourceCostUSD   = "cost_usd"
	ResourceTokens    = "tokens"
)

var resourceKeys = []string{ResourceMaxTimeMS, ResourceCostUSD, ResourceTokens}

// sandboxRank orders runtime sandboxes by strength.
var sandboxRank = map[string]int{"": 0, "wasm": 1, "container": 1, "microvm": 2}

// DecodeContract reads one contract file's text.
func DecodeContract(src []byte, file string) (*Listing, error) {
	read, err := rtfs.Read(src, file, rtfs.ReadOptions{MaxDepth: 32, MaxErrors: 1})
	if err != nil {
		return nil, err
	}
	if len(read.Forms) != 1 {
		sp := rtfs.Span{File: file, Start: rtfs.Pos{Line: 1, Col: 1}}
		if len(read.Forms) > 1 {
			sp = read.Forms[1].Span()
		}
		return nil, &DecodeError{Span: sp, Msg: fmt.Sprintf("a contract file holds one map, this one holds %d forms", len(read.Forms)),
			Hint: "write {:id :vendor.name :effects [...] :resources {...} :runtime {:sandbox :wasm}}"}
	}
	m, ok := read.Forms[0].(*rtfs.Map)
	if !ok {
		return nil, &DecodeError{Span: read.Forms[0].Span(), Msg: "a contract is a map, found " + rtfs.Describe(read.Forms[0]),
			Hint: "write {:id :vendor.name :effects [...] :resources {...} :runtime {:sandbox :wasm}}"}
	}
	l := &Listing{File: file, Span: m.Span(), spans: map[string]rtfs.Span{}}
	for i := 0; i < m.Len(); i++ {
		k, v := m.Entry(i)
		kw, ok := k.(rtfs.Keyword)
		if !ok || !slices.Contains(contractKeys, kw.Name) {
			return nil, &DecodeError{Span: k.Span(), Msg: "unknown contract key " + rtfs.Print(k), Hint: "a contract takes :" + strings.Join(contractKeys, " :")}
		}
		l.spans[kw.Name] = v.Span()
		if err := l.field(kw.Name, v); err != nil {
			return nil, err
		}
	}
	if l.ID == "" {
		return nil, &DecodeError{Span: m.Span(), Msg: "the contract has no :id", Hint: "add :id :vendor.capability-name"}
	}
	return l, nil
}

func (l *Listing) field(key string, v rtfs.Value) error {
	switch key {
	case "id":
		switch x := v.(type) {
		case rtfs.Keyword:
			l.ID = x.Name
		case rtfs.String:
			l.ID = x.V
		}
		if l.ID == "" || strings.ContainsAny(l.ID, " \t\n/") {
			return &DecodeError{Span: v.Span(), Msg: ":id must be a capability name such as :vendor.name, found " + rtfs.Describe(v)}
		}
	case "doc":
		s, ok := v.(rtfs.String)
		if !ok {
			return &DecodeError{Span: v.Span(), Msg: ":doc must be a string, found " + rtfs.Describe(v)}
		}
		l.Doc = s.V
	case "effects":
		effs, err := ParseEffects(v)
		if err != nil {
			return err
		}
		l.Contract.Effects = effs
	case "resources":
		return l.resources(v)
	case "runtime":
		rt, ok := v.(*rtfs.Map)
		if !ok {
			return &DecodeError{Span: v.Span(), Msg: ":runtime must be a map, found " + rtfs.Describe(v), Hint: "write :runtime {:sandbox :wasm}"}
		}
		for i := 0; i < rt.Len(); i++ {
			k, sv := rt.Entry(i)
			kw, ok := k.(rtfs.Keyword)
			if !ok || kw.Name != "sandbox" {
				return &DecodeError{Span: k.Span(), Msg: "unknown :runtime key " + rtfs.Print(k), Hint: "a :runtime takes :sandbox"}
			}
			sb, ok := sv.(rtfs.Keyword)
			if _, known := sandboxRank[sb.Name]; !ok || !known || sb.Name == "" {
				return &DecodeError{Span: sv.Span(), Msg: ":sandbox must be :wasm, :container or :microvm, found " + rtfs.Print(sv)}
			}
			l.Contract.Sandbox = sb.Name
			l.spans["runtime.sandbox"] = sv.Span()
		}
	}
	return nil
}

func (l *Listing) resources(v rtfs.Value) error {
	m, ok := v.(*rtfs.Map)
	if !ok {
		return &DecodeError{Span: v.Span(), Msg: ":resources must be a map, found " + rtfs.Describe(v), Hint: "write :resources {:max_time_ms 5000}"}
	}
	for i := 0; i < m.Len(); i++ {
		k, rv := m.Entry(i)
		kw, ok := k.(rtfs.Keyword)
		if !ok || !slices.Contains(resourceKeys, kw.Name) {
			return &DecodeError{Span: k.Span(), Msg: "unknown resource " + rtfs.Print(k), Hint: "resources are :" + strings.Join(resourceKeys, " :")}
		}
		var n float64
		switch x := rv.(type) {
		case rtfs.Int:
			n = float64(x.V)
		case rtfs.Float:
			n = x.V
		default:
			return &DecodeError{Span: rv.Span(), Msg: fmt.Sprintf(":%s must be a number, found %s", kw.Name, rtfs.Describe(rv))}
		}
		if err := setResource(&l.Contract, kw.Name, n); err != nil {
			return &DecodeError{Span: rv.Span(), Msg: err.Error()}
		}
		l.spans["resources."+kw.Name] = rv.Span()
	}
	return nil
}

// setResource sets one resource bound of a contract.
func setResource(c *Contract, key string, n float64) error {
	if n < 0 || n != n || n > 1e15 {
		return fmt.Errorf(":%s must be a number from 0 to 1e15, found %v", key, n)
	}
	switch key {
	case ResourceMaxTimeMS:
		if n != float64(int64(n)) {
			return fmt.Errorf(":%s must be a whole number of milliseconds, found %v", key, n)
		}
		c.MaxTimeMS = int64(n)
	case ResourceCostUSD:
		c.CostUSD = n
	case ResourceTokens:
		if n != float64(int64(n)) {
			return fmt.Errorf(":%s must be a whole number, found %v", key, n)
		}
		c.Tokens = int64(n)
	default:
		return fmt.Errorf("unknown resource :%s (resources are :%s)", key, strings.Join(resourceKeys, " :"))
	}
	return nil
}

// LoadRegistry loads every contract file of the registry directories;
// relative directories are taken from base (the config file's directory).
// A directory that does not exist, a file that does not read, a symbolic
// link leading out of its directory and two contracts with one id are
// errors.
func LoadRegistry(dirs []string, base string) ([]*Listing, error) {
	var out []*Listing
	seen := map[string]*Listing{}
	for _, d := range dirs {
		dir := d
		if !filepath.IsAbs(dir) {
			dir = filepath.Join(base, dir)
		}
		ls, err := loadDir(dir)
		if err != nil {
			return nil, fmt.Errorf(":marketplace :registry_paths %q: %w", d, err)
		}
		for _, l := range ls {
			if first, dup := seen[l.ID]; dup {
				return nil, &DecodeError{Span: l.Span, Msg: fmt.Sprintf("capability :%s has a second contract; the first is %s", l.ID, first.Span),
					Hint: "keep one contract per capability"}
			}
			seen[l.ID] = l
			out = append(out, l)
		}
	}
	return out, nil
}

// loadDir reads the contract files of one directory tree, in name order.
func loadDir(dir string) ([]*Listing, error) {
	root, err := os.OpenRoot(dir)
	if err != nil {
		return nil, err
	}
	defer root.Close()
	var names []string
	err = fs.WalkDir(root.FS(), ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() && (strings.HasSuffix(p, ".rtfs") || strings.HasSuffix(p, ".edn")) {
			names = append(names, p)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	sort.Strings(names)
	var out []*Listing
	for _, n := range names {
		// Only regular files are opened: opening a FIFO would block.
		if fi, err := root.Stat(n); err != nil || !fi.Mode().IsRegular() {
			if err == nil {
				err = fmt.Errorf("not a regular file (%s)", fi.Mode().Type())
			}
			return nil, fmt.Errorf("%s: %w", filepath.Join(dir, n), err)
		}
		src, err := readContract(root, n)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", filepath.Join(dir, n), err)
		}
		l, err := DecodeContract(src, filepath.Join(dir, n))
		if err != nil {
			return nil, err
		}
		out = append(out, l)
	}
	return out, nil
}

// readContract reads one file through the root, read-only: a symbolic
// link that leads out of the registry directory fails to open.
func readContract(root *os.Root, name string) ([]byte, error) {
	f, err := root.OpenFile(name, os.O_RDONLY, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("not a regular file (%s)", fi.Mode().Type())
	}
	b, err := io.ReadAll(io.LimitReader(f, MaxContractBytes+1))
	if err != nil {
		return nil, err
	}
	if len(b) > MaxContractBytes {
		return nil, fmt.Errorf("larger than %d bytes", MaxContractBytes)
	}
	return b, nil
}

// Entry is a config's wiring of one capability (:capabilities :entries),
// as the marketplace sees it.
type Entry struct {
	Capability string
	// Contract is the path of the entry's contract file (the :contract
	// written, joined to the config's directory); when the marketplace
	// holds the capability's contract, it must be that file.
	Contract string
	// Effects, when not empty, narrow the contract's effects.
	Effects []Effect
	// Resources narrow the contract's bounds (ResourceMaxTimeMS...).
	Resources map[string]float64
	// Sandbox, when not empty, is the runtime sandbox the entry asks for.
	Sandbox string
	// Span locates a field of the entry ("" for the entry itself,
	// "effects", "resources.max_time_ms", "runtime.sandbox").
	Span func(field string) rtfs.Span
}

// BroadeningError is a contract or config entry that asks for more than
// what it refines: a built-in capability, or the capability's contract.
type BroadeningError struct {
	// Span is where the broadening field is written.
	Span       rtfs.Span
	Capability string
	// Field names what broadens ("effects.network.domains",
	// "resources.max_time_ms", "runtime.sandbox"...).
	Field string
	// What is the refining side ("contract", "config entry") and Of what it
	// refines ("the built-in capability", "its contract in FILE").
	What, Of string
	Detail   string
}

func (e *BroadeningError) Error() string {
	return fmt.Sprintf("%s: the %s for :%s broadens %s: :%s %s (hint: a %s may only narrow what it refines)",
		e.Span, e.What, e.Capability, e.Of, strings.ReplaceAll(e.Field, ".", " :"), e.Detail, e.What)
}

// HiddenEffectError is a contract or config entry that leaves out an
// effect kind of what it refines. A contract states what its capability
// can do: the implementation behind a built-in id keeps every effect it
// has, so dropping one would not narrow it but hide a privilege from
// admission (the isolation a dangerous capability needs, the approvals of
// its risk tier).
type HiddenEffectError struct {
	// Span is where the effects are written (the contract or entry when
	// it writes none).
	Span       rtfs.Span
	Capability string
	// Effect is the kind left out (EffectEnv...).
	Effect string
	// What is the refining side ("contract", "config entry") and Of what it
	// refines ("the built-in capability", "its contract in FILE").
	What, Of string
}

func (e *HiddenEffectError) Error() string {
	return fmt.Sprintf("%s: the %s for :%s leaves out the :%s effect of %s, which its implementation has: dropping an effect hides a privilege, it does not narrow one (hint: keep :%s in :effects and narrow its scope instead)",
		e.Span, e.What, e.Capability, e.Effect, e.Of, e.Effect)
}

// Install adds the marketplace's contracts to the registry and applies the
// config's entries. A contract for a built-in capability narrows it; any
// other contract adds a capability that the host refuses to run
// (ErrNotImplemented). An entry narrows its capability's contract; an
// entry for a capability that is neither built in nor in the marketplace
// is an error.
func (r *Registry) Install(listings []*Listing, entries []Entry) error {
	var errs []error
	for _, l := range listings {
		if b, ok := r.caps[l.ID]; ok {
			if k := hiddenEffect(b.Contract, l.Contract); k != "" {
				errs = append(errs, &HiddenEffectError{Span: l.FieldSpan("effects"), Capability: l.ID, Effect: k,
					What: "contract", Of: "the built-in capability"})
				continue
			}
			if f := broadening(b.Contract, l.Contract); f != nil {
				errs = append(errs, &BroadeningError{Span: l.FieldSpan(f.field), Capability: l.ID, Field: f.field,
					What: "contract", Of: "the built-in capability", Detail: f.detail})
				continue
			}
			c := *b
			c.Contract = l.Contract
			if l.Doc != "" {
				c.Doc = l.Doc
			}
			r.caps[l.ID] = &c
			continue
		}
		// What a capability known only by its contract does is unknown:
		// its calls are treated as side-effecting.
		r.caps[l.ID] = &Capability{ID: l.ID, Class: Host, Doc: l.Doc, Contract: l.Contract, Mutates: true, ContractFile: l.File, Fn: unimplemented(l)}
	}
	for _, e := range entries {
		if err := r.applyEntry(listings, e); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

func (r *Registry) applyEntry(listings []*Listing, e Entry) error {
	c, ok := r.caps[e.Capability]
	if !ok {
		return &DecodeError{Span: e.Span(""), Msg: fmt.Sprintf("capability entry :%s has no contract: it is not built in, and no registry path holds a contract with :id :%s", e.Capability, e.Capability),
			Hint: "add its contract file to a directory of :marketplace :registry_paths"}
	}
	of := "the built-in capability"
	for _, l := range listings {
		if l.ID != e.Capability {
			continue
		}
		of = "its contract " + l.File
		if e.Contract != "" && filepath.Clean(e.Contract) != filepath.Clean(l.File) {
			return &DecodeError{Span: e.Span("contract"), Msg: fmt.Sprintf("capability entry :%s names the contract %s, but the registry's contract for :%s is %s", e.Capability, e.Contract, e.Capability, l.File),
				Hint: "point :contract at the registry's file"}
		}
	}
	narrowed := c.Contract
	if len(e.Effects) > 0 {
		narrowed.Effects = e.Effects
	}
	keys := make([]string, 0, len(e.Resources))
	for k := range e.Resources {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if err := setResource(&narrowed, k, e.Resources[k]); err != nil {
			return &DecodeError{Span: e.Span("resources." + k), Msg: fmt.Sprintf("capability entry :%s: %v", e.Capability, err)}
		}
	}
	if e.Sandbox != "" {
		narrowed.Sandbox = e.Sandbox
	}
	if k := hiddenEffect(c.Contract, narrowed); k != "" {
		return &HiddenEffectError{Span: e.Span("effects"), Capability: e.Capability, Effect: k, What: "config entry", Of: of}
	}
	if f := broadening(c.Contract, narrowed); f != nil {
		return &BroadeningError{Span: e.Span(f.field), Capability: e.Capability, Field: f.field, What: "config entry", Of: of, Detail: f.detail}
	}
	n := *c
	n.Contract = narrowed
	r.caps[e.Capability] = &n
	return nil
}

func unimplemented(l *Listing) Func {
	return func(context.Context, []rtfs.Value) (rtfs.Value, error) {
		return nil, fmt.Errorf("%w: :%s is known from its contract %s, and this ccos cannot load contract modules yet", ErrNotImplemented, l.ID, l.File)
	}
}

type finding struct{ field, detail string }

// hiddenEffect returns the first effect kind of parent that child leaves
// out, or "".
func hiddenEffect(parent, child Contract) string {
	for _, pe := range parent.Effects {
		if _, ok := mergedKind(child.Effects, pe.Kind); !ok {
			return pe.Kind
		}
	}
	return ""
}

// broadening returns the first way child asks for more than parent, or
// nil when child is within parent.
func broadening(parent, child Contract) *finding {
	for _, ce := range child.Effects {
		pe, ok := mergedKind(parent.Effects, ce.Kind)
		if !ok {
			return &finding{"effects", fmt.Sprintf("adds the :%s effect, which it does not have (it has %s)", ce.Kind, kinds(parent.Effects))}
		}
		lists := []struct {
			name          string
			child, parent []string
			covered       func(string, []string) bool
		}{
			{"domains", ce.Domains, pe.Domains, domain.Covered},
			{"methods", upperAll(ce.Methods), upperAll(pe.Methods), listed},
			{"paths", ce.Paths, pe.Paths, PathCovered},
			{"models", ce.Models, pe.Models, listed},
			{"vars", ce.Vars, pe.Vars, listed},
		}
		for _, l := range lists {
			if len(l.parent) == 0 {
				continue // unscoped: the step and the config bound it
			}
			field := "effects." + ce.Kind + "." + l.name
			if len(l.child) == 0 {
				return &finding{field, fmt.Sprintf("is unscoped, beyond %q", l.parent)}
			}
			for _, x := range l.child {
				if !l.covered(x, l.parent) {
					return &finding{field, fmt.Sprintf("includes %q, beyond %q", x, l.parent)}
				}
			}
		}
	}
	if parent.MaxTimeMS > 0 && (child.MaxTimeMS == 0 || child.MaxTimeMS > parent.MaxTimeMS) {
		return &finding{"resources." + ResourceMaxTimeMS, fmt.Sprintf("is %d, beyond %d (0 is no limit)", child.MaxTimeMS, parent.MaxTimeMS)}
	}
	if child.CostUSD > parent.CostUSD {
		return &finding{"resources." + ResourceCostUSD, fmt.Sprintf("is %v, beyond %v", child.CostUSD, parent.CostUSD)}
	}
	if child.Tokens > parent.Tokens {
		return &finding{"resources." + ResourceTokens, fmt.Sprintf("is %d, beyond %d", child.Tokens, parent.Tokens)}
	}
	if sandboxRank[child.Sandbox] < sandboxRank[parent.Sandbox] {
		return &finding{"runtime.sandbox", fmt.Sprintf("is %s, weaker than :%s", orAny(child.Sandbox), parent.Sandbox)}
	}
	return nil
}

// mergedKind returns the union of the effects of one kind. A scope list
// that one of them leaves empty (unscoped: the step and the config bound
// it) stays empty in the union.
func mergedKind(effs []Effect, kind string) (Effect, bool) {
	out := Effect{Kind: kind}
	found := false
	var open [5]bool
	for _, e := range effs {
		if e.Kind != kind {
			continue
		}
		found = true
		for i, l := range []struct {
			dst *[]string
			src []string
		}{{&out.Domains, e.Domains}, {&out.Methods, e.Methods}, {&out.Paths, e.Paths}, {&out.Models, e.Models}, {&out.Vars, e.Vars}} {
			if len(l.src) == 0 {
				open[i] = true
			}
			if open[i] {
				*l.dst = nil
			} else {
				*l.dst = append(*l.dst, l.src...)
			}
		}
	}
	return out, found
}

func kinds(effs []Effect) string {
	if len(effs) == 0 {
		return "no effect"
	}
	var ks []string
	for _, e := range effs {
		if !slices.Contains(ks, ":"+e.Kind) {
			ks = append(ks, ":"+e.Kind)
		}
	}
	return strings.Join(ks, " ")
}

func upperAll(xs []string) []string {
	out := make([]string, len(xs))
	for i, x := range xs {
		out[i] = strings.ToUpper(x)
	}
	return out
}

func orAny(sandbox string) string {
	if sandbox == "" {
		return "any sandbox"
	}
	return ":" + sandbox
}

func listed(x string, list []string) bool { return slices.Contains(list, x) }
