package config

import (
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ccos-project/ccos/rtfs"
)

// literalExamples are the examples that need no evaluator.
func literalExamples(t *testing.T) []string {
	t.Helper()
	files, err := filepath.Glob("../examples/*.rtfs")
	if err != nil || len(files) == 0 {
		t.Fatalf("no examples: %v", err)
	}
	var out []string
	for _, f := range files {
		v, err := rtfs.ReadOne(readFile(t, f), f)
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		if rtfs.HeadName(v) == "agent.config" {
			out = append(out, f)
		}
	}
	return out
}

func TestLiteralExamplesValidate(t *testing.T) {
	files := append(literalExamples(t), "testdata/golden/minimal.rtfs", "testdata/golden/networked.rtfs",
		"testdata/golden/microvm-min.rtfs", "testdata/golden/microvm-networked.rtfs")
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			res, err := (&Loader{}).LoadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			if len(res.Diags) != 0 {
				t.Fatalf("diagnostics: %v", res.Diags)
			}
			// Expanding is idempotent: the canonical form loads back to itself.
			canon := Canonical(res.Expanded)
			again := load(t, canon, f)
			if len(again.Diags) != 0 || Canonical(again.Expanded) != canon {
				t.Fatalf("canonical form does not round-trip: %v\n%s", again.Diags, canon)
			}
		})
	}
}

func TestGoldenFilesAreCanonical(t *testing.T) {
	files, _ := filepath.Glob("testdata/golden/*.rtfs")
	for _, f := range files {
		src := readFile(t, f)
		if got := Canonical(load(t, src, f).Expanded); got != src {
			t.Errorf("%s is not in canonical form; expand gives\n%s", f, got)
		}
	}
}

func TestDecodeMicroVMExample(t *testing.T) {
	res, err := (&Loader{}).LoadFile("../examples/microvm.rtfs")
	if err != nil {
		t.Fatal(err)
	}
	c := res.Config
	if c == nil {
		t.Fatalf("no config: %v", res.Diags)
	}
	checks := []struct {
		name      string
		got, want any
	}{
		{"agent id", c.AgentID, "agent.microvm.example"},
		{"profile", c.Profile, "microvm"},
		{"features", strings.Join(c.Features, ","), "network,attestation"},
		{"mode", c.Orchestrator.Isolation.Mode, IsolationMicroVM},
		{"mount", c.Orchestrator.Isolation.FS.Mounts["capabilities"].Mode, MountRO},
		{"dlp", c.Orchestrator.DLP.Policy, DLPStrict},
		{"via", c.Network.Egress.Via, EgressProxy},
		{"pins", len(c.Network.Egress.TLSPins), 2},
		{"vcpus", c.MicroVM.Resources.VCPUs, 1},
		{"mem", c.MicroVM.Resources.MemMB, 256},
		{"cid", *c.MicroVM.Devices.Vsock.CID, int64(3)},
		{"proxy ns", *c.MicroVM.Devices.NIC.ProxyNS, "egress-proxy-ns"},
		{"storage", c.CausalChain.Storage.Mode, StorageVsockStream},
		{"buffer", c.CausalChain.Storage.BufferLocal, true},
		{"approvals", c.Governance.Policies["network_access"].RequiresApprovals, 2},
		{"tier", c.Governance.Policies["default"].RiskTier, RiskHigh},
		{"tokens", *c.Governance.Policies["default"].Budgets.TokenBudget, 1e5},
		{"readonly", *c.Marketplace.Readonly, true},
		{"cid line", c.Span("microvm.devices.vsock.cid").Start.Line, 49},
		{"defaulted field reports its parent", c.Span("capabilities.fs.paths").Start.Line, c.Span("capabilities.fs").Start.Line},
	}
	for _, ch := range checks {
		if ch.got != ch.want {
			t.Errorf("%s = %v, want %v", ch.name, ch.got, ch.want)
		}
	}
	if _, ok := c.VerifyKey().(ed25519.PublicKey); !ok {
		t.Errorf("verify key is %T, want ed25519.PublicKey", c.VerifyKey())
	}
}

func TestSeedBrokenIsRejectedByTheReader(t *testing.T) {
	res, err := (&Loader{}).LoadFile("testdata/seed_broken.rtfs")
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Diags) != 1 {
		t.Fatalf("want exactly the reader's error, got %v", res.Diags)
	}
	d := res.Diags[0]
	// Line 83 is `  :features [:network :attestation])`: the stray ')' closes
	// nothing, because the (agent.config ...) form ended on line 79.
	if d.Code != CodeSyntax || d.Span.String() != "testdata/seed_broken.rtfs:83:36" {
		t.Fatalf("got %v", d)
	}
	if !strings.Contains(d.Message, "opened at line 12 col 1 was already closed at line 79") {
		t.Errorf("message does not pinpoint the early close: %s", d.Message)
	}
	var se *rtfs.SyntaxError
	if !errors.As(res.Err(), &se) {
		t.Errorf("Err() does not wrap the *rtfs.SyntaxError: %v", res.Err())
	}
}

func TestLoadShapes(t *testing.T) {
	tests := []struct {
		name, src string
		codes     []string // codes in order; nil means valid
		at        string   // position of the first diagnostic
		msg, hint string   // parts of the first diagnostic
	}{
		{name: "bare map", src: `{:version "0.1" :agent-id "a.b"}`},
		{name: "agent.config form", src: `(agent.config :version "0.1" :agent-id "a.b")`},
		{name: "empty file", src: ";; nothing\n", codes: []string{CodeNoConfig}, at: "t.rtfs:1:1"},
		{name: "two forms", src: "(agent.config :version \"0.1\" :agent-id \"a\")\n:features []",
			codes: []string{CodeExtraForm}, at: "t.rtfs:2:1", msg: "follows the config that ends at line 1 col 44"},
		{name: "vector", src: `[:version "0.1"]`, codes: []string{CodeNotAConfig}, at: "t.rtfs:1:1"},
		{name: "number", src: `42`, codes: []string{CodeNotAConfig}},
		{name: "odd agent.config", src: `(agent.config :version "0.1" :agent-id)`,
			codes: []string{CodeTypeMismatch}, at: "t.rtfs:1:30", msg: "has no value"},
		{name: "non-keyword key", src: `(agent.config version "0.1")`, codes: []string{CodeTypeMismatch}, msg: "keys are keywords"},
		{name: "duplicate key", src: `(agent.config :version "0.1" :agent-id "a" :version "0.1")`,
			codes: []string{CodeDuplicateKey}, at: "t.rtfs:1:44", msg: "first written at line 1 col 15"},
		{name: "duplicate under two spellings", src: `{:version "0.1" :agent-id "a" :agent_id "b"}`,
			codes: []string{CodeDuplicateKey}, at: "t.rtfs:1:31"},
		{name: "missing required", src: `(agent.config :version "0.1")`,
			codes: []string{CodeMissingField}, at: "t.rtfs:1:1", msg: "missing required key :agent-id in the top-level map"},
		{name: "unknown key with suggestion",
			src:   "(agent.config :version \"0.1\" :agent-id \"a\"\n :orchestrator {:isolation {:mode :microvm}}\n :microvm {:kernel {:image \"k\"} :rootfs {:image \"r\"}\n           :resources {:vcpu 2 :mem_mb 256}})",
			codes: []string{CodeUnknownKey}, at: "t.rtfs:4:24",
			msg: "unknown key :vcpu in :microvm :resources", hint: "did you mean :vcpus?"},
		{name: "wrong enum", src: `{:version "0.1" :agent-id "a" :orchestrator {:isolation {:mode :micro-vm}}}`,
			codes: []string{CodeInvalidValue}, at: "t.rtfs:1:64", hint: "did you mean :microvm?"},
		{name: "symbol for keyword", src: `{:version "0.1" :agent-id "a" :profile minimal}`,
			codes: []string{CodeTypeMismatch}, hint: "keywords start with a colon: write :minimal"},
		{name: "several errors in source order",
			src:   "{:version \"0.1\" :agent-id \"a\"\n :features [:network :gpux]\n :capabilities {:htp {}}}",
			codes: []string{CodeInvalidValue, CodeUnknownKey}, at: "t.rtfs:2:22"},
		{name: "kebab and snake spell the same key",
			src:   `{:version "0.1" :agent_id "a" :causal-chain {:storage {:mode :append-file :path "c"}} :network {:egress {:allow_domains ["a.com"]}}}`,
			codes: []string{CodeInvalidValue}, hint: "did you mean :append_file?"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := load(t, tt.src, "t.rtfs")
			if got := strings.Join(res.Diags.Codes(), ","); got != strings.Join(tt.codes, ",") {
				t.Fatalf("codes = %q, want %q: %v", got, strings.Join(tt.codes, ","), res.Diags)
			}
			if len(tt.codes) == 0 {
				if res.Config == nil {
					t.Fatal("valid config not decoded")
				}
				return
			}
			d := res.Diags[0]
			if tt.at != "" && d.Span.String() != tt.at {
				t.Errorf("at %s, want %s", d.Span, tt.at)
			}
			if !strings.Contains(d.Message, tt.msg) {
				t.Errorf("message %q does not contain %q", d.Message, tt.msg)
			}
			if tt.hint != "" && d.Hint != tt.hint {
				t.Errorf("hint = %q, want %q", d.Hint, tt.hint)
			}
			if !res.Diags.HasErrors() || res.Err() == nil {
				t.Error("errors not reported as invalid")
			}
		})
	}
}

func TestSnakeAndKebabExpandToCanonicalSpelling(t *testing.T) {
	res := load(t, `{:version "0.1" :agent_id "a.b" :causal-chain {:storage {:mode :append_file :path "c"}}
	                 :features [:network] :network {:enabled true :egress {:allow_domains ["a.com"] :tls-pins []}}}`, "t.rtfs")
	if len(res.Diags) != 0 {
		t.Fatal(res.Diags)
	}
	out := Canonical(res.Expanded)
	for _, want := range []string{":agent-id \"a.b\"", ":causal_chain {", ":allow-domains [\"a.com\"]", ":tls_pins []"} {
		if !strings.Contains(out, want) {
			t.Errorf("expanded config lacks %s:\n%s", want, out)
		}
	}
	if res.Config.AgentID != "a.b" || res.Config.CausalChain.Storage.Path != "c" {
		t.Errorf("decoded %+v", res.Config)
	}
}

func TestEvaluatorRequired(t *testing.T) {
	for _, src := range []string{
		`(profile:minimal "agent.airgap")`,
		`(-> (profile:minimal "a") (assoc-in [:features] [:network]))`,
		`(agent.config :version "0.1" :agent-id (str "agent." "x"))`,
		`{:version "0.1" :agent-id "a" :features (vector)}`,
	} {
		res := load(t, src, "t.rtfs")
		if got := strings.Join(res.Diags.Codes(), ","); got != CodeEvaluatorNeeded {
			t.Errorf("%s: codes %s, want %s", src, got, CodeEvaluatorNeeded)
			continue
		}
		if !errors.Is(res.Err(), ErrNeedsEvaluator) {
			t.Errorf("%s: Err() does not wrap ErrNeedsEvaluator", src)
		}
		if !strings.Contains(res.Diags[0].Message, "which this build lacks") {
			t.Errorf("%s: message %q", src, res.Diags[0].Message)
		}
	}
	res := load(t, `(profile:networked "a" ["b.com"])`, "t.rtfs")
	if !strings.HasPrefix(res.Diags[0].Message, "this config is a call to profile:networked:") {
		t.Errorf("message does not name the call: %q", res.Diags[0].Message)
	}
}

// recordingEvaluator is a test double for the Evaluator seam: it records
// what the Loader hands over and returns a canned result.
type recordingEvaluator struct {
	prelude []rtfs.Value
	form    rtfs.Value
	result  rtfs.Value
	err     error
}

func (e *recordingEvaluator) EvalConfig(prelude []rtfs.Value, form rtfs.Value) (rtfs.Value, error) {
	e.prelude, e.form = prelude, form
	return e.result, e.err
}

func TestEvaluatorSeam(t *testing.T) {
	golden, err := rtfs.ReadOne(readFile(t, "testdata/golden/networked.rtfs"), "golden")
	if err != nil {
		t.Fatal(err)
	}
	// The evaluator's result is a run-time value without spans.
	result := stripForTest(golden)
	ev := &recordingEvaluator{result: result}
	src := `(merge (agent.config :version "0.1") (profile:networked "agent.ops.eu" ["eu.api.example.com" "slack.com"]))`
	res := (&Loader{Evaluator: ev}).Load([]byte(src), "t.rtfs")
	if len(res.Diags) != 0 {
		t.Fatalf("diagnostics: %v", res.Diags)
	}
	if got := rtfs.Print(ev.form); !strings.HasPrefix(got, `(merge {:version "0.1"} (profile:networked`) {
		t.Errorf("agent.config not rewritten to a map literal: %s", got)
	}
	var names []string
	for _, f := range ev.prelude {
		names = append(names, rtfs.Print(f.(*rtfs.List).Items[1]))
	}
	if got := strings.Join(names, " "); got != "profile:minimal profile:networked profile:microvm-min profile:microvm-networked" {
		t.Errorf("prelude defines %s", got)
	}
	if Canonical(res.Expanded) != readFile(t, "testdata/golden/networked.rtfs") {
		t.Errorf("expanded:\n%s", Canonical(res.Expanded))
	}

	// Problems in an evaluated config are reported at the expression.
	bad := result.(*rtfs.Map).Assoc(rtfs.Keyword{Name: "features"}, rtfs.NewVector())
	ev = &recordingEvaluator{result: bad}
	res = (&Loader{Evaluator: ev}).Load([]byte(src), "t.rtfs")
	if d, ok := find(res.Diags, CodeFeatureMissing); !ok || d.Span.String() != "t.rtfs:1:1" {
		t.Errorf("want FEATURE_MISSING at the form, got %v", res.Diags)
	}

	boom := errors.New("boom")
	res = (&Loader{Evaluator: &recordingEvaluator{err: boom}}).Load([]byte(src), "t.rtfs")
	if got := strings.Join(res.Diags.Codes(), ","); got != CodeEvalFailed || !errors.Is(res.Err(), boom) {
		t.Errorf("evaluator error: %v", res.Diags)
	}
	res = (&Loader{Evaluator: &recordingEvaluator{result: rtfs.Int{V: 1}}}).Load([]byte(src), "t.rtfs")
	if got := strings.Join(res.Diags.Codes(), ","); got != CodeNotAConfig {
		t.Errorf("non-map result: %v", res.Diags)
	}
}

// stripForTest rebuilds a read value without spans, like an evaluator does.
func stripForTest(v rtfs.Value) rtfs.Value {
	switch x := v.(type) {
	case *rtfs.List:
		if rtfs.HeadName(x) == "agent.config" {
			m := rtfs.NewMap(len(x.Items) / 2)
			for i := 1; i+1 < len(x.Items); i += 2 {
				m.Set(stripForTest(x.Items[i]), stripForTest(x.Items[i+1]))
			}
			return m
		}
	case *rtfs.Vector:
		items := make([]rtfs.Value, len(x.Items))
		for i, it := range x.Items {
			items[i] = stripForTest(it)
		}
		return rtfs.NewVector(items...)
	case *rtfs.Map:
		m := rtfs.NewMap(x.Len())
		for i, k := range x.Keys() {
			m.Set(stripForTest(k), stripForTest(x.Vals()[i]))
		}
		return m
	case rtfs.Keyword:
		return rtfs.Keyword{Name: x.Name}
	case rtfs.String:
		return rtfs.String{V: x.V}
	case rtfs.Int:
		return rtfs.Int{V: x.V}
	case rtfs.Float:
		return rtfs.Float{V: x.V}
	case rtfs.Bool:
		return rtfs.Bool{V: x.V}
	}
	return v
}

func TestDiagnosticFormats(t *testing.T) {
	d := Diagnostic{Code: CodeInvalidVCPUs, Path: "microvm.resources.vcpus", Message: "0 must be >= 1", Hint: "give 1 to 32 vCPUs",
		Span: rtfs.Span{File: "a.rtfs", Start: rtfs.Pos{Line: 3, Col: 7, Offset: 40}, End: rtfs.Pos{Line: 3, Col: 8, Offset: 41}}}
	if got, want := d.String(), "a.rtfs:3:7: INVALID_VCPUS: 0 must be >= 1 (hint: give 1 to 32 vCPUs)"; got != want {
		t.Errorf("String() = %q, want %q", got, want)
	}
	d.Severity = SeverityWarning
	if got := d.String(); !strings.HasPrefix(got, "a.rtfs:3:7: warning: INVALID_VCPUS:") {
		t.Errorf("warning String() = %q", got)
	}
	b, err := json.Marshal(d)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"code":"INVALID_VCPUS","severity":"warning","path":"microvm.resources.vcpus","message":"0 must be \u003e= 1","hint":"give 1 to 32 vCPUs","file":"a.rtfs","line":3,"col":7,"end_line":3,"end_col":8}`
	if string(b) != want {
		t.Errorf("JSON = %s\nwant   %s", b, want)
	}
	if (Diagnostics{d}).Err() != nil {
		t.Error("a warning made the config invalid")
	}
}

func TestLoadFileMissing(t *testing.T) {
	_, err := (&Loader{}).LoadFile(filepath.Join(t.TempDir(), "none.rtfs"))
	if !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("err = %v, want os.ErrNotExist", err)
	}
}

// A rule failed by a value a profile wrote is reported at the user's
// call of the profile, with the profile's own line as a note.
func TestDiagnosticAtProfileCallSite(t *testing.T) {
	res := Load([]byte(";; an agent\n(-> (profile:microvm-min \"agent.vm\")\n    (assoc-in [:microvm :resources :vcpus] 2))\n"), "agent.rtfs", RTFSEvaluator{})
	var found bool
	for _, d := range res.Diags {
		if d.Span.File == PreludeFile {
			t.Errorf("a diagnostic points into the prelude: %v", d)
		}
		if d.Code == CodeMissingRootfsHash {
			found = true
			if d.Span.File != "agent.rtfs" || d.Span.Start.Line != 2 || d.Span.Start.Col != 5 ||
				!strings.Contains(d.Note, "profile:microvm-min") || !strings.Contains(d.Note, PreludeFile) ||
				!strings.Contains(d.String(), "(note: ") {
				t.Errorf("MISSING_ROOTFS_HASH: %v (note %q)", d, d.Note)
			}
		}
	}
	if !found {
		t.Fatalf("no MISSING_ROOTFS_HASH: %v", res.Diags)
	}
}
