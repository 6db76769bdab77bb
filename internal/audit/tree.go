package audit

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"fmt"

	"github.com/transparency-dev/merkle/compact"
	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"
)

// The tree is RFC 6962's: a leaf hashes as SHA-256(0x00 || data), an
// interior node as SHA-256(0x01 || left || right). These two functions are
// rfc6962.DefaultHasher's, written to hash from a stack buffer; a test
// checks them against it and against the RFC's published vectors.

// hashSize is the size of every hash in the tree.
const hashSize = sha256.Size

// leafHash returns the RFC 6962 leaf hash of data.
func leafHash(data []byte) []byte {
	h := sha256.New()
	h.Write([]byte{rfc6962.RFC6962LeafHashPrefix})
	h.Write(data)
	return h.Sum(make([]byte, 0, hashSize))
}

// nodeHash returns the RFC 6962 hash of an interior node.
func nodeHash(left, right []byte) []byte {
	var b [1 + 2*hashSize]byte
	b[0] = rfc6962.RFC6962NodeHashPrefix
	copy(b[1:], left)
	copy(b[1+hashSize:], right)
	sum := sha256.Sum256(b[:])
	return sum[:]
}

// emptyRoot is the RFC 6962 root of the empty tree: SHA-256 of nothing.
var emptyRoot = func() []byte { h := sha256.Sum256(nil); return h[:] }()

// ranges makes compact ranges over the log's tree.
var ranges = &compact.RangeFactory{Hash: nodeHash}

// tileBits is the height of a tile: the tree files keep every node at a
// level that is a multiple of tileBits, so any complete node is the root of
// at most 2^tileBits stored hashes (C2SP tlog-tiles uses the same 256).
const tileBits = 8

// segmentBits gives the number of events per segment file, 2^segmentBits:
// a whole number of tiles of stratum 2, so pruning whole segments keeps the
// tree files complete for what remains.
const segmentBits = 2 * tileBits

// perfectRoot returns the root of the perfect subtree whose bottom row is
// hashes (a power of two of them). It reuses hashes as scratch.
func perfectRoot(hashes [][]byte) []byte {
	for n := len(hashes); n > 1; n /= 2 {
		for i := 0; i < n/2; i++ {
			hashes[i] = nodeHash(hashes[2*i], hashes[2*i+1])
		}
	}
	return hashes[0]
}

// node returns the hash of a complete node of the tree, from the stored
// hashes of the tile level at or below it: at most 2^tileBits of them.
func node(ctx context.Context, src Source, id compact.NodeID) ([]byte, error) {
	k := int(id.Level / tileBits)
	r := id.Level % tileBits
	first := id.Index << r
	hashes, err := src.Hashes(ctx, k, first, first+1<<r)
	if err != nil {
		return nil, err
	}
	return perfectRoot(hashes), nil
}

// rangeAt returns the compact range of the tree's first size leaves, read
// from the stored hashes of complete subtrees.
func rangeAt(ctx context.Context, src Source, size uint64) (*compact.Range, error) {
	ids := compact.RangeNodes(0, size, nil)
	hashes := make([][]byte, len(ids))
	for i, id := range ids {
		var err error
		if hashes[i], err = node(ctx, src, id); err != nil {
			return nil, err
		}
	}
	return ranges.NewRange(0, size, hashes)
}

// inclusionProof returns the proof that entry index is in the tree of the
// first size entries.
func inclusionProof(ctx context.Context, src Source, index, size uint64) ([][]byte, error) {
	nodes, err := proof.Inclusion(index, size)
	if err != nil {
		return nil, err
	}
	hashes := make([][]byte, len(nodes.IDs))
	for i, id := range nodes.IDs {
		if hashes[i], err = node(ctx, src, id); err != nil {
			return nil, fmt.Errorf("inclusion proof for entry %d: %w", index, err)
		}
	}
	return nodes.Rehash(hashes, nodeHash)
}

func beUint64(b []byte) uint64 { return binary.BigEndian.Uint64(b) }
