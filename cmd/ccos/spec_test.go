package main

import (
	"encoding/json"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/ccos-project/ccos/internal/testenv"
	"github.com/ccos-project/ccos/sandbox/firecracker/contract"
)

func TestSpecCommand(t *testing.T) {
	api, err := contract.Load(testenv.Shared(t, contract.SharedFile))
	if err != nil {
		t.Fatal(err)
	}
	example := filepath.Join("..", "..", "examples", "microvm.rtfs")
	minimal := filepath.Join("..", "..", "examples", "minimal.rtfs")
	invalid := writeTemp(t, "bad.rtfs", `{:version "0.1" :agent-id "a" :orchestrator {:isolation {:mode :microvm}}
 :microvm {:kernel {:image "k" :cmdline ""} :rootfs {:image "r" :ro true} :resources {:vcpus 0 :mem_mb 128}
           :devices {:nic {:enabled false} :vsock {:enabled true :cid 3}} :attestation {:enabled false}}}`)
	tests := []struct {
		name      string
		args      []string
		code      int
		stdout    func(t *testing.T, out string)
		stderrHas string
	}{
		{"firecracker", []string{"spec", example, "--target", "firecracker", "--base-dir", "/srv/ccos"}, 0, func(t *testing.T, out string) {
			if err := api.Validate("FullVmConfiguration", []byte(out)); err != nil {
				t.Fatal(err)
			}
			if strings.Contains(out, "balloon") || !strings.Contains(out, `"is_read_only": true`) {
				t.Fatalf("document:\n%s", out)
			}
		}, ""},
		{"qemu", []string{"spec", example, "--target", "qemu", "--accel", "tcg", "--tsc-khz", "2000000"}, 0, func(t *testing.T, out string) {
			var argv []string
			if err := json.Unmarshal([]byte(out), &argv); err != nil {
				t.Fatal(err)
			}
			if argv[0] != "qemu-system-x86_64" || !slices.Contains(argv, "microvm,x-option-roms=off,isa-serial=on,rtc=on") || !slices.Contains(argv, "tcg") {
				t.Fatalf("argv %q", argv)
			}
		}, ""},
		{"oci", []string{"spec", minimal, "--target", "oci", "--ccos-binary", "/usr/local/bin/ccos"}, 0, func(t *testing.T, out string) {
			var doc struct {
				Root    struct{ Readonly bool }
				Process struct{ Args []string }
			}
			if err := json.Unmarshal([]byte(out), &doc); err != nil || !doc.Root.Readonly || strings.Join(doc.Process.Args, " ") != "/ccos guest" {
				t.Fatalf("%v: %s", err, out)
			}
		}, ""},
		{"no microvm", []string{"spec", minimal, "--target", "firecracker"}, 1, nil, "no :microvm block"},
		{"no microvm qemu", []string{"spec", minimal, "--target", "qemu"}, 1, nil, "no :microvm block"},
		{"invalid config", []string{"spec", invalid, "--target", "firecracker"}, 1, nil, "INVALID_VCPUS"},
		{"missing file", []string{"spec", "no-such.rtfs", "--target", "oci"}, 1, nil, "no-such.rtfs"},
		{"unknown target", []string{"spec", example, "--target", "xen"}, 2, nil, "want firecracker, qemu or oci"},
		{"no target", []string{"spec", example}, 2, nil, "target"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, errOut, code := runCCOS(t, "", tt.args...)
			if code != tt.code {
				t.Fatalf("exit %d, want %d; stderr:\n%s", code, tt.code, errOut)
			}
			if !strings.Contains(errOut, tt.stderrHas) {
				t.Fatalf("stderr lacks %q:\n%s", tt.stderrHas, errOut)
			}
			if tt.code != 0 && out != "" {
				t.Fatalf("stdout on failure: %s", out)
			}
			if tt.stdout != nil {
				tt.stdout(t, out)
			}
		})
	}
}

func TestDoctorListsFirecracker(t *testing.T) {
	out, _, code := runCCOS(t, "", "doctor", "--json")
	if code != 0 {
		t.Fatalf("exit %d", code)
	}
	var doc struct {
		Providers []struct {
			Provider  string
			Available bool
			Reason    string
		}
	}
	if err := json.Unmarshal([]byte(out), &doc); err != nil {
		t.Fatal(err)
	}
	for _, p := range doc.Providers {
		if p.Provider == "firecracker" {
			if !p.Available && !strings.Contains(p.Reason, "no ") {
				t.Fatalf("firecracker unavailable without saying what is missing: %q", p.Reason)
			}
			return
		}
	}
	t.Fatalf("doctor does not list firecracker:\n%s", out)
}
