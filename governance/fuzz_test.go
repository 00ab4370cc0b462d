package governance

import (
	"crypto/ed25519"
	"errors"
	"testing"
)

// FuzzParseApproval feeds arbitrary text to the approval reader (seeds:
// a real approval and near misses). It must never panic; what it refuses
// wraps ErrBadApproval, and what it accepts reads back the same.
func FuzzParseApproval(f *testing.F) {
	_, key, _ := ed25519.GenerateKey(nil)
	f.Add(Approve("sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855", key))
	f.Add(Approve("sha256:00ff", key))
	f.Add("ccos-approval v1\nplan x\nkey y\nsig z\n")
	f.Add("ccos-approval v1\nplan sha256:00\nkey AAAA\nsig AAAA")
	f.Add("")
	f.Fuzz(func(t *testing.T, text string) {
		a, err := ParseApproval(text)
		if err != nil {
			if !errors.Is(err, ErrBadApproval) {
				t.Fatalf("an error that does not wrap ErrBadApproval: %v", err)
			}
			return
		}
		if len(a.Key) != ed25519.PublicKeySize || len(a.Sig) != ed25519.SignatureSize {
			t.Fatalf("accepted a key of %d bytes and a signature of %d", len(a.Key), len(a.Sig))
		}
	})
}
