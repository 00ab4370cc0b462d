package capability

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/ccos-project/ccos/rtfs"
)

func TestDecodeContract(t *testing.T) {
	l, err := DecodeContract([]byte(`{:id :vendor.post
 :doc "posts"
 :effects [[:network {:domains ["a.example.com"] :methods [:POST]}] :time]
 :resources {:max_time_ms 5000 :cost_usd 0.5 :tokens 10}
 :runtime {:sandbox :microvm}}`), "post.rtfs")
	if err != nil {
		t.Fatal(err)
	}
	c := l.Contract
	if l.ID != "vendor.post" || l.Doc != "posts" || len(c.Effects) != 2 || c.Effects[0].Domains[0] != "a.example.com" ||
		c.Effects[0].Methods[0] != "POST" || c.MaxTimeMS != 5000 || c.CostUSD != 0.5 || c.Tokens != 10 || c.Sandbox != "microvm" {
		t.Errorf("decoded %+v", l)
	}
	if sp := l.FieldSpan("resources.max_time_ms"); sp.String() != "post.rtfs:4:27" {
		t.Errorf("span of :max_time_ms is %s", sp)
	}
	bad := []struct{ src, where, msg string }{
		{`[:id :a]`, "x.rtfs:1:1", "a contract is a map"},
		{`{:id :a} {:id :b}`, "x.rtfs:1:10", "holds 2 forms"},
		{``, "x.rtfs:1:1", "holds 0 forms"},
		{`{:id :a :class :pure}`, "x.rtfs:1:9", "unknown contract key :class"},
		{`{:doc "no id"}`, "x.rtfs:1:1", "no :id"},
		{`{:id "a b"}`, "x.rtfs:1:6", ":id must be a capability name"},
		{`{:id :a :effects [:telepathy]}`, "x.rtfs:1:19", "unknown effect :telepathy"},
		{`{:id :a :effects [[:network {:hosts ["x"]}]]}`, "x.rtfs:1:30", "unknown key :hosts"},
		{`{:id :a :resources {:max_time_ms -1}}`, "x.rtfs:1:34", "from 0 to 1e15"},
		{`{:id :a :resources {:max_time_ms 1.5}}`, "x.rtfs:1:34", "whole number"},
		{`{:id :a :resources {:memory 1}}`, "x.rtfs:1:21", "unknown resource :memory"},
		{`{:id :a :resources {:tokens "many"}}`, "x.rtfs:1:29", "must be a number"},
		{`{:id :a :runtime {:sandbox :chroot}}`, "x.rtfs:1:28", ":sandbox must be :wasm, :container or :microvm"},
		{`{:id :a :runtime {:image "x"}}`, "x.rtfs:1:19", "unknown :runtime key"},
		{`{:id :a`, "x.rtfs:1:1", ""},
	}
	for _, tc := range bad {
		_, err := DecodeContract([]byte(tc.src), "x.rtfs")
		if err == nil || !strings.Contains(err.Error(), tc.where) || !strings.Contains(err.Error(), tc.msg) {
			t.Errorf("%s: %v, want %s ... %s", tc.src, err, tc.where, tc.msg)
		}
	}
}

// The example registry (examples/capabilities) loads, narrows the clock
// and adds two contract-only capabilities.
func TestLoadExampleRegistry(t *testing.T) {
	ls, err := LoadRegistry([]string{"./capabilities/"}, "../examples")
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, l := range ls {
		ids = append(ids, l.ID)
	}
	if strings.Join(ids, ",") != "ccos.system.current-time,com.collaboration.slack-post,example.weather.forecast" {
		t.Fatalf("ids %v", ids)
	}
	r := Builtins(nil)
	if err := r.Install(ls, nil); err != nil {
		t.Fatal(err)
	}
	clock, _ := r.Lookup("ccos.system.current-time")
	if clock.Contract.MaxTimeMS != 50 || clock.Class != Host || clock.Fn == nil {
		t.Errorf("narrowed clock: %+v", clock)
	}
	slack, err := r.Lookup("com.collaboration.slack-post")
	if err != nil || slack.Class != Host || slack.Contract.Sandbox != "wasm" {
		t.Fatalf("slack: %+v %v", slack, err)
	}
	if _, err := slack.Fn(context.Background(), nil); !errors.Is(err, ErrNotImplemented) || !strings.Contains(err.Error(), "slack-post.rtfs") {
		t.Errorf("calling a contract-only capability: %v", err)
	}
}

func writeFiles(t *testing.T, dir string, files map[string]string) {
	t.Helper()
	for name, text := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func TestLoadRegistryRefusals(t *testing.T) {
	base := t.TempDir()
	writeFiles(t, base, map[string]string{
		"outside.rtfs":        `{:id :evil.outside}`,
		"reg/a.rtfs":          `{:id :vendor.a}`,
		"reg/notes.txt":       `not a contract`,
		"dup/a.rtfs":          `{:id :vendor.a}`,
		"broken/b.rtfs":       `{:id :vendor.b :effects [:nope]}`,
		"escape/ok.rtfs":      `{:id :vendor.ok}`,
		"inside/sub/in.rtfs":  `{:id :vendor.in}`,
		"inside/other.rtfs.d": ``,
	})
	if err := os.Symlink("../outside.rtfs", filepath.Join(base, "escape", "link.rtfs")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("sub/in.rtfs", filepath.Join(base, "inside", "alias.edn")); err != nil {
		t.Fatal(err)
	}
	os.Mkdir(filepath.Join(base, "fifo"), 0o755)
	if err := syscall.Mkfifo(filepath.Join(base, "fifo", "pipe.rtfs"), 0o644); err != nil {
		t.Fatal(err)
	}
	if ls, err := LoadRegistry([]string{"reg"}, base); err != nil || len(ls) != 1 || ls[0].File != filepath.Join(base, "reg", "a.rtfs") {
		t.Errorf("reg: %v %v", ls, err)
	}
	tests := []struct {
		dirs []string
		msg  string
	}{
		{[]string{"missing"}, `:registry_paths "missing"`},
		{[]string{"reg", "dup"}, "capability :vendor.a has a second contract; the first is " + filepath.Join(base, "reg", "a.rtfs") + ":1:1"},
		{[]string{"broken"}, filepath.Join(base, "broken", "b.rtfs") + ":1:26: unknown effect :nope"},
		{[]string{"escape"}, "link.rtfs"},
		{[]string{"fifo"}, "pipe.rtfs: not a regular file"},
		// A link inside the directory is followed, to the same contract.
		{[]string{"inside"}, "capability :vendor.in has a second contract"},
	}
	for _, tc := range tests {
		_, err := LoadRegistry(tc.dirs, base)
		if err == nil || !strings.Contains(err.Error(), tc.msg) {
			t.Errorf("%v: %v, want %q", tc.dirs, err, tc.msg)
		}
	}
}

// Loading never writes: a read-only registry loads, and is left as it was.
func TestLoadRegistryReadOnly(t *testing.T) {
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{"a.rtfs": `{:id :vendor.a :resources {:max_time_ms 10}}`})
	before, _ := os.Stat(filepath.Join(dir, "a.rtfs"))
	os.Chmod(filepath.Join(dir, "a.rtfs"), 0o444)
	os.Chmod(dir, 0o555)
	defer os.Chmod(dir, 0o755)
	if _, err := LoadRegistry([]string{dir}, "/nonexistent"); err != nil {
		t.Fatal(err)
	}
	after, _ := os.Stat(filepath.Join(dir, "a.rtfs"))
	if !after.ModTime().Equal(before.ModTime()) || after.Size() != before.Size() {
		t.Error("the contract file changed")
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Errorf("the registry holds %d files", len(entries))
	}
}

func listing(t *testing.T, src string) *Listing {
	t.Helper()
	l, err := DecodeContract([]byte(src), "reg/c.rtfs")
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// Every way a contract can broaden a built-in capability is refused, at
// the field that broadens.
func TestContractBroadensBuiltin(t *testing.T) {
	tests := []struct {
		src, field, where string
	}{
		{`{:id :ccos.echo :effects [[:network {:domains ["x.example.com"]}]] :resources {:max_time_ms 100}}`, "effects", "reg/c.rtfs:1:26"},
		{`{:id :ccos.echo :resources {:max_time_ms 5000}}`, "resources.max_time_ms", "reg/c.rtfs:1:42"},
		{`{:id :ccos.echo}`, "resources.max_time_ms", "reg/c.rtfs:1:1"},
		{`{:id :ccos.echo :resources {:max_time_ms 100 :cost_usd 1}}`, "resources.cost_usd", "reg/c.rtfs:1:56"},
		{`{:id :ccos.math.add :resources {:max_time_ms 100 :tokens 5}}`, "resources.tokens", "reg/c.rtfs:1:58"},
		{`{:id :ccos.system.current-time :effects [:time :random] :resources {:max_time_ms 100}}`, "effects", "reg/c.rtfs:1:41"},
	}
	for _, tc := range tests {
		err := Builtins(nil).Install([]*Listing{listing(t, tc.src)}, nil)
		var be *BroadeningError
		if !errors.As(err, &be) || be.Field != tc.field || be.Span.String() != tc.where || be.What != "contract" {
			t.Errorf("%s: %v, want %s at %s", tc.src, err, tc.field, tc.where)
			continue
		}
		if msg := err.Error(); !strings.Contains(msg, "broadens the built-in capability") || !strings.Contains(msg, ":"+be.Capability) {
			t.Errorf("message %q", msg)
		}
	}
	// Narrowing is fine, and the built-in keeps its implementation.
	r := Builtins(nil)
	if err := r.Install([]*Listing{listing(t, `{:id :ccos.network.http-fetch :effects [[:network {:domains ["a.example.com"] :methods [:GET]}]] :resources {:max_time_ms 1000}}`)}, nil); err != nil {
		t.Fatal(err)
	}
	c, _ := r.Lookup("ccos.network.http-fetch")
	if _, err := c.Fn(context.Background(), nil); !errors.Is(err, ErrNoEgressProxy) || c.Contract.Effects[0].Domains[0] != "a.example.com" {
		t.Errorf("narrowed http-fetch: %+v, %v", c.Contract, err)
	}
}

// A contract for a built-in id that leaves out one of the built-in's
// effects would hide a privilege (get-env without :env would skip the
// isolation and approvals reading the environment needs): refused, naming
// the contract's :effects (or the contract, when it writes none) and the
// effect.
func TestContractHidesBuiltinEffect(t *testing.T) {
	tests := []struct{ src, where, effect string }{
		{`{:id :ccos.system.get-env :effects [] :resources {:max_time_ms 100}}`, "reg/c.rtfs:1:36", EffectEnv},
		{`{:id :ccos.system.get-env :resources {:max_time_ms 100}}`, "reg/c.rtfs:1:1", EffectEnv},
		{`{:id :ccos.network.http-fetch :effects [:time] :resources {:max_time_ms 100}}`, "reg/c.rtfs:1:40", EffectNetwork},
	}
	for _, tc := range tests {
		err := Builtins(nil).Install([]*Listing{listing(t, tc.src)}, nil)
		var he *HiddenEffectError
		if !errors.As(err, &he) || he.Effect != tc.effect || he.Span.String() != tc.where || he.What != "contract" {
			t.Errorf("%s: %v, want the :%s effect left out at %s", tc.src, err, tc.effect, tc.where)
			continue
		}
		want := tc.where + ": the contract for :" + he.Capability + " leaves out the :" + tc.effect + " effect of the built-in capability"
		if !strings.HasPrefix(err.Error(), want) {
			t.Errorf("message %q, want it to start with %q", err, want)
		}
	}
	// Narrowing the effect's scope is what a contract may do.
	if err := Builtins(nil).Install([]*Listing{listing(t, `{:id :ccos.system.get-env :effects [[:env {:vars ["TZ"]}]] :resources {:max_time_ms 100}}`)}, nil); err != nil {
		t.Errorf("narrowed get-env: %v", err)
	}
}

// Every way a config entry can broaden its contract is refused, naming
// the entry's field.
func TestEntryBroadensContract(t *testing.T) {
	const contract = `{:id :vendor.post
 :effects [[:network {:domains ["*.example.com"] :methods [:POST]}] [:env {:vars ["TZ"]}]]
 :resources {:max_time_ms 5000 :cost_usd 0.01}
 :runtime {:sandbox :microvm}}`
	sp := func(field string) rtfs.Span {
		return rtfs.Span{File: "agent.rtfs", Start: rtfs.Pos{Line: 3, Col: len(field) + 1}}
	}
	entry := func(mod func(*Entry)) Entry {
		e := Entry{Capability: "vendor.post", Contract: "reg/c.rtfs", Span: sp}
		mod(&e)
		return e
	}
	// net narrows the network effect and keeps the env effect (an entry
	// may narrow an effect's scope, never leave it out).
	tz := Effect{Kind: EffectEnv, Vars: []string{"TZ"}}
	net := func(domains []string, methods ...string) []Effect {
		return []Effect{{Kind: EffectNetwork, Domains: domains, Methods: methods}, tz}
	}
	tests := []struct {
		name  string
		e     Entry
		field string
	}{
		{"more domains", entry(func(e *Entry) { e.Effects = net([]string{"a.example.com", "evil.org"}, "POST") }), "effects.network.domains"},
		{"wider wildcard", entry(func(e *Entry) { e.Effects = net([]string{"*.com"}, "POST") }), "effects.network.domains"},
		{"unscoped domains", entry(func(e *Entry) { e.Effects = net(nil, "POST") }), "effects.network.domains"},
		{"more methods", entry(func(e *Entry) { e.Effects = net([]string{"a.example.com"}, "post", "DELETE") }), "effects.network.methods"},
		{"another effect", entry(func(e *Entry) {
			e.Effects = append(net([]string{"a.example.com"}, "POST"), Effect{Kind: EffectFS, Paths: []string{"/"}})
		}), "effects"},
		{"more vars", entry(func(e *Entry) {
			e.Effects = []Effect{net([]string{"a.example.com"}, "POST")[0], {Kind: EffectEnv, Vars: []string{"TZ", "HOME"}}}
		}), "effects.env.vars"},
		{"longer calls", entry(func(e *Entry) { e.Resources = map[string]float64{"max_time_ms": 6000} }), "resources.max_time_ms"},
		{"no time limit", entry(func(e *Entry) { e.Resources = map[string]float64{"max_time_ms": 0} }), "resources.max_time_ms"},
		{"costlier", entry(func(e *Entry) { e.Resources = map[string]float64{"cost_usd": 0.02} }), "resources.cost_usd"},
		{"weaker sandbox", entry(func(e *Entry) { e.Sandbox = "wasm" }), "runtime.sandbox"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := Builtins(nil).Install([]*Listing{listing(t, contract)}, []Entry{tc.e})
			var be *BroadeningError
			if !errors.As(err, &be) || be.Field != tc.field || be.What != "config entry" || be.Span != sp(tc.field) {
				t.Fatalf("%v, want the entry's %s", err, tc.field)
			}
			if msg := err.Error(); !strings.Contains(msg, "agent.rtfs:3:") || !strings.Contains(msg, "its contract reg/c.rtfs") ||
				!strings.Contains(msg, ":vendor.post") || !strings.Contains(msg, ":"+strings.ReplaceAll(tc.field, ".", " :")) {
				t.Errorf("message %q", msg)
			}
		})
	}
	// A narrower entry is applied.
	r := Builtins(nil)
	narrow := entry(func(e *Entry) {
		e.Effects = net([]string{"hooks.example.com"}, "POST")
		e.Resources = map[string]float64{"max_time_ms": 2000}
		e.Sandbox = "microvm"
	})
	if err := r.Install([]*Listing{listing(t, contract)}, []Entry{narrow}); err != nil {
		t.Fatal(err)
	}
	c, _ := r.Lookup("vendor.post")
	if c.Contract.MaxTimeMS != 2000 || c.Contract.CostUSD != 0.01 || len(c.Contract.Effects) != 2 || c.Contract.Effects[0].Domains[0] != "hooks.example.com" {
		t.Errorf("narrowed contract %+v", c.Contract)
	}
	// An entry that leaves an effect out hides it: refused, naming the
	// entry's effects and the effect.
	hiding := entry(func(e *Entry) { e.Effects = net([]string{"hooks.example.com"}, "POST")[:1] })
	err := Builtins(nil).Install([]*Listing{listing(t, contract)}, []Entry{hiding})
	var he *HiddenEffectError
	if !errors.As(err, &he) || he.Effect != EffectEnv || he.Span != sp("effects") || !strings.Contains(err.Error(), "agent.rtfs:3:8: the config entry for :vendor.post leaves out the :env effect") {
		t.Errorf("entry leaving :env out: %v", err)
	}
	// An entry must point at the registry's file, and name a capability
	// that exists.
	for _, tc := range []struct {
		e   Entry
		msg string
	}{
		{entry(func(e *Entry) { e.Contract = "reg/other.rtfs" }), "names the contract reg/other.rtfs, but the registry's contract for :vendor.post is reg/c.rtfs"},
		{entry(func(e *Entry) { e.Capability = "vendor.nope" }), "capability entry :vendor.nope has no contract"},
		{entry(func(e *Entry) { e.Resources = map[string]float64{"memory_mb": 1} }), "unknown resource :memory_mb"},
	} {
		err := Builtins(nil).Install([]*Listing{listing(t, contract)}, []Entry{tc.e})
		if err == nil || !strings.Contains(err.Error(), tc.msg) || !strings.HasPrefix(err.Error(), "agent.rtfs:3:") {
			t.Errorf("%v, want %q", err, tc.msg)
		}
	}
}
