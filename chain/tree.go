package chain

import (
	"crypto"
	"errors"
	"fmt"

	"github.com/transparency-dev/merkle/compact"
	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"
)

// hasher is the RFC 6962 SHA-256 tree hasher.
var hasher = rfc6962.New(crypto.SHA256)

// LeafHash returns the RFC 6962 leaf hash of an event's canonical encoding:
// SHA-256(0x00 || encoded).
func LeafHash(encoded []byte) []byte { return hasher.HashLeaf(encoded) }

// ErrTreeSize is returned for a proof request outside the tree.
var ErrTreeSize = errors.New("chain: index or size outside the tree")

// Tree is an append-only RFC 6962 Merkle tree that keeps every perfect
// subtree hash so that it can produce inclusion and consistency proofs for
// any earlier size. Appends go through a compact range, which hands each
// completed node to the tree.
type Tree struct {
	rng   *compact.Range
	nodes [][][]byte // nodes[level][index]
}

// NewTree returns an empty tree.
func NewTree() *Tree {
	rf := &compact.RangeFactory{Hash: hasher.HashChildren}
	return &Tree{rng: rf.NewEmptyRange(0)}
}

// Size returns the number of leaves.
func (t *Tree) Size() uint64 { return t.rng.End() }

// Append adds a leaf hash (see LeafHash).
func (t *Tree) Append(leafHash []byte) {
	if err := t.rng.Append(leafHash, t.visit); err != nil {
		// Append fails only for a range that does not start at 0.
		panic("chain: compact range: " + err.Error())
	}
}

func (t *Tree) visit(id compact.NodeID, hash []byte) {
	for uint(len(t.nodes)) <= id.Level {
		t.nodes = append(t.nodes, nil)
	}
	row := t.nodes[id.Level]
	if uint64(len(row)) == id.Index {
		t.nodes[id.Level] = append(row, hash)
	}
}

// Root returns the root hash of the whole tree.
func (t *Tree) Root() []byte {
	if t.Size() == 0 {
		return hasher.EmptyRoot()
	}
	r, err := t.rng.GetRootHash(nil)
	if err != nil {
		panic("chain: compact range: " + err.Error())
	}
	return r
}

// RootAt returns the root hash of the tree's first size leaves.
func (t *Tree) RootAt(size uint64) ([]byte, error) {
	if size > t.Size() {
		return nil, fmt.Errorf("%w: size %d > %d", ErrTreeSize, size, t.Size())
	}
	if size == 0 {
		return hasher.EmptyRoot(), nil
	}
	ids := compact.RangeNodes(0, size, nil)
	h := t.get(ids)
	root := h[len(h)-1]
	for i := len(h) - 2; i >= 0; i-- {
		root = hasher.HashChildren(h[i], root)
	}
	return root, nil
}

// LeafHashAt returns the hash of leaf i.
func (t *Tree) LeafHashAt(i uint64) ([]byte, error) {
	if i >= t.Size() {
		return nil, fmt.Errorf("%w: leaf %d, size %d", ErrTreeSize, i, t.Size())
	}
	return t.nodes[0][i], nil
}

// InclusionProof returns the RFC 6962 inclusion proof of leaf index in the
// tree of the first size leaves.
func (t *Tree) InclusionProof(index, size uint64) ([][]byte, error) {
	if index >= size || size > t.Size() {
		return nil, fmt.Errorf("%w: leaf %d, size %d, tree %d", ErrTreeSize, index, size, t.Size())
	}
	n, err := proof.Inclusion(index, size)
	if err != nil {
		return nil, err
	}
	return n.Rehash(t.get(n.IDs), hasher.HashChildren)
}

// ConsistencyProof returns the RFC 6962 consistency proof between the trees
// of the first size1 and size2 leaves.
func (t *Tree) ConsistencyProof(size1, size2 uint64) ([][]byte, error) {
	if size1 > size2 || size2 > t.Size() {
		return nil, fmt.Errorf("%w: sizes %d, %d, tree %d", ErrTreeSize, size1, size2, t.Size())
	}
	n, err := proof.Consistency(size1, size2)
	if err != nil {
		return nil, err
	}
	return n.Rehash(t.get(n.IDs), hasher.HashChildren)
}

func (t *Tree) get(ids []compact.NodeID) [][]byte {
	h := make([][]byte, len(ids))
	for i, id := range ids {
		h[i] = t.nodes[id.Level][id.Index]
	}
	return h
}

// VerifyInclusion checks an inclusion proof of a leaf hash against a root
// (proof.VerifyInclusion with the RFC 6962 SHA-256 hasher).
func VerifyInclusion(index, size uint64, leafHash []byte, p [][]byte, root []byte) error {
	return proof.VerifyInclusion(hasher, index, size, leafHash, p, root)
}

// VerifyConsistency checks a consistency proof between two roots
// (proof.VerifyConsistency with the RFC 6962 SHA-256 hasher).
func VerifyConsistency(size1, size2 uint64, p [][]byte, root1, root2 []byte) error {
	return proof.VerifyConsistency(hasher, size1, size2, p, root1, root2)
}
