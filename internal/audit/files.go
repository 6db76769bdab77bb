package audit

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/lethe-privacy/lethe"
	"github.com/transparency-dev/merkle/compact"
)

// idxEntry is the size of an entry's line in a segment's .idx file: its
// leaf hash, then the end offset of its record in the .log file.
const idxEntry = hashSize + 8

const segmentSize = 1 << segmentBits

// writer is the log's write position.
type writer struct {
	seg  uint64   // current segment number
	log  *os.File // its .log file
	idx  *os.File // its .idx file
	off  int64    // end of the last record in log
	n    uint64   // entries in the log
	tree []*os.File
	buf  []byte
	ibuf []byte
	hs   [][]byte
}

func segmentName(seg uint64) string { return fmt.Sprintf("%016x", seg<<segmentBits) }

// store reads a log directory's files. It needs no lock: entries up to a
// checkpoint never change, so a reader may run beside the writing process.
type store struct{ dir string }

func (s store) segmentPath(seg uint64, ext string) string {
	return filepath.Join(s.dir, "entries", segmentName(seg)+ext)
}

func (s store) treePath(k int) string {
	return filepath.Join(s.dir, "tree", strconv.Itoa(k))
}

// commit writes the batch's records, syncs them, then extends the tree.
// Only the leader calls it.
func (l *Log) commit(batch []*pending) error {
	w := &l.w
	w.buf, w.ibuf, w.hs = w.buf[:0], w.ibuf[:0], w.hs[:0]
	for _, p := range batch {
		p.first = w.n + uint64(len(w.hs))
		for i, leaf := range p.leaves {
			if w.n+uint64(len(w.hs)) == (w.seg+1)<<segmentBits {
				if err := l.flush(); err != nil {
					return err
				}
				if err := l.roll(); err != nil {
					return err
				}
			}
			w.buf = appendRecord(w.buf, p.entries[i])
			w.ibuf = append(w.ibuf, leaf...)
			w.ibuf = binary.BigEndian.AppendUint64(w.ibuf, uint64(w.off)+uint64(len(w.buf)))
			w.hs = append(w.hs, leaf)
		}
	}
	return l.flush()
}

// flush writes and syncs the buffered records to the current segment, then
// records their hashes and extends the tree.
func (l *Log) flush() error {
	w := &l.w
	if len(w.hs) == 0 {
		return nil
	}
	if _, err := w.log.WriteAt(w.buf, w.off); err != nil {
		return fmt.Errorf("write %s: %w", w.log.Name(), err)
	}
	if err := fdatasync(w.log); err != nil {
		return err
	}
	first := w.n - w.seg<<segmentBits
	if _, err := w.idx.WriteAt(w.ibuf, int64(first)*idxEntry); err != nil {
		return fmt.Errorf("write %s: %w", w.idx.Name(), err)
	}
	l.treeMu.Lock()
	err := l.extend(w.hs)
	l.treeMu.Unlock()
	if err != nil {
		return err
	}
	w.off += int64(len(w.buf))
	w.n += uint64(len(w.hs))
	l.size.Store(w.n)
	w.buf, w.ibuf, w.hs = w.buf[:0], w.ibuf[:0], w.hs[:0]
	return nil
}

// extend appends leaf hashes to the tree, writing every completed node at
// a tile boundary level to its tree file. l.treeMu held.
func (l *Log) extend(leaves [][]byte) error {
	var err error
	visit := func(id compact.NodeID, hash []byte) {
		if id.Level == 0 || id.Level%tileBits != 0 || err != nil {
			return
		}
		err = l.writeNode(int(id.Level/tileBits), id.Index, hash)
	}
	for _, h := range leaves {
		if e := l.rng.Append(h, visit); e != nil {
			return fmt.Errorf("extend audit tree: %w", e)
		}
	}
	return err
}

func (l *Log) writeNode(k int, index uint64, hash []byte) error {
	w := &l.w
	for len(w.tree) <= k {
		w.tree = append(w.tree, nil)
	}
	if w.tree[k] == nil {
		f, err := os.OpenFile(l.treePath(k), os.O_RDWR|os.O_CREATE, 0o600)
		if err != nil {
			return err
		}
		w.tree[k] = f
	}
	if _, err := w.tree[k].WriteAt(hash, int64(index)*hashSize); err != nil {
		return fmt.Errorf("write audit tree: %w", err)
	}
	return nil
}

// roll closes the full current segment and starts the next.
func (l *Log) roll() error {
	w := &l.w
	if err := w.idx.Sync(); err != nil {
		return fmt.Errorf("sync %s: %w", w.idx.Name(), err)
	}
	err := errors.Join(w.log.Close(), w.idx.Close())
	w.log, w.idx = nil, nil
	if err != nil {
		return err
	}
	return l.openSegment(w.seg+1, 0)
}

// openSegment makes seg the current segment, writing from off. The files
// are created if missing, and the directory synced so they survive a crash.
func (l *Log) openSegment(seg uint64, off int64) error {
	w := &l.w
	var err error
	if w.log, err = os.OpenFile(l.segmentPath(seg, ".log"), os.O_RDWR|os.O_CREATE, 0o600); err != nil {
		return err
	}
	if w.idx, err = os.OpenFile(l.segmentPath(seg, ".idx"), os.O_RDWR|os.O_CREATE, 0o600); err != nil {
		return err
	}
	w.seg, w.off = seg, off
	return syncDir(filepath.Join(l.dir, "entries"))
}

// closeFiles closes every file the log holds open.
func (l *Log) closeFiles() error {
	var errs []error
	w := &l.w
	for _, f := range append([]*os.File{w.log, w.idx, l.cpFile}, w.tree...) {
		if f != nil {
			errs = append(errs, f.Close())
		}
	}
	if l.lock != nil {
		errs = append(errs, l.lock.Close()) // releases the flock
	}
	return errors.Join(errs...)
}

// recover brings the log to a consistent state after Open: it reads the
// last checkpoint, rebuilds the tree to it from the hash files, checks the
// root, then replays every entry written after it.
func (l *Log) recover(ctx context.Context) error {
	pruned, err := readPruned(l.dir)
	if err != nil {
		return err
	}
	l.pruned.Store(pruned)
	cp, err := l.openCheckpoints()
	if err != nil {
		return err
	}
	segs, err := l.segments()
	if err != nil {
		return err
	}
	var size uint64
	if cp != nil {
		size = cp.Size
	}
	if size < pruned {
		return damaged("last checkpoint (size %d) is before the pruned point %d", size, pruned)
	}
	// Hash files past the checkpoint may be incomplete (they are synced
	// only with checkpoints): cut them back and rebuild from the entries.
	for k := 1; ; k++ {
		fi, err := os.Stat(l.treePath(k))
		if errors.Is(err, fs.ErrNotExist) {
			break
		} else if err != nil {
			return err
		}
		if keep := int64(size>>(tileBits*k)) * hashSize; fi.Size() > keep {
			if err := os.Truncate(l.treePath(k), keep); err != nil {
				return err
			}
		}
	}
	if l.rng, err = rangeAt(ctx, l.store, size); err != nil {
		return fmt.Errorf("rebuild tree at checkpoint size %d: %w", size, err)
	}
	if cp != nil {
		root, _ := l.rng.GetRootHash(nil)
		if !bytes.Equal(root, cp.Hash) {
			return damaged("tree files do not match the last checkpoint (size %d); run 'lethe audit verify'", size)
		}
	}
	l.cpSize.Store(size)
	if err := l.replay(size, segs); err != nil {
		return err
	}
	return l.checkAnchor(ctx)
}

// segments lists the segment numbers present, checks that they are
// contiguous from the pruned point, and removes any left below it by a
// prune a crash interrupted.
func (l *Log) segments() ([]uint64, error) {
	des, err := os.ReadDir(filepath.Join(l.dir, "entries"))
	if err != nil {
		return nil, err
	}
	var segs []uint64
	for _, de := range des {
		name, ok := strings.CutSuffix(de.Name(), ".log")
		if !ok {
			continue
		}
		first, err := strconv.ParseUint(name, 16, 64)
		if err != nil || len(name) != 16 || first%segmentSize != 0 {
			return nil, damaged("unexpected file entries/%s", de.Name())
		}
		segs = append(segs, first>>segmentBits)
	}
	slices.Sort(segs)
	keepFrom := l.pruned.Load() >> segmentBits
	for len(segs) > 0 && segs[0] < keepFrom {
		for _, ext := range []string{".log", ".idx"} {
			if err := os.Remove(l.segmentPath(segs[0], ext)); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return nil, err
			}
		}
		segs = segs[1:]
	}
	for i, s := range segs {
		if s != keepFrom+uint64(i) {
			return nil, damaged("segment %s is missing", segmentName(keepFrom+uint64(i)))
		}
	}
	return segs, nil
}

// replay reads the entries from index from to the end, rebuilding their
// hashes and the tree, and leaves the writer at the end. A record cut short
// at the very end (a write a crash interrupted, never acknowledged) is
// dropped; damage anywhere else is an error.
func (l *Log) replay(from uint64, segs []uint64) error {
	w := &l.w
	w.n = from
	seg := from >> segmentBits
	if len(segs) == 0 || segs[len(segs)-1] < seg {
		if from%segmentSize != 0 {
			return damaged("segment %s with entries up to the checkpoint is missing", segmentName(seg))
		}
		return l.openSegment(seg, 0)
	}
	for ; seg <= segs[len(segs)-1]; seg++ {
		last := seg == segs[len(segs)-1]
		var off int64
		if w.n > seg<<segmentBits {
			end, err := l.entryEnd(w.n - 1)
			if err != nil {
				return err
			}
			off = end
		}
		data, err := os.ReadFile(l.segmentPath(seg, ".log"))
		if err != nil {
			return err
		}
		if int64(len(data)) < off {
			return damaged("segment %s is shorter than its checkpointed entries", segmentName(seg))
		}
		if err := l.openSegment(seg, off); err != nil {
			return err
		}
		rest := data[off:]
		for len(rest) > 0 && w.n+uint64(len(w.hs)) < (seg+1)<<segmentBits {
			rec, n, err := readRecord(rest)
			if err != nil {
				at := w.n + uint64(len(w.hs))
				if !last {
					return damaged("entry %d: %w", at, err)
				}
				l.log.Warn("dropping the unacknowledged end of the audit log left by a crash", "index", at, "bytes", len(rest))
				if err := w.log.Truncate(w.off); err != nil {
					return err
				}
				if err := fdatasync(w.log); err != nil {
					return err
				}
				break
			}
			h := leafHash(rec)
			w.ibuf = append(w.ibuf, h...)
			w.ibuf = binary.BigEndian.AppendUint64(w.ibuf, uint64(w.off)+uint64(n))
			w.hs = append(w.hs, h)
			w.off += int64(n)
			rest = rest[n:]
			if len(w.hs) == 4096 {
				if err := l.replayFlush(); err != nil {
					return err
				}
			}
		}
		if err := l.replayFlush(); err != nil {
			return err
		}
		if !last {
			if w.n != (seg+1)<<segmentBits || len(rest) != 0 {
				return damaged("segment %s does not hold exactly %d entries", segmentName(seg), segmentSize)
			}
			if err := errors.Join(w.idx.Sync(), w.log.Close(), w.idx.Close()); err != nil {
				return err
			}
		} else if len(rest) != 0 && w.n == (seg+1)<<segmentBits {
			return damaged("segment %s holds more than %d entries", segmentName(seg), segmentSize)
		}
	}
	if err := l.w.idx.Truncate(int64(w.n-w.seg<<segmentBits) * idxEntry); err != nil {
		return err
	}
	if w.n == (w.seg+1)<<segmentBits {
		if err := l.roll(); err != nil {
			return err
		}
	}
	l.size.Store(w.n)
	return nil
}

// replayFlush writes the hashes replay gathered and extends the tree.
func (l *Log) replayFlush() error {
	w := &l.w
	if len(w.hs) == 0 {
		return nil
	}
	if _, err := w.idx.WriteAt(w.ibuf, int64(w.n-w.seg<<segmentBits)*idxEntry); err != nil {
		return err
	}
	if err := l.extend(w.hs); err != nil {
		return err
	}
	w.n += uint64(len(w.hs))
	w.buf, w.ibuf, w.hs = w.buf[:0], w.ibuf[:0], w.hs[:0]
	return nil
}

// checkAnchor refuses a log that holds fewer entries than the checkpoint
// the key store keeps: its files were rolled back or truncated.
func (l *Log) checkAnchor(ctx context.Context) error {
	size, _, err := l.opts.Anchor.LatestCheckpoint(ctx, l.opts.Origin)
	if lethe.ErrorCode(err) == lethe.ENOTFOUND {
		return nil
	} else if err != nil {
		return fmt.Errorf("read the key store's audit checkpoint: %w", err)
	}
	if size > l.w.n {
		return damaged("the log holds %d entries but the key store's checkpoint is for %d: entries were removed or the log rolled back; run 'lethe audit verify'", l.w.n, size)
	}
	return nil
}

// idxLine reads entry i's line of its segment's .idx file.
func (s store) idxLine(i uint64) ([]byte, error) {
	f, err := os.Open(s.segmentPath(i>>segmentBits, ".idx"))
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b := make([]byte, idxEntry)
	if _, err := f.ReadAt(b, int64(i%segmentSize)*idxEntry); err != nil {
		return nil, fmt.Errorf("read hash of entry %d: %w", i, err)
	}
	return b, nil
}

// entryEnd returns the end offset of entry i's record in its segment.
func (s store) entryEnd(i uint64) (int64, error) {
	b, err := s.idxLine(i)
	if err != nil {
		return 0, err
	}
	return int64(binary.BigEndian.Uint64(b[hashSize:])), nil
}

// Entries calls fn with each entry from index from up to (not including)
// to, in order. ENOTFOUND if from was pruned or to is past the end. The
// data passed to fn is only valid during the call.
func (l *Log) Entries(from, to uint64, fn func(index uint64, data []byte) error) error {
	if to > l.Size() || from > to {
		return lethe.Errorf(lethe.ENOTFOUND, "audit entries %d..%d are not in the log (size %d)", from, to, l.Size())
	}
	if from < l.Pruned() {
		return lethe.Errorf(lethe.ENOTFOUND, "audit entries before %d were pruned", l.Pruned())
	}
	if from == to {
		return nil
	}
	errDone := errors.New("done")
	err := l.store.Scan(context.Background(), from, func(i uint64, data, _ []byte) error {
		if err := fn(i, data); err != nil {
			return err
		}
		if i+1 == to {
			return errDone
		}
		return nil
	})
	if errors.Is(err, errDone) {
		return nil
	}
	return err
}

// readPruned reads the index of the first entry kept (0 if none pruned).
func readPruned(dir string) (uint64, error) {
	b, err := os.ReadFile(filepath.Join(dir, "pruned"))
	if errors.Is(err, fs.ErrNotExist) {
		return 0, nil
	} else if err != nil {
		return 0, err
	}
	n, err := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64)
	if err != nil || n%segmentSize != 0 {
		return 0, fmt.Errorf("file pruned: not a segment boundary")
	}
	return n, nil
}

// writeFileSync writes a small file atomically and durably: a temporary
// file, synced, renamed over the old one, and the directory synced.
func writeFileSync(path string, data []byte) error {
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if err = errors.Join(err, f.Close()); err != nil {
		os.Remove(tmp)
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		return err
	}
	return syncDir(filepath.Dir(path))
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	return errors.Join(d.Sync(), d.Close())
}

// syncPath flushes a file's written data to stable storage through a new
// descriptor: fsync applies to the file, not to the descriptor, so this
// syncs what the writer wrote without sharing its handle.
func syncPath(path string) error {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	} else if err != nil {
		return err
	}
	return errors.Join(fdatasync(f), f.Close())
}
