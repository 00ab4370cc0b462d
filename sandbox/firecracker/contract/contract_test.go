package contract_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ccos-project/ccos/internal/testenv"
	"github.com/ccos-project/ccos/sandbox/firecracker/contract"
)

// loadAPI loads the shared firecracker.yaml (skipping the test when it is
// missing, failing it under CI: internal/testenv).
func loadAPI(t testing.TB) (*contract.API, string) {
	t.Helper()
	p := testenv.Shared(t, contract.SharedFile)
	api, err := contract.Load(p)
	if err != nil {
		t.Fatal(err)
	}
	return api, p
}

// TestFirecrackerOwnExamples proves the validator is real: Firecracker's own
// --config-file examples pass, and the deliberately broken ones fail on the
// field their name gives.
func TestFirecrackerOwnExamples(t *testing.T) {
	api, p := loadAPI(t)
	files, err := filepath.Glob(filepath.Join(filepath.Dir(p), "vm-config-examples", "*.json"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no vm-config-examples beside %s: %v", p, err)
	}
	for _, f := range files {
		name := strings.TrimSuffix(filepath.Base(f), ".json")
		t.Run(name, func(t *testing.T) {
			b, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			err = api.Validate("FullVmConfiguration", b)
			field, broken := strings.CutPrefix(name, "vm_config_missing_")
			if !broken {
				if err != nil {
					t.Fatalf("Firecracker's own example is rejected: %v", err)
				}
				return
			}
			var ve *contract.ValidationError
			if !errors.As(err, &ve) {
				t.Fatalf("broken example accepted (err %v)", err)
			}
			if !ve.Has("machine-config." + field) {
				t.Fatalf("want a violation at machine-config.%s, got %v", field, err)
			}
		})
	}
}

func TestValidateViolations(t *testing.T) {
	api, _ := loadAPI(t)
	tests := []struct {
		name, def, doc, path string
	}{
		{"wrong type", "MachineConfiguration", `{"vcpu_count": "2", "mem_size_mib": 128}`, "vcpu_count"},
		{"not an integer", "MachineConfiguration", `{"vcpu_count": 1.5, "mem_size_mib": 128}`, "vcpu_count"},
		{"below minimum", "MachineConfiguration", `{"vcpu_count": 0, "mem_size_mib": 128}`, "vcpu_count"},
		{"above maximum", "MachineConfiguration", `{"vcpu_count": 33, "mem_size_mib": 128}`, "vcpu_count"},
		{"enum", "MachineConfiguration", `{"vcpu_count": 1, "mem_size_mib": 128, "huge_pages": "1G"}`, "huge_pages"},
		{"enum via $ref", "MachineConfiguration", `{"vcpu_count": 1, "mem_size_mib": 128, "cpu_template": "Z9"}`, "cpu_template"},
		{"unknown property", "Drive", `{"drive_id": "r", "is_root_device": true, "read_only": true}`, "read_only"},
		{"required null", "Drive", `{"drive_id": null, "is_root_device": true}`, "drive_id"},
		{"required missing", "Vsock", `{"uds_path": "/v.sock"}`, "guest_cid"},
		{"vsock cid minimum", "Vsock", `{"guest_cid": 2, "uds_path": "/v.sock"}`, "guest_cid"},
		{"seed balloon id", "Balloon", `{"balloon_id": "balloon0", "amount_mib": 0, "deflate_on_oom": true}`, "balloon_id"},
		{"nested", "FullVmConfiguration", `{"drives": [{"drive_id": "r", "is_root_device": "yes"}]}`, "drives[0].is_root_device"},
		{"array item null", "FullVmConfiguration", `{"drives": [null]}`, "drives[0]"},
		{"int32 range", "CpuidLeafModifier", `{"leaf": "0", "subleaf": "0", "flags": 4294967296, "modifiers": []}`, "flags"},
		{"additionalProperties schema", "Metrics", `{"metrics_path": "/m", "properties": {"a": 1}}`, "properties.a"},
		{"action enum", "InstanceActionInfo", `{"action_type": "Reboot"}`, "action_type"},
		{"not an object", "BootSource", `"vmlinux"`, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := api.Validate(tt.def, []byte(tt.doc))
			var ve *contract.ValidationError
			if !errors.As(err, &ve) || !errors.Is(err, contract.ErrInvalid) {
				t.Fatalf("accepted %s (err %v)", tt.doc, err)
			}
			if !ve.Has(tt.path) {
				t.Fatalf("want a violation at %q, got %v", tt.path, err)
			}
		})
	}
}

func TestValidateAccepts(t *testing.T) {
	api, _ := loadAPI(t)
	tests := []struct{ def, doc string }{
		{"BootSource", `{"kernel_image_path": "/k", "initrd_path": null}`},
		{"Metrics", `{"metrics_path": "/m", "properties": {"a": "b"}}`},
		{"MmdsContentsObject", `{"anything": {"goes": [1, 2]}}`},
		{"Balloon", `{"amount_mib": 0, "deflate_on_oom": true}`},
		{"EntropyDevice", `{}`},
		{"Vsock", `{"guest_cid": 3, "uds_path": "/v.sock"}`},
	}
	for _, tt := range tests {
		if err := api.Validate(tt.def, []byte(tt.doc)); err != nil {
			t.Errorf("%s %s: %v", tt.def, tt.doc, err)
		}
	}
	if err := api.Validate("NoSuchDefinition", []byte(`{}`)); err == nil {
		t.Error("an unknown definition was accepted")
	}
}

func TestValidateRequest(t *testing.T) {
	api, _ := loadAPI(t)
	tests := []struct {
		method, path, body string
		op                 string
		wantErr            error
	}{
		{"PUT", "/drives/rootfs", `{"drive_id": "rootfs", "path_on_host": "/r", "is_root_device": true, "is_read_only": true}`, "putGuestDriveByID", nil},
		{"PUT", "/actions", `{"action_type": "InstanceStart"}`, "createSyncAction", nil},
		{"PUT", "/boot-source", ``, "putGuestBootSource", contract.ErrInvalid},
		{"PUT", "/vsock", `{"guest_cid": 3}`, "putGuestVsock", contract.ErrInvalid},
		{"PUT", "/no-such-thing", `{}`, "", contract.ErrNoOperation},
		{"DELETE", "/vsock", ``, "", contract.ErrNoOperation},
		{"GET", "/", ``, "describeInstance", nil},
	}
	for _, tt := range tests {
		t.Run(tt.method+" "+tt.path, func(t *testing.T) {
			op, err := api.ValidateRequest(tt.method, tt.path, []byte(tt.body))
			if !errors.Is(err, tt.wantErr) || (tt.wantErr == nil && err != nil) {
				t.Fatalf("err = %v, want %v", err, tt.wantErr)
			}
			if tt.op != "" && (op == nil || op.ID != tt.op) {
				t.Fatalf("operation %+v, want %s", op, tt.op)
			}
		})
	}
	op, err := api.Match("PUT", "/network-interfaces/eth0")
	if err != nil || op.PathParams["iface_id"] != "eth0" || op.Body != "NetworkInterface" {
		t.Fatalf("Match = %+v, %v", op, err)
	}
}

func FuzzValidate(f *testing.F) {
	api, _ := loadAPI(f)
	f.Add([]byte(`{"boot-source": {"kernel_image_path": "k"}, "drives": []}`))
	f.Add([]byte(`{"machine-config": {"vcpu_count": 1e400, "mem_size_mib": -1}}`))
	f.Fuzz(func(t *testing.T, doc []byte) {
		_ = api.Validate("FullVmConfiguration", doc)
	})
}
