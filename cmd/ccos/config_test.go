package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestConfigValidateExamples(t *testing.T) {
	for _, f := range []string{"../../examples/microvm.rtfs", "../../config/testdata/golden/microvm-networked.rtfs"} {
		out, errOut, code := runCCOS(t, "", "config", "validate", f)
		if code != 0 || errOut != "" || !strings.Contains(out, "valid (0 warning(s))") {
			t.Errorf("%s: code %d, stdout %q, stderr %q", f, code, out, errOut)
		}
	}
}

func TestConfigValidateExitCodes(t *testing.T) {
	warnOnly := writeTemp(t, "agent.config.rtfs", strings.Replace(readExample(t), ":dlp {:enabled true :policy :strict}", ":dlp {:enabled true :policy :lenient}", 1))
	broken := "../../config/testdata/seed_broken.rtfs"
	tests := []struct {
		name, file string
		code       int
		stderr     string
	}{
		{"warnings keep exit 0", warnOnly, 0, ": warning: NON_STRICT_DLP: DLP policy is :lenient"},
		{"reader error exits 1", broken, 1, "seed_broken.rtfs:83:36: SYNTAX_ERROR: unexpected ')'"},
		{"profile call evaluates", "../../examples/minimal.rtfs", 0, ""},
		{"profile call with a bad override", writeTemp(t, "bad.rtfs", `(assoc-in (profile:microvm-min "agent.x") [:microvm :devices :vsock :cid] 2)`), 1, "RESERVED_VSOCK_CID"},
		{"runaway config", writeTemp(t, "loop.rtfs", `(loop [] (recur))`), 1, "EVAL_FAILED"},
		{"missing file exits 1", filepath.Join(t.TempDir(), "none.rtfs"), 1, "no such file"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, errOut, code := runCCOS(t, "", "config", "validate", tt.file)
			if code != tt.code || !strings.Contains(errOut, tt.stderr) {
				t.Fatalf("code %d (want %d), stderr %q (want %q)", code, tt.code, errOut, tt.stderr)
			}
		})
	}
}

func readExample(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile("../../examples/microvm.rtfs")
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestConfigValidateJSON(t *testing.T) {
	src := strings.Replace(readExample(t), ":vcpus 1", ":vcpu 1", 1)
	src = strings.Replace(src, ":policy :strict", ":policy :moderate", 1)
	out, _, code := runCCOS(t, "", "config", "validate", "--json", writeTemp(t, "agent.config.rtfs", src))
	if code != 1 {
		t.Fatalf("exit %d, want 1", code)
	}
	var rep struct {
		Valid       bool
		Errors      int
		Warnings    int
		Diagnostics []struct {
			Code, Severity, Path, Message, Hint string
			Line, Col                           int
		}
	}
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("stdout is not one JSON document: %v\n%s", err, out)
	}
	if rep.Valid || rep.Errors != 1 || len(rep.Diagnostics) != 1 {
		t.Fatalf("report %+v", rep)
	}
	d := rep.Diagnostics[0]
	if d.Code != "UNKNOWN_KEY" || d.Path != "microvm.resources.vcpu" || d.Hint != "did you mean :vcpus?" || d.Line != 47 {
		t.Errorf("diagnostic %+v", d)
	}

	out, _, code = runCCOS(t, "", "config", "validate", "--json", "../../examples/microvm.rtfs")
	if code != 0 || !strings.Contains(out, `"diagnostics": []`) || !strings.Contains(out, `"valid": true`) {
		t.Errorf("exit %d, stdout %s", code, out)
	}
}

func TestConfigExpand(t *testing.T) {
	out, errOut, code := runCCOS(t, "", "config", "expand", "../../config/testdata/golden/minimal.rtfs")
	want, _ := os.ReadFile("../../config/testdata/golden/minimal.rtfs")
	if code != 0 || out != string(want) || errOut != "" {
		t.Fatalf("code %d, stderr %q, stdout\n%s", code, errOut, out)
	}
	out, errOut, code = runCCOS(t, "", "config", "expand", "../../examples/networked.rtfs")
	want, _ = os.ReadFile("../../config/testdata/golden/networked.rtfs")
	if code != 0 || out != string(want) {
		t.Fatalf("code %d, stdout %q, stderr %q", code, out, errOut)
	}
}

func TestConfigSchema(t *testing.T) {
	out, _, code := runCCOS(t, "", "config", "schema")
	var doc map[string]any
	if code != 0 || json.Unmarshal([]byte(out), &doc) != nil || doc["title"] != "ccos agent.config" {
		t.Fatalf("code %d, stdout %.200s", code, out)
	}
}

func TestConfigUsage(t *testing.T) {
	if _, _, code := runCCOS(t, "", "config", "validate"); code != 2 {
		t.Errorf("missing FILE: exit %d, want 2", code)
	}
}
