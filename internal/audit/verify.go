package audit

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"sort"

	"github.com/transparency-dev/formats/log"
	"github.com/transparency-dev/merkle/compact"
	"golang.org/x/mod/sumdb/note"
)

// VerifyOptions says what Verify checks the log against.
type VerifyOptions struct {
	// Origin is the log's name; checkpoints for another log are refused.
	Origin string
	// Verifier checks checkpoint signatures. An auditor should pass a key
	// kept apart from the machine, so as not to trust its operator.
	Verifier note.Verifier
	// Trusted are checkpoints kept outside the log's directory (the key
	// store's, copies published elsewhere), by the name to report them
	// under. Each must verify and agree with the log.
	Trusted map[string][]byte
	// Progress, if set, is called now and then with entries read so far.
	Progress func(done uint64)
}

// Problem is one thing Verify found wrong. Index is the first entry it
// concerns, or -1 if it concerns no single entry.
type Problem struct {
	Index int64  `json:"index"`
	What  string `json:"what"`
}

// Report is what Verify found.
type Report struct {
	Entries     uint64    `json:"entries"`     // entries read
	Pruned      uint64    `json:"pruned"`      // entries before this index were pruned
	Checkpoints int       `json:"checkpoints"` // checkpoints whose root was recomputed and matched
	Sealed      uint64    `json:"sealed"`      // size of the largest checkpoint that matched
	Problems    []Problem `json:"problems"`    // in order of index; empty if the log is intact
}

// OK reports whether Verify found nothing wrong.
func (r *Report) OK() bool { return len(r.Problems) == 0 }

// maxProblems bounds the report: past the first few, damage repeats.
const maxProblems = 20

// signedCheckpoint is a checkpoint whose signature verified.
type signedCheckpoint struct {
	name string // where it came from, for the report
	cp   *log.Checkpoint
}

// Verify checks the log in dir against its checkpoints and any trusted
// ones; see VerifySource. It needs no lock and may run while the log is
// being written.
func Verify(dir string, opts VerifyOptions) (*Report, error) {
	if _, err := os.Stat(filepath.Join(dir, "entries")); err != nil {
		return nil, fmt.Errorf("no audit log in %s: %w", dir, err)
	}
	return VerifySource(context.Background(), DirSource(dir), opts)
}

// VerifySource checks a log: every checkpoint must carry a valid signature
// from the verifier, the tree recomputed from the entries must have each
// checkpoint's root at its size, the log must hold at least as many
// entries as every checkpoint claims, and the stored hashes (which
// inclusion proofs are built from) must match the entries. It returns an
// error only if it cannot read the log; what is wrong with the log is in
// the report, first problem first. Entries after the newest checkpoint are
// read but proven by no signature yet.
func VerifySource(ctx context.Context, src Source, opts VerifyOptions) (*Report, error) {
	r := &Report{Problems: []Problem{}}
	problem := func(index int64, format string, args ...any) {
		if len(r.Problems) < maxProblems {
			r.Problems = append(r.Problems, Problem{index, fmt.Sprintf(format, args...)})
		}
	}
	var cps []signedCheckpoint
	raw, err := src.Checkpoints(ctx)
	var dmg *Damage
	if errors.As(err, &dmg) {
		problem(-1, "%s", dmg.What)
	} else if err != nil {
		return nil, err
	}
	var prevSize uint64
	for i, b := range raw {
		cp, _, _, err := log.ParseCheckpoint(b, opts.Origin, opts.Verifier)
		if err != nil {
			problem(-1, "checkpoint %d in the checkpoints file does not verify with the given key (forged or altered): %v", i+1, err)
			continue
		}
		if cp.Size < prevSize {
			problem(int64(cp.Size), "checkpoint %d (size %d) is smaller than the one before it (size %d): checkpoints reordered or replaced", i+1, cp.Size, prevSize)
		}
		prevSize = cp.Size
		cps = append(cps, signedCheckpoint{fmt.Sprintf("checkpoint %d", i+1), cp})
	}
	own := len(cps) // the log's own checkpoints come first
	names := make([]string, 0, len(opts.Trusted))
	for name := range opts.Trusted {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		cp, _, _, err := log.ParseCheckpoint(opts.Trusted[name], opts.Origin, opts.Verifier)
		if err != nil {
			problem(-1, "%s does not verify with the given key: %v", name, err)
			continue
		}
		cps = append(cps, signedCheckpoint{name, cp})
	}
	// The log stores each checkpoint itself before the key store and the
	// publishers get it, so none of theirs can be newer than its own.
	var ownNewest uint64
	for _, c := range cps[:own] {
		ownNewest = max(ownNewest, c.cp.Size)
	}
	for _, c := range cps[own:] {
		if c.cp.Size > ownNewest {
			problem(-1, "the %s is for %d entries, but the log's checkpoints file goes up to %d: the log's own checkpoints were cut back or removed", c.name, c.cp.Size, ownNewest)
			break
		}
	}
	if len(cps) == 0 {
		problem(-1, "no checkpoint verifies with the given key: nothing proves the log")
	}
	// Checkpoints by size, to be met in order while the tree grows.
	sort.SliceStable(cps, func(i, j int) bool { return cps[i].cp.Size < cps[j].cp.Size })

	if r.Pruned, err = src.Pruned(ctx); err != nil {
		return nil, err
	}
	rng, err := rangeAt(ctx, src, r.Pruned)
	if err != nil {
		return nil, fmt.Errorf("read the tree hashes kept for the pruned entries: %w", err)
	}
	next := 0 // first checkpoint not yet reached
	for next < len(cps) && cps[next].cp.Size < r.Pruned {
		next++ // proves entries no longer kept; nothing to recompute
	}
	check := func(size uint64) {
		for ; next < len(cps) && cps[next].cp.Size == size; next++ {
			root := emptyRoot
			if size > 0 {
				root, _ = rng.GetRootHash(nil)
			}
			c := cps[next]
			if !bytes.Equal(root, c.cp.Hash) {
				problem(-1, "the entries before index %d do not hash to the root signed in %s: an entry was changed, removed, reordered or inserted after it was signed", size, c.name)
				continue
			}
			r.Checkpoints++
			r.Sealed = size
		}
	}
	check(r.Pruned)
	tree := &treeCheck{src: src, firstBad: math.MaxUint64}
	n := r.Pruned
	badHash := false
	err = src.Scan(ctx, r.Pruned, func(i uint64, data, stored []byte) error {
		h := leafHash(data)
		if !badHash && stored != nil && !bytes.Equal(stored, h) {
			badHash = true
			tree.firstBad = i
			problem(int64(i), "entry %d differs from the hash recorded when it was written: it was changed, removed, reordered or inserted", i)
		}
		if err := rng.Append(h, tree.visit); err != nil {
			return err
		}
		n = i + 1
		check(n)
		if opts.Progress != nil && n%(1<<20) == 0 {
			opts.Progress(n)
		}
		if len(tree.pending) >= 4096 {
			return tree.flush(ctx, problem)
		}
		return nil
	})
	if errors.As(err, &dmg) {
		problem(int64(dmg.Index), "%s", dmg.What)
	} else if err != nil {
		return nil, err
	}
	if err := tree.flush(ctx, problem); err != nil {
		return nil, err
	}
	r.Entries = n
	for ; next < len(cps); next++ {
		c := cps[next]
		if c.cp.Size > n {
			problem(int64(n), "%s is for %d entries but the log holds %d: entries %d..%d were removed (truncated or rolled back)", c.name, c.cp.Size, n, n, c.cp.Size-1)
		}
	}
	sort.SliceStable(r.Problems, func(i, j int) bool {
		a, b := r.Problems[i].Index, r.Problems[j].Index
		return a >= 0 && (b < 0 || a < b)
	})
	return r, nil
}

// treeCheck compares the tile-level nodes Verify recomputes with the ones
// stored, a few thousand at a time.
type treeCheck struct {
	src      Source
	pending  []NodeHash
	bad      bool
	firstBad uint64 // the first entry whose stored hash differs: trees over it differ as a consequence
}

func (t *treeCheck) visit(id compact.NodeID, hash []byte) {
	if id.Level > 0 && id.Level%tileBits == 0 && !t.bad {
		t.pending = append(t.pending, NodeHash{Stratum: int(id.Level / tileBits), Index: id.Index, Hash: hash})
	}
}

func (t *treeCheck) flush(ctx context.Context, problem func(int64, string, ...any)) error {
	defer func() { t.pending = t.pending[:0] }()
	byK := map[int][]NodeHash{}
	for _, h := range t.pending {
		byK[h.Stratum] = append(byK[h.Stratum], h)
	}
	for k, hs := range byK {
		if t.bad {
			return nil
		}
		stored, err := t.src.Hashes(ctx, k, hs[0].Index, hs[len(hs)-1].Index+1)
		if err != nil {
			t.bad = true
			first := hs[0].Index << (k * tileBits)
			problem(int64(first), "the stored tree level %d is missing hashes from the subtree starting at index %d (inclusion proofs cannot be built): %v", k*tileBits, first, err)
			return nil
		}
		for _, h := range hs {
			if (h.Index+1)<<(k*tileBits) > t.firstBad {
				break
			}
			if !bytes.Equal(stored[h.Index-hs[0].Index], h.Hash) {
				t.bad = true
				first := h.Index << (k * tileBits)
				problem(int64(first), "tree file %d disagrees with the entries at the subtree starting at index %d (inclusion proofs from it would be wrong)", k, first)
				break
			}
		}
	}
	return nil
}
