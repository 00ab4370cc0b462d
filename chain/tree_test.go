package chain

import (
	"bytes"
	"encoding/hex"
	"errors"
	"testing"

	"github.com/transparency-dev/merkle/testonly"
)

// TestTreeRFC6962Vectors checks the tree against the published RFC 6962
// test vectors that transparency-dev/merkle ships (the certificate
// transparency reference values): every root of the 8-leaf test tree, every
// node hash, and the empty root.
func TestTreeRFC6962Vectors(t *testing.T) {
	if got, want := NewTree().Root(), testonly.EmptyRootHash(); !bytes.Equal(got, want) {
		t.Fatalf("empty root %x, want %x", got, want)
	}
	// SHA-256 of the empty string, RFC 6962 section 2.1.
	if got := hex.EncodeToString(NewTree().Root()); got != "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855" {
		t.Fatalf("empty root %s", got)
	}
	tree := NewTree()
	roots := testonly.RootHashes()
	for i, leaf := range testonly.LeafInputs() {
		tree.Append(LeafHash(leaf))
		if got := tree.Root(); !bytes.Equal(got, roots[i+1]) {
			t.Fatalf("root of size %d: %x, want %x", i+1, got, roots[i+1])
		}
	}
	for size := uint64(0); size <= tree.Size(); size++ {
		got, err := tree.RootAt(size)
		if err != nil || !bytes.Equal(got, roots[size]) {
			t.Fatalf("RootAt(%d) = %x, %v", size, got, err)
		}
	}
	// Every perfect subtree the tree kept is the published node hash.
	for level, row := range testonly.NodeHashes() {
		for i, want := range row {
			if got := tree.nodes[level][i]; !bytes.Equal(got, want) {
				t.Fatalf("node (%d, %d) = %x, want %x", level, i, got, want)
			}
		}
	}
}

// TestTreeProofs checks every inclusion and consistency proof of trees up
// to 40 leaves against the library's reference tree and verifiers.
func TestTreeProofs(t *testing.T) {
	const n = 40
	tree := NewTree()
	ref := testonly.New(hasher)
	for i := 0; i < n; i++ {
		leaf := []byte{byte(i), 'x'}
		tree.Append(LeafHash(leaf))
		ref.AppendData(leaf)
	}
	for size := uint64(1); size <= n; size++ {
		root, _ := tree.RootAt(size)
		if !bytes.Equal(root, ref.HashAt(size)) {
			t.Fatalf("root at %d differs from the reference", size)
		}
		for i := uint64(0); i < size; i++ {
			p, err := tree.InclusionProof(i, size)
			if err != nil {
				t.Fatal(err)
			}
			want, _ := ref.InclusionProof(i, size)
			if !equalProofs(p, want) {
				t.Fatalf("inclusion %d/%d differs from the reference", i, size)
			}
			leaf, _ := tree.LeafHashAt(i)
			if err := VerifyInclusion(i, size, leaf, p, root); err != nil {
				t.Fatalf("inclusion %d/%d: %v", i, size, err)
			}
			if len(p) > 0 {
				p[0] = append([]byte(nil), p[0]...)
				p[0][0] ^= 1
				if VerifyInclusion(i, size, leaf, p, root) == nil {
					t.Fatalf("damaged inclusion proof %d/%d verified", i, size)
				}
			}
		}
		for s1 := uint64(1); s1 <= size; s1++ {
			p, err := tree.ConsistencyProof(s1, size)
			if err != nil {
				t.Fatal(err)
			}
			want, _ := ref.ConsistencyProof(s1, size)
			if !equalProofs(p, want) {
				t.Fatalf("consistency %d/%d differs from the reference", s1, size)
			}
			r1, _ := tree.RootAt(s1)
			if err := VerifyConsistency(s1, size, p, r1, root); err != nil {
				t.Fatalf("consistency %d/%d: %v", s1, size, err)
			}
		}
	}
	if _, err := tree.InclusionProof(n, n); !errors.Is(err, ErrTreeSize) {
		t.Fatalf("proof outside the tree: %v", err)
	}
	if _, err := tree.ConsistencyProof(3, n+1); !errors.Is(err, ErrTreeSize) {
		t.Fatalf("consistency outside the tree: %v", err)
	}
}

func equalProofs(a, b [][]byte) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if !bytes.Equal(a[i], b[i]) {
			return false
		}
	}
	return true
}
