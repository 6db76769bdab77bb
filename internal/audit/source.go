package audit

import (
	"context"
	"fmt"
)

// Source is a log's storage as Verify and Export read it: the files of a
// Log, or the tables of a log shared through PostgreSQL. Implementations
// are safe for concurrent use.
type Source interface {
	// Checkpoints returns every stored signed checkpoint, oldest first. A
	// checkpoint that cannot be read as stored ends the list with a
	// *Damage error, after the ones before it.
	Checkpoints(ctx context.Context) ([][]byte, error)
	// Pruned returns the index of the first entry still kept; 0 if none
	// was pruned.
	Pruned(ctx context.Context) (uint64, error)
	// Scan calls fn with every entry from index from to the end, in order,
	// with the leaf hash stored for it when it was written (nil if none is
	// stored yet). It stops at the first error fn returns, and returns it.
	// An entry that cannot be read as stored (a damaged record, a gap)
	// ends the scan with a *Damage error.
	Scan(ctx context.Context, from uint64, fn func(index uint64, data, leafHash []byte) error) error
	// Hashes returns the stored hashes of tree level 8k for the node
	// indices [from, to): the leaf hashes for k = 0, above them the roots
	// of the complete subtrees of 256^k leaves. An error if any is missing.
	Hashes(ctx context.Context, k int, from, to uint64) ([][]byte, error)
}

// Damage reports a stored entry or checkpoint that cannot be read as one.
type Damage struct {
	Index uint64 // the entry's index, or the checkpoint's position
	What  string
}

func (d *Damage) Error() string { return fmt.Sprintf("entry %d: %s", d.Index, d.What) }

// NodeHash is a hash of the tree to store: Stratum k holds level 8k.
type NodeHash struct {
	Stratum int
	Index   uint64
	Hash    []byte
}

// SharedStore is the storage of a log that several instances append to
// through one database, which gives the order. One instance at a time
// (the one that holds the lead) extends the tree and signs checkpoints.
// Implementations are safe for concurrent use.
type SharedStore interface {
	Source
	// Append stores entries durably at the next indices, in one
	// transaction, and returns the first index.
	Append(ctx context.Context, entries [][]byte) (uint64, error)
	// Size returns the number of entries appended so far.
	Size(ctx context.Context) (uint64, error)
	// TreeSize returns how many entries the stored hashes, and the newest
	// checkpoint, cover.
	TreeSize(ctx context.Context) (uint64, error)
	// SaveTree stores hashes (the leaf hashes of the entries [from, to)
	// and the tile-level nodes they complete) and checkpoint, signed for
	// size to, in one transaction. ECONFLICT if the tree size is not from:
	// another instance extended it.
	SaveTree(ctx context.Context, from, to uint64, hashes []NodeHash, checkpoint []byte) error
	// Lead makes this instance the one that extends the tree, if no other
	// instance is: ok reports whether it now leads.
	Lead(ctx context.Context) (l Leadership, ok bool, err error)
	// Prune deletes the entries before keep and their leaf hashes, keeping
	// the higher hashes, and records keep as the first entry kept.
	Prune(ctx context.Context, keep uint64) error
}

// Leadership is the lead of a SharedStore, held until released or lost
// (the database session that holds it ends).
type Leadership interface {
	// Check returns an error if the lead was lost.
	Check(ctx context.Context) error
	// Release gives the lead up.
	Release()
}
