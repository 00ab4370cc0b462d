package config

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/ccos-project/ccos/rtfs"
)

// FuzzLoad feeds arbitrary text to the loader (reader, schema check,
// defaults, decoder, validator). It must never panic, and a config it
// accepts must expand to a canonical form that loads back to itself.
func FuzzLoad(f *testing.F) {
	seeds, _ := filepath.Glob("../examples/*.rtfs")
	more, _ := filepath.Glob("testdata/*.rtfs")
	golden, _ := filepath.Glob("testdata/golden/*.rtfs")
	for _, p := range append(append(seeds, more...), golden...) {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte(`{:version "0.1" :agent_id "a" :microvm {:kernel {:image "k"} :rootfs {:image "r"} :resources {:vcpu 0}}}`))
	f.Fuzz(func(t *testing.T, src []byte) {
		res := (&Loader{}).Load(src, "fuzz.rtfs")
		for _, d := range res.Diags {
			if d.Code == "" || d.Message == "" {
				t.Fatalf("diagnostic without code or message: %+v", d)
			}
		}
		if res.Diags.HasErrors() || res.Expanded == nil {
			return
		}
		canon := Canonical(res.Expanded)
		again := (&Loader{}).Load([]byte(canon), "canon.rtfs")
		if again.Diags.HasErrors() {
			t.Fatalf("canonical form is rejected: %v\n%s", again.Diags, canon)
		}
		if got := Canonical(again.Expanded); got != canon {
			t.Fatalf("expand is not idempotent:\n%s\nthen\n%s", canon, got)
		}
	})
}

// FuzzValidate edits the seed config's complete map at a fuzzed path with a
// fuzzed value, so that the fuzzer spends its time past the reader.
func FuzzValidate(f *testing.F) {
	f.Add("microvm.resources.vcpus", "0")
	f.Add("network.egress.allow-domains", `["*.a" "b..c" "xn--" "ü.com"]`)
	f.Add("network.egress.tls_pins", `["sha256/===="]`)
	f.Add("governance.keys.verify", `"-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n"`)
	f.Add("capabilities.entries", `[{:capability :a :contract "c" :effects [[:network {:domains [1 "x"]}]]}]`)
	base := expandedBase(f, "microvm")
	f.Fuzz(func(t *testing.T, path, val string) {
		if path == "" {
			return
		}
		v, err := rtfs.ReadOne(val, "edit")
		if err != nil {
			return
		}
		keys := splitPath(path)
		if len(keys) == 0 || len(keys) > 8 {
			return
		}
		m := assocIn(base, keys, v)
		res := (&Loader{}).Load([]byte(Canonical(m)), "fuzz.rtfs")
		if res.Config != nil {
			_ = Validate(res.Config)
		}
	})
}

func splitPath(p string) []string {
	var out []string
	start := 0
	for i := 0; i <= len(p); i++ {
		if i == len(p) || p[i] == '.' {
			if i == start {
				return nil
			}
			out = append(out, p[start:i])
			start = i + 1
		}
	}
	return out
}
