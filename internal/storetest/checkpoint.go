package storetest

import (
	"bytes"
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"

	"github.com/lethe-privacy/lethe"
)

// TestCheckpointStore runs the lethe.CheckpointStore contract against stores
// that newStore returns; each call must return one on a fresh database.
func TestCheckpointStore(t *testing.T, newStore func(t *testing.T) lethe.CheckpointStore) {
	const origin = "acme.example/audit"

	t.Run("none saved", func(t *testing.T) {
		s := newStore(t)
		_, _, err := s.LatestCheckpoint(t.Context(), origin)
		wantCode(t, err, lethe.ENOTFOUND)
	})

	t.Run("save and read back", func(t *testing.T) {
		s := newStore(t)
		note := checkpointNote(origin, 5, "")
		saveCheckpoint(t, s, origin, 5, note)
		want := bytes.Clone(note)
		note[0] ^= 0xff // the store keeps its own copy
		checkCheckpoint(t, s, origin, 5, want)
		if _, got, err := s.LatestCheckpoint(t.Context(), origin); err == nil && len(got) > 0 {
			got[0] ^= 0xff // and hands out a copy
		}
		checkCheckpoint(t, s, origin, 5, want)
	})

	t.Run("size zero", func(t *testing.T) {
		s := newStore(t)
		saveCheckpoint(t, s, origin, 0, checkpointNote(origin, 0, ""))
		checkCheckpoint(t, s, origin, 0, checkpointNote(origin, 0, ""))
	})

	t.Run("bigger replaces", func(t *testing.T) {
		s := newStore(t)
		saveCheckpoint(t, s, origin, 5, checkpointNote(origin, 5, ""))
		saveCheckpoint(t, s, origin, 9, checkpointNote(origin, 9, ""))
		checkCheckpoint(t, s, origin, 9, checkpointNote(origin, 9, ""))
	})

	t.Run("equal size replaces", func(t *testing.T) {
		// A checkpoint of the same tree signed again (a new timestamp or
		// key) supersedes the stored one.
		s := newStore(t)
		saveCheckpoint(t, s, origin, 7, checkpointNote(origin, 7, "first"))
		saveCheckpoint(t, s, origin, 7, checkpointNote(origin, 7, "second"))
		checkCheckpoint(t, s, origin, 7, checkpointNote(origin, 7, "second"))
	})

	t.Run("smaller conflicts", func(t *testing.T) {
		s := newStore(t)
		want := checkpointNote(origin, 10, "")
		saveCheckpoint(t, s, origin, 10, want)
		for _, size := range []uint64{9, 1, 0} {
			note := checkpointNote(origin, size, "older")
			err := s.SaveCheckpoint(t.Context(), origin, size, note)
			wantCode(t, err, lethe.ECONFLICT)
			checkNoNote(t, err, note)
			checkCheckpoint(t, s, origin, 10, want)
		}
	})

	t.Run("origins are independent", func(t *testing.T) {
		s := newStore(t)
		const other = "globex.example/audit"
		saveCheckpoint(t, s, origin, 10, checkpointNote(origin, 10, ""))
		_, _, err := s.LatestCheckpoint(t.Context(), other)
		wantCode(t, err, lethe.ENOTFOUND)
		saveCheckpoint(t, s, other, 3, checkpointNote(other, 3, ""))
		saveCheckpoint(t, s, other, 4, checkpointNote(other, 4, ""))
		checkCheckpoint(t, s, origin, 10, checkpointNote(origin, 10, ""))
		checkCheckpoint(t, s, other, 4, checkpointNote(other, 4, ""))
		saveCheckpoint(t, s, origin, 11, checkpointNote(origin, 11, ""))
		err = s.SaveCheckpoint(t.Context(), other, 2, checkpointNote(other, 2, ""))
		wantCode(t, err, lethe.ECONFLICT)
		checkCheckpoint(t, s, origin, 11, checkpointNote(origin, 11, ""))
		checkCheckpoint(t, s, other, 4, checkpointNote(other, 4, ""))
	})

	t.Run("size beyond int64", func(t *testing.T) {
		s := newStore(t)
		for _, size := range []uint64{math.MaxInt64 + 1, math.MaxUint64} {
			note := checkpointNote(origin, size, "")
			err := s.SaveCheckpoint(t.Context(), origin, size, note)
			wantCode(t, err, lethe.EINVALID)
			checkNoNote(t, err, note)
		}
		_, _, err := s.LatestCheckpoint(t.Context(), origin)
		wantCode(t, err, lethe.ENOTFOUND)
		// The largest size that fits is stored, and a larger one still
		// changes nothing.
		saveCheckpoint(t, s, origin, math.MaxInt64, checkpointNote(origin, math.MaxInt64, ""))
		err = s.SaveCheckpoint(t.Context(), origin, math.MaxInt64+1, checkpointNote(origin, math.MaxInt64+1, ""))
		wantCode(t, err, lethe.EINVALID)
		checkCheckpoint(t, s, origin, math.MaxInt64, checkpointNote(origin, math.MaxInt64, ""))
	})

	t.Run("empty note", func(t *testing.T) {
		s := newStore(t)
		saveCheckpoint(t, s, origin, 1, checkpointNote(origin, 1, ""))
		for _, note := range [][]byte{nil, {}} {
			err := s.SaveCheckpoint(t.Context(), origin, 2, note)
			wantCode(t, err, lethe.EINVALID)
		}
		checkCheckpoint(t, s, origin, 1, checkpointNote(origin, 1, ""))
	})

	t.Run("concurrent saves", func(t *testing.T) {
		// Saves racing, as from several lethe instances, must leave the
		// largest tree stored, and no reader may see the size go down
		// after a save succeeded.
		s := newStore(t)
		const workers, saves = 8, 25
		var maxSize uint64
		sizes := make([][]uint64, workers)
		for w := range sizes {
			for range saves {
				size := rand.Uint64N(1000)
				sizes[w] = append(sizes[w], size)
				maxSize = max(maxSize, size)
			}
		}
		var wg sync.WaitGroup
		for w := range workers {
			wg.Go(func() {
				for _, size := range sizes[w] {
					err := s.SaveCheckpoint(t.Context(), origin, size, checkpointNote(origin, size, ""))
					if code := lethe.ErrorCode(err); code != "" && code != lethe.ECONFLICT {
						t.Errorf("save size %d: got %v, want nil or a conflict", size, err)
						return
					}
					got, note, err := s.LatestCheckpoint(t.Context(), origin)
					switch {
					case err != nil:
						t.Errorf("latest after saving size %d: %v", size, err)
						return
					case got < size:
						t.Errorf("latest after saving size %d: got size %d, want at least %d", size, got, size)
					case !bytes.Equal(note, checkpointNote(origin, got, "")):
						t.Errorf("latest after saving size %d: got note %q with size %d", size, note, got)
					}
				}
			})
		}
		wg.Wait()
		checkCheckpoint(t, s, origin, maxSize, checkpointNote(origin, maxSize, ""))
	})
}

// checkpointNote returns a stand-in for a signed checkpoint of the log
// origin at size; tag tells apart notes of one size.
func checkpointNote(origin string, size uint64, tag string) []byte {
	return fmt.Appendf(nil, "%s\n%d\nroot-hash-%s\n\n— signer sig-%d%s\n", origin, size, tag, size, tag)
}

func saveCheckpoint(t *testing.T, s lethe.CheckpointStore, origin string, size uint64, note []byte) {
	t.Helper()
	if err := s.SaveCheckpoint(t.Context(), origin, size, note); err != nil {
		t.Fatalf("save checkpoint of %s at size %d: %v", origin, size, err)
	}
}

func checkCheckpoint(t *testing.T, s lethe.CheckpointStore, origin string, wantSize uint64, wantNote []byte) {
	t.Helper()
	size, note, err := s.LatestCheckpoint(t.Context(), origin)
	if err != nil {
		t.Fatalf("latest checkpoint of %s: %v", origin, err)
	}
	if size != wantSize {
		t.Errorf("latest checkpoint of %s: got size %d, want %d", origin, size, wantSize)
	}
	if !bytes.Equal(note, wantNote) {
		t.Errorf("latest checkpoint of %s: got note %q, want %q", origin, note, wantNote)
	}
}

// checkNoNote fails t if err's text or message quotes the note. Its first
// two lines, the origin and the size, may be named; the rest may not.
func checkNoNote(t *testing.T, err error, note []byte) {
	t.Helper()
	for _, line := range strings.Split(string(note), "\n")[2:] {
		if line == "" {
			continue
		}
		for _, text := range []string{err.Error(), lethe.ErrorMessage(err)} {
			if strings.Contains(text, line) {
				t.Errorf("error %q quotes the note's line %q", text, line)
			}
		}
	}
}
