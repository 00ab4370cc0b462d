package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/ccos-project/ccos/image"
	"github.com/ccos-project/ccos/internal/testenv"
)

// needImageTools skips the test when this host cannot build images.
func needImageTools(t *testing.T) {
	t.Helper()
	if _, err := image.DefaultKernel(); err != nil {
		testenv.Missing(t, err.Error(), "install the Debian package linux-image-cloud-amd64 (scripts/test does)")
	}
	testenv.Tool(t, "mksquashfs", "install the Debian package squashfs-tools (scripts/test does)")
}

func TestImageBuild(t *testing.T) {
	needImageTools(t)
	minimal := filepath.Join("..", "..", "examples", "minimal.rtfs")
	microvm := filepath.Join("..", "..", "examples", "microvm.rtfs")
	caps := t.TempDir()
	writeFile(t, filepath.Join(caps, "echo.rtfs"), "{:id \"echo\"}\n")

	// Text output: three lines, one per image, reproducible across builds.
	a, b := filepath.Join(t.TempDir(), "a"), filepath.Join(t.TempDir(), "b")
	outA, errA, code := runCCOS(t, "", "image", "build", "--config", minimal, "--out", a, "--capabilities", caps)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errA)
	}
	outB, _, _ := runCCOS(t, "", "image", "build", "--config", minimal, "--out", b, "--capabilities", caps)
	lines := strings.Split(strings.TrimSpace(outA), "\n")
	if len(lines) != 3 || !strings.HasPrefix(lines[0], "kernel     sha256:") || !strings.HasSuffix(lines[2], filepath.Join(a, image.RootfsFile)) {
		t.Fatalf("output:\n%s", outA)
	}
	if strings.ReplaceAll(outA, a, "DIR") != strings.ReplaceAll(outB, b, "DIR") {
		t.Fatalf("two builds measure differently:\n%s\n%s", outA, outB)
	}

	// JSON output, and the config's NIC brings the virtio_net driver.
	out, stderr, code := runCCOS(t, "", "image", "build", "--config", microvm, "--out", t.TempDir(), "--json", "--epoch", "1700000000")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	var rep imageReport
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	if !slices.Contains(rep.Manifest.Modules, "virtio_net") || rep.Manifest.Epoch != 1700000000 {
		t.Fatalf("manifest %+v", rep.Manifest)
	}
	// The example's :expect_rootfs_hash is not this rootfs's: say what is.
	if want := `enables :attestation; set :microvm :attestation :expect_rootfs_hash to "` + rep.Measurements.Rootfs + `"`; !strings.Contains(stderr, want) {
		t.Errorf("stderr lacks %q:\n%s", want, stderr)
	}
	for path, want := range map[string]string{rep.Kernel: rep.Measurements.Kernel, rep.Initramfs: rep.Measurements.Initramfs, rep.Rootfs: rep.Measurements.Rootfs} {
		if got, err := image.Measure(path); err != nil || got != want {
			t.Errorf("%s measures %s (%v), reported %s", path, got, err, want)
		}
	}
}

func TestImageBuildErrors(t *testing.T) {
	needImageTools(t)
	minimal := filepath.Join("..", "..", "examples", "minimal.rtfs")
	invalid := writeTemp(t, "bad.rtfs", `{:version "0.1" :agent-id "a" :orchestrator {:isolation {:mode :microvm}}
 :microvm {:kernel {:image "k" :cmdline ""} :rootfs {:image "r" :ro true} :resources {:vcpus 0 :mem_mb 128}
           :devices {:nic {:enabled false} :vsock {:enabled true :cid 3}} :attestation {:enabled false}}}`)
	script := writeTemp(t, "init.sh", "#!/bin/sh\n")
	out := filepath.Join(t.TempDir(), "out")
	tests := []struct {
		name string
		args []string
		code int
		want string
	}{
		{"no out", []string{"--config", minimal}, 2, `"out" not set`},
		{"no config", []string{"--out", out}, 2, `"config" not set`},
		{"missing config", []string{"--config", "no-such.rtfs", "--out", out}, 1, "no-such.rtfs"},
		{"invalid config", []string{"--config", invalid, "--out", out}, 1, "INVALID_VCPUS"},
		{"missing kernel", []string{"--config", minimal, "--out", out, "--kernel", "/nonexistent/vmlinuz-1"}, 1, "guest kernel not found: stat /nonexistent/vmlinuz-1"},
		{"missing capabilities", []string{"--config", minimal, "--out", out, "--capabilities", "/nonexistent/caps"}, 1, "/nonexistent/caps"},
		{"init not ELF", []string{"--config", minimal, "--out", out, "--init", script}, 1, "invalid /init binary: not an ELF file"},
		{"bad epoch", []string{"--config", minimal, "--out", out, "--epoch", "-1"}, 2, "--epoch -1"},
		{"extra argument", []string{minimal, "--out", out}, 2, "unknown command"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, stderr, code := runCCOS(t, "", append([]string{"image", "build"}, tt.args...)...)
			if code != tt.code || !strings.Contains(stderr, tt.want) {
				t.Fatalf("exit %d, stderr:\n%s\nwant exit %d naming %q", code, stderr, tt.code, tt.want)
			}
		})
	}
	if _, err := os.Stat(out); !os.IsNotExist(err) {
		t.Errorf("refused builds created %s", out)
	}
	t.Run("bad SOURCE_DATE_EPOCH", func(t *testing.T) {
		t.Setenv("SOURCE_DATE_EPOCH", "yesterday")
		_, stderr, code := runCCOS(t, "", "image", "build", "--config", minimal, "--out", out)
		if code != 2 || !strings.Contains(stderr, "SOURCE_DATE_EPOCH") {
			t.Fatalf("exit %d: %s", code, stderr)
		}
	})
}

func TestImageVerify(t *testing.T) {
	needImageTools(t)
	dir := filepath.Join(t.TempDir(), "img")
	built, stderr, code := runCCOS(t, "", "image", "build", "--config", filepath.Join("..", "..", "examples", "minimal.rtfs"), "--out", dir)
	if code != 0 {
		t.Fatalf("build: exit %d: %s", code, stderr)
	}
	out, stderr, code := runCCOS(t, "", "image", "verify", dir)
	if code != 0 || out != built {
		t.Fatalf("verify: exit %d, stdout:\n%s\nwant the build's:\n%s\nstderr: %s", code, out, built, stderr)
	}
	out, _, code = runCCOS(t, "", "image", "verify", "--json", dir)
	var rep imageReport
	if code != 0 || json.Unmarshal([]byte(out), &rep) != nil || rep.Dir != dir {
		t.Fatalf("verify --json: exit %d: %s", code, out)
	}
	writeFile(t, filepath.Join(dir, image.RootfsFile), "changed")
	_, stderr, code = runCCOS(t, "", "image", "verify", dir)
	if code != 1 || !strings.Contains(stderr, "image measurement mismatch: rootfs") {
		t.Fatalf("after tampering: exit %d: %s", code, stderr)
	}
	_, stderr, code = runCCOS(t, "", "image", "verify", t.TempDir())
	if code != 1 || !strings.Contains(stderr, "bad image manifest") {
		t.Fatalf("no image: exit %d: %s", code, stderr)
	}
}

// The attestation workflow end to end: build an image, pin its rootfs hash
// in the config (which does not change the image), run a plan in it, then
// change the rootfs and see the boot refused with both hashes named.
func TestAttestedImageWorkflow(t *testing.T) {
	dir := t.TempDir()
	for d := dir; d != "/" && d != os.TempDir(); d = filepath.Dir(d) {
		os.Chmod(d, 0o755) // QEMU runs unprivileged
	}
	cfgText := func(hash string) string {
		return `(agent.config :version "0.1" :agent-id "agent.attested" :features [:attestation]
  :orchestrator {:isolation {:mode :microvm :fs {:mounts {:capabilities {:mode :ro}}}} :dlp {:enabled true :policy :strict}}
  :microvm {:kernel {:image "img/vmlinuz"} :rootfs {:image "img/rootfs.img" :ro true}
            :resources {:vcpus 1 :mem_mb 192}
            :attestation {:enabled true :expect_rootfs_hash "` + hash + `"}})`
	}
	cfg := filepath.Join(dir, "agent.rtfs")
	placeholder := "sha256:" + strings.Repeat("0", 64)
	writeFile(t, cfg, cfgText(placeholder))
	out, errOut, code := runCCOS(t, "", "image", "build", "--config", cfg, "--out", filepath.Join(dir, "img"), "--json")
	if code != 0 {
		t.Fatalf("image build: %s %s", out, errOut)
	}
	var rep struct {
		Measurements struct{ Rootfs string } `json:"measurements"`
	}
	if err := json.Unmarshal([]byte(out), &rep); err != nil || !strings.HasPrefix(rep.Measurements.Rootfs, "sha256:") {
		t.Fatalf("image build output: %v %s", err, out)
	}
	if !strings.Contains(errOut, rep.Measurements.Rootfs) {
		t.Errorf("no note naming the hash to pin: %s", errOut)
	}
	// Pin the hash; rebuilding gives the same rootfs.
	writeFile(t, cfg, cfgText(rep.Measurements.Rootfs))
	out2, errOut, code := runCCOS(t, "", "image", "build", "--config", cfg, "--out", filepath.Join(dir, "img"), "--json")
	if code != 0 || !strings.Contains(out2, rep.Measurements.Rootfs) || strings.Contains(errOut, "note:") {
		t.Fatalf("rebuild with the pinned hash changed the image: %s %s", out2, errOut)
	}
	plan := writeTemp(t, "p.rtfs", `(plan "att" :body (step "s" (call :ccos.math.add 1 2)))`)
	if out, errOut, code = runCCOS(t, "", "run", "--config", cfg, plan); code != 0 || strings.TrimSpace(out) != "3" {
		t.Fatalf("run on the pinned image: %d %s %s", code, out, errOut)
	}
	// Another rootfs (other capabilities) under the same name is refused.
	caps := filepath.Join(dir, "caps")
	os.MkdirAll(caps, 0o755)
	writeFile(t, filepath.Join(caps, "extra.txt"), "not measured before")
	if _, errOut, code = runCCOS(t, "", "image", "build", "--config", cfg, "--out", filepath.Join(dir, "img"), "--capabilities", caps); code != 0 {
		t.Fatalf("rebuild: %s", errOut)
	}
	_, errOut, code = runCCOS(t, "", "run", "--config", cfg, plan)
	if code != 1 || !strings.Contains(errOut, "refusing to boot") || !strings.Contains(errOut, rep.Measurements.Rootfs) {
		t.Fatalf("changed rootfs: exit %d, %s", code, errOut)
	}
}
