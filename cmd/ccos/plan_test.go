package main

import (
	"crypto/ed25519"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
)

func TestPlanCheck(t *testing.T) {
	out, errOut, code := runCCOS(t, "", "plan", "check", "--json", "../../examples/plans/multi-step.rtfs")
	var doc struct {
		PlanHash string `json:"plan_hash"`
		Steps    []struct {
			Step         string
			Capabilities []string
			Determinism  struct{ Time string }
		}
	}
	if code != 0 || json.Unmarshal([]byte(out), &doc) != nil {
		t.Fatalf("exit %d, stdout %s, stderr %s", code, out, errOut)
	}
	if !strings.HasPrefix(doc.PlanHash, "sha256:") || len(doc.Steps) != 4 || doc.Steps[3].Determinism.Time != "real" {
		t.Errorf("admission: %s", out)
	}
	net := writeTemp(t, "net.rtfs", `(step "fetch" [:effects [[:network {:domains ["api.example.com"]}]]] 1)`)
	_, errOut, code = runCCOS(t, "", "plan", "check", net)
	if code != 1 || !strings.Contains(errOut, `NETWORK_DISABLED: step "fetch"`) {
		t.Errorf("network under minimal: exit %d, %s", code, errOut)
	}
	_, errOut, code = runCCOS(t, "", "plan", "check", "--config", "../../examples/networked.rtfs", net)
	if code != 1 || !strings.Contains(errOut, "DOMAIN_NOT_ALLOWED") {
		t.Errorf("domain outside the allowlist: exit %d, %s", code, errOut)
	}
	// Nothing runs when a plan is rejected.
	_, errOut, code = runCCOS(t, "", "run", net)
	if code != 1 || !strings.Contains(errOut, "was not admitted") || strings.Contains(errOut, "guest") {
		t.Errorf("run of a rejected plan: exit %d, %s", code, errOut)
	}
}

func TestPlanApprovals(t *testing.T) {
	pub, priv, _ := ed25519.GenerateKey(nil)
	der, _ := x509.MarshalPKIXPublicKey(pub)
	pubPEM := strings.TrimSpace(string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})))
	pk, _ := x509.MarshalPKCS8PrivateKey(priv)
	keyFile := writeTemp(t, "key.pem", string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: pk})))
	cfg := writeTemp(t, "cfg.rtfs", fmt.Sprintf(`(-> (profile:minimal "agent.approved")
  (assoc-in [:governance :policies :default :requires_approvals] 1)
  (assoc-in [:governance :keys :verify] %q))`, pubPEM))
	planFile := "../../examples/plans/hello.rtfs"
	_, errOut, code := runCCOS(t, "", "run", "--config", cfg, planFile)
	if code != 1 || !strings.Contains(errOut, "APPROVALS_MISSING") {
		t.Fatalf("unapproved run: exit %d, %s", code, errOut)
	}
	hash, _, _ := runCCOS(t, "", "plan", "hash", planFile)
	approval, errOut, code := runCCOS(t, "", "plan", "approve", planFile, "--key", keyFile)
	if code != 0 || !strings.Contains(approval, "plan "+strings.TrimSpace(hash)) {
		t.Fatalf("approve: exit %d, %q, %s", code, approval, errOut)
	}
	approvalFile := filepath.Join(t.TempDir(), "hello.approval")
	writeFile(t, approvalFile, approval)
	out, errOut, code := runCCOS(t, "", "run", "--config", cfg, "--approval", approvalFile, planFile)
	if code != 0 || !strings.HasSuffix(out, "\"Hello, world\"\n") {
		t.Errorf("approved run: exit %d, %q, %s", code, out, errOut)
	}
	other := writeTemp(t, "other.rtfs", `(step "s" (call :ccos.echo 2))`)
	if _, errOut, code := runCCOS(t, "", "run", "--config", cfg, "--approval", approvalFile, other); code != 1 || !strings.Contains(errOut, "APPROVALS_MISSING") {
		t.Errorf("approval of another plan: exit %d, %s", code, errOut)
	}
	bad := writeTemp(t, "bad.approval", "not an approval")
	if _, errOut, code := runCCOS(t, "", "run", "--config", cfg, "--approval", bad, planFile); code != 1 || !strings.Contains(errOut, "malformed approval") {
		t.Errorf("malformed approval: exit %d, %s", code, errOut)
	}
}

func TestSecurityLevelFlags(t *testing.T) {
	hello := "../../examples/plans/hello.rtfs"
	if _, errOut, code := runCCOS(t, "", "plan", "check", "--security-level", "pure", hello); code != 1 || !strings.Contains(errOut, "SECURITY_LEVEL") {
		t.Errorf("pure: exit %d, %s", code, errOut)
	}
	if _, errOut, code := runCCOS(t, "", "run", "--deny", "ccos.string.*", hello); code != 1 || !strings.Contains(errOut, "CAPABILITY_DENIED") {
		t.Errorf("deny: exit %d, %s", code, errOut)
	}
	if _, _, code := runCCOS(t, "", "plan", "check", "--security-level", "root", hello); code != 2 {
		t.Errorf("bad level: exit %d, want 2", code)
	}
	if out, _, code := runCCOS(t, "", "plan", "check", "--security-level", "full", hello); code != 0 || !strings.Contains(out, "at the full level") {
		t.Errorf("full: exit %d, %s", code, out)
	}
}

// plan check and run admit against the marketplace of the config: the
// example registry's contracts, narrowed by the config's entries.
func TestPlanCheckMarketplace(t *testing.T) {
	cfg, notify := "../../examples/marketplace.rtfs", "../../examples/plans/notify.rtfs"
	out, errOut, code := runCCOS(t, "", "plan", "check", "--security-level", "full", "--config", cfg, notify)
	if code != 0 || !strings.Contains(out, "com.collaboration.slack-post  slack.com POST") || !strings.Contains(out, "/ 3000 ms") {
		t.Fatalf("exit %d, stdout %s, stderr %s", code, out, errOut)
	}
	_, errOut, code = runCCOS(t, "", "run", "--provider", "process", "--security-level", "full", "--config", cfg, notify)
	if code != 1 || !strings.Contains(errOut, "has a contract but no implementation") {
		t.Errorf("run: exit %d, stderr %s", code, errOut)
	}
	abs, _ := filepath.Abs("../../examples/capabilities")
	broad := writeTemp(t, "broad.rtfs", `(-> (profile:networked "agent.b" ["slack.com"])
    (assoc :marketplace {:registry_paths [`+fmt.Sprintf("%q", abs)+`]})
    (assoc-in [:capabilities :entries]
              [{:capability :com.collaboration.slack-post
                :contract `+fmt.Sprintf("%q", filepath.Join(abs, "slack-post.rtfs"))+`
                :resources {:max_time_ms 60000}}]))`)
	_, errOut, code = runCCOS(t, "", "plan", "check", "--security-level", "full", "--config", broad, notify)
	if code != 1 || !strings.Contains(errOut, "broad.rtfs:6:42: the config entry for :com.collaboration.slack-post broadens its contract") ||
		!strings.Contains(errOut, ":resources :max_time_ms is 60000, beyond 5000") {
		t.Errorf("broadening entry: exit %d, stderr %s", code, errOut)
	}
}
