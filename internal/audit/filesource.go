package audit

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// store is a Source over a log directory's files.
var _ Source = store{}

// DirSource returns the log in dir as a Source, for reading beside the
// process that writes it.
func DirSource(dir string) Source { return store{dir} }

// Checkpoints implements Source.
func (s store) Checkpoints(context.Context) ([][]byte, error) {
	cps, err := readCheckpoints(filepath.Join(s.dir, "checkpoints"))
	if err != nil {
		return cps, &Damage{Index: uint64(len(cps)), What: fmt.Sprintf("checkpoints file damaged after checkpoint %d: %v", len(cps), err)}
	}
	return cps, nil
}

// Pruned implements Source.
func (s store) Pruned(context.Context) (uint64, error) { return readPruned(s.dir) }

// Scan implements Source, a segment at a time.
func (s store) Scan(ctx context.Context, from uint64, fn func(index uint64, data, leafHash []byte) error) error {
	n := from
	for seg := from >> segmentBits; ; seg++ {
		if err := ctx.Err(); err != nil {
			return err
		}
		data, err := os.ReadFile(s.segmentPath(seg, ".log"))
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		} else if err != nil {
			return err
		}
		idx, err := os.ReadFile(s.segmentPath(seg, ".idx"))
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
		var pos uint64 // where the next record starts in the segment
		if n > seg<<segmentBits {
			line := idx[min(uint64(len(idx)), (n%segmentSize-1)*idxEntry):]
			if len(line) < idxEntry {
				return fmt.Errorf("audit entry %d: no stored position", n-1)
			}
			end := beUint64(line[hashSize:])
			if end > uint64(len(data)) {
				return &Damage{Index: n, What: fmt.Sprintf("segment %s is shorter than its recorded entries", segmentName(seg))}
			}
			data, pos = data[end:], end
		}
		for len(data) > 0 {
			if n == (seg+1)<<segmentBits {
				return &Damage{Index: n, What: fmt.Sprintf("segment %s holds more than %d entries: an entry was inserted", segmentName(seg), segmentSize)}
			}
			rec, size, err := readRecord(data)
			if errors.Is(err, errTorn) && !s.exists(seg+1) {
				// The end of the newest segment, being written now (or
				// cut short by a crash, never acknowledged).
				return nil
			}
			if err != nil {
				return &Damage{Index: n, What: fmt.Sprintf("entry %d is damaged: %v", n, err)}
			}
			pos += uint64(size)
			var leaf []byte
			if off := (n % segmentSize) * idxEntry; uint64(len(idx)) >= off+idxEntry {
				leaf = idx[off : off+hashSize]
				// Export and recovery find records by the end offsets
				// stored beside the hashes: a wrong one is damage to
				// the entry's stored line as much as a wrong hash, so
				// it is passed on as a stored hash that matches nothing.
				if beUint64(idx[off+hashSize:off+idxEntry]) != pos {
					leaf = []byte{}
				}
			}
			if err := fn(n, rec, leaf); err != nil {
				return err
			}
			data = data[size:]
			n++
		}
		if n != (seg+1)<<segmentBits {
			if s.exists(seg + 1) {
				return &Damage{Index: n, What: fmt.Sprintf("segment %s holds %d entries, not %d: entries were removed", segmentName(seg), n-seg<<segmentBits, segmentSize)}
			}
			return nil
		}
	}
}

// Hashes implements Source: level 0 from the segments' .idx files, the
// levels above from the tree files.
func (s store) Hashes(_ context.Context, k int, from, to uint64) ([][]byte, error) {
	out := make([][]byte, 0, to-from)
	if k > 0 {
		f, err := os.Open(s.treePath(k))
		if err != nil {
			return nil, err
		}
		defer f.Close()
		b := make([]byte, (to-from)*hashSize)
		if _, err := f.ReadAt(b, int64(from)*hashSize); err != nil {
			return nil, fmt.Errorf("read tree level %d hashes %d..%d: %w", k*tileBits, from, to-1, err)
		}
		for i := range to - from {
			out = append(out, b[i*hashSize:(i+1)*hashSize])
		}
		return out, nil
	}
	for i := from; i < to; {
		seg := i >> segmentBits
		end := min(to, (seg+1)<<segmentBits)
		f, err := os.Open(s.segmentPath(seg, ".idx"))
		if err != nil {
			return nil, err
		}
		b := make([]byte, (end-i)*idxEntry)
		_, err = f.ReadAt(b, int64(i%segmentSize)*idxEntry)
		f.Close()
		if err != nil {
			return nil, fmt.Errorf("read leaf hashes %d..%d: %w", i, end-1, err)
		}
		for j := range end - i {
			out = append(out, b[j*idxEntry:j*idxEntry+hashSize])
		}
		i = end
	}
	return out, nil
}

// exists reports whether segment seg has a .log file.
func (s store) exists(seg uint64) bool {
	_, err := os.Stat(s.segmentPath(seg, ".log"))
	return err == nil
}
