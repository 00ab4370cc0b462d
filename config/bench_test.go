package config

import (
	"fmt"
	"testing"

	"github.com/ccos-project/ccos/rtfs"
)

// BenchmarkLoadSeed measures the whole pipeline on the seed's MicroVM
// config (examples/microvm.rtfs): read, schema check, defaults, decode,
// PEM parsing and the semantic rules.
func BenchmarkLoadSeed(b *testing.B) {
	src := []byte(readFile(b, "../examples/microvm.rtfs"))
	b.SetBytes(int64(len(src)))
	b.ReportAllocs()
	for b.Loop() {
		res := (&Loader{}).Load(src, "microvm.rtfs")
		if res.Diags.HasErrors() {
			b.Fatal(res.Diags)
		}
	}
}

// BenchmarkLoadSeedExpand adds printing the expanded canonical config, as
// `ccos config expand` does.
func BenchmarkLoadSeedExpand(b *testing.B) {
	src := []byte(readFile(b, "../examples/microvm.rtfs"))
	b.ReportAllocs()
	for b.Loop() {
		res := (&Loader{}).Load(src, "microvm.rtfs")
		_ = Canonical(res.Expanded)
	}
}

// BenchmarkSchemaCheck isolates the type check of the read config map.
func BenchmarkSchemaCheck(b *testing.B) {
	src := readFile(b, "../examples/microvm.rtfs")
	v, err := rtfs.ReadOne(src, "microvm.rtfs")
	if err != nil {
		b.Fatal(err)
	}
	m, diags := rewriteAgentConfig(v)
	if len(diags) != 0 {
		b.Fatal(diags)
	}
	s, err := LoadSchema()
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if errs := s.Root.Check(m, checkOptions); len(errs) != 0 {
			b.Fatal(errs)
		}
	}
}

// BenchmarkValidate isolates the semantic rules on a decoded config.
func BenchmarkValidate(b *testing.B) {
	res := (&Loader{}).Load([]byte(readFile(b, "../examples/microvm.rtfs")), "microvm.rtfs")
	b.ReportAllocs()
	for b.Loop() {
		if ds := Validate(res.Config); len(ds) != 0 {
			b.Fatal(ds)
		}
	}
}

// BenchmarkReadSeed isolates the RTFS reader on the same file, to show
// how the pipeline's time splits.
func BenchmarkReadSeed(b *testing.B) {
	src := []byte(readFile(b, "../examples/microvm.rtfs"))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := rtfs.Read(src, "microvm.rtfs", rtfs.ReadOptions{}); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkLoadProfile loads a config written as a profile call with
// overrides (examples/microvm-networked.rtfs): the prelude and the config
// expression are evaluated by the RTFS evaluator, then checked as usual.
func BenchmarkLoadProfile(b *testing.B) {
	src := []byte(readFile(b, "../examples/microvm-networked.rtfs"))
	b.ReportAllocs()
	for b.Loop() {
		res := (&Loader{Evaluator: RTFSEvaluator{}}).Load(src, "microvm-networked.rtfs")
		if res.Diags.HasErrors() {
			b.Fatal(res.Diags)
		}
	}
}

// BenchmarkLoadProfileBaseline loads the same config already expanded (its
// golden file, a literal map): the difference to BenchmarkLoadProfile is
// the cost of evaluating the profile.
func BenchmarkLoadProfileBaseline(b *testing.B) {
	src := []byte(readFile(b, "testdata/golden/microvm-networked.rtfs"))
	b.ReportAllocs()
	for b.Loop() {
		res := (&Loader{}).Load(src, "microvm-networked.rtfs")
		if res.Diags.HasErrors() {
			b.Fatal(res.Diags)
		}
	}
}

// manyKeysConfig returns a config of about 3 MB with n unknown keys, written
// as an (agent.config ...) form or, with asMap, as a map literal.
func manyKeysConfig(n int, asMap bool) []byte {
	var b []byte
	if asMap {
		b = append(b, `{:version "0.1" :agent-id "agent.big"`...)
	} else {
		b = append(b, `(agent.config :version "0.1" :agent-id "agent.big"`...)
	}
	for i := range n {
		b = fmt.Appendf(b, " :k%06d %d", i, i)
	}
	if asMap {
		return append(b, "}\n"...)
	}
	return append(b, ")\n"...)
}

// BenchmarkLoadManyKeys loads a 3 MB config with 200,000 keys (each an
// UNKNOWN_KEY diagnostic): every pass must be linear. The map literal form
// of the same keys is the baseline.
func BenchmarkLoadManyKeys(b *testing.B) {
	for _, form := range []struct {
		name  string
		asMap bool
	}{{"agent.config", false}, {"map", true}} {
		src := manyKeysConfig(200_000, form.asMap)
		b.Run(form.name, func(b *testing.B) {
			b.SetBytes(int64(len(src)))
			b.ReportAllocs()
			for b.Loop() {
				res := (&Loader{}).Load(src, "big.rtfs")
				if !res.Diags.HasErrors() {
					b.Fatal("no diagnostics")
				}
			}
		})
	}
}

// BenchmarkLoadLargeAllowlist loads a config whose :http and :network
// allowlists name 20,000 domains each: checking that one lies within the
// other is linear (a domain.Set), not a product of the two lengths.
func BenchmarkLoadLargeAllowlist(b *testing.B) {
	var list []byte
	for i := range 20_000 {
		list = fmt.Appendf(list, ` "h%d.example.com"`, i)
	}
	src := fmt.Appendf(nil, `(agent.config :version "0.1" :agent-id "agent.big" :features [:network]
  :capabilities {:http {:enabled true :egress {:allow-domains [%s]}}}
  :network {:enabled true :egress {:via :proxy :allow-domains [%s "*.example.org"]}})`, list, list)
	b.SetBytes(int64(len(src)))
	b.ReportAllocs()
	for b.Loop() {
		res := (&Loader{}).Load(src, "big.rtfs")
		if res.Diags.HasErrors() {
			b.Fatal(res.Diags)
		}
	}
}
