package governance

import (
	"bytes"
	"crypto"
	"crypto/ed25519"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"strings"
)

// An approval is a signed statement that a key holder approves one plan,
// written as four lines of text:
//
//	ccos-approval v1
//	plan sha256:<hex of the plan source's SHA-256>
//	key <base64 of the 32-byte Ed25519 public key>
//	sig <base64 of the Ed25519 signature of the message below>
//
// The signed message is "ccos plan approval v1\n" followed by the plan
// line's hash. The signature binds the key to exactly one plan text.

const approvalHeader = "ccos-approval v1"

// Approval is a parsed approval.
type Approval struct {
	PlanHash string
	Key      ed25519.PublicKey
	Sig      []byte
}

// ErrBadApproval is wrapped by every error about a malformed approval.
var ErrBadApproval = errors.New("malformed approval")

func approvalMessage(planHash string) []byte {
	return []byte("ccos plan approval v1\n" + planHash)
}

// Approve signs planHash with key and returns the approval text.
func Approve(planHash string, key ed25519.PrivateKey) string {
	sig := ed25519.Sign(key, approvalMessage(planHash))
	pub := key.Public().(ed25519.PublicKey)
	return fmt.Sprintf("%s\nplan %s\nkey %s\nsig %s\n", approvalHeader, planHash,
		base64.StdEncoding.EncodeToString(pub), base64.StdEncoding.EncodeToString(sig))
}

// ParseApproval reads an approval's text.
func ParseApproval(text string) (Approval, error) {
	lines := strings.Split(strings.TrimRight(text, "\n"), "\n")
	if len(lines) != 4 || lines[0] != approvalHeader {
		return Approval{}, fmt.Errorf("%w: want the 4 lines of a %q text", ErrBadApproval, approvalHeader)
	}
	field := func(line, name string) (string, error) {
		v, ok := strings.CutPrefix(line, name+" ")
		if !ok {
			return "", fmt.Errorf("%w: expected a %q line, found %q", ErrBadApproval, name, line)
		}
		return v, nil
	}
	var a Approval
	var err error
	if a.PlanHash, err = field(lines[1], "plan"); err != nil {
		return a, err
	}
	k, err := field(lines[2], "key")
	if err != nil {
		return a, err
	}
	kb, err := base64.StdEncoding.DecodeString(k)
	if err != nil || len(kb) != ed25519.PublicKeySize {
		return a, fmt.Errorf("%w: the key is not a base64 Ed25519 public key", ErrBadApproval)
	}
	a.Key = kb
	s, err := field(lines[3], "sig")
	if err != nil {
		return a, err
	}
	if a.Sig, err = base64.StdEncoding.DecodeString(s); err != nil || len(a.Sig) != ed25519.SignatureSize {
		return a, fmt.Errorf("%w: the signature is not a base64 Ed25519 signature", ErrBadApproval)
	}
	return a, nil
}

// verifyApprovals returns the distinct trusted keys (base64) that validly
// approved planHash.
func verifyApprovals(approvals []Approval, planHash string, trusted crypto.PublicKey) []string {
	tk, ok := trusted.(ed25519.PublicKey)
	if !ok {
		return nil
	}
	var out []string
	for _, a := range approvals {
		if a.PlanHash != planHash || !bytes.Equal(a.Key, tk) || !ed25519.Verify(a.Key, approvalMessage(planHash), a.Sig) {
			continue
		}
		k := base64.StdEncoding.EncodeToString(a.Key)
		if !contains(out, k) {
			out = append(out, k)
		}
	}
	return out
}

func contains(xs []string, x string) bool {
	for _, y := range xs {
		if y == x {
			return true
		}
	}
	return false
}

// ParsePrivateKey reads an Ed25519 private key in PEM (PKCS #8).
func ParsePrivateKey(pemText []byte) (ed25519.PrivateKey, error) {
	block, _ := pem.Decode(pemText)
	if block == nil {
		return nil, errors.New("no PEM block found")
	}
	k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("not a PKCS #8 private key: %w", err)
	}
	ek, ok := k.(ed25519.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("the key is %T, not Ed25519", k)
	}
	return ek, nil
}
