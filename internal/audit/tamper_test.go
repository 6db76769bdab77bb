package audit

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"hash/crc32"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/transparency-dev/merkle/compact"
)

// TestTamper changes a closed log's files the way an attacker (or a disk)
// might, and checks that Verify, given the key store's checkpoint as a
// trusted one, reports the change first, at the place it was made.
func TestTamper(t *testing.T) {
	const n = 5000
	const two = segmentSize + 4464 // 70,000 events: two segments
	cases := []struct {
		name   string
		events int                            // appended before Close, unless build is set
		build  func(t *testing.T, e *testEnv) // makes and closes the log instead
		tamper func(t *testing.T, e *testEnv) // changes the closed log's files
		index  int64                          // want Problems[0].Index
		what   []string                       // want in Problems[0].What
		also   []string                       // want in the What of some problem
		open   string                         // if set, Open must refuse the log with this in its error
	}{{
		name:   "modify one byte of an event",
		events: n,
		tamper: func(t *testing.T, e *testEnv) { flipEventByte(t, e.dir, 1234) },
		index:  1234,
		what:   []string{"entry 1234 is damaged", "checksum"},
		also:   []string{"key store checkpoint is for 5000 entries but the log holds 1234"},
	}, {
		name:   "modify one byte in the second segment",
		events: two,
		tamper: func(t *testing.T, e *testEnv) { flipEventByte(t, e.dir, segmentSize+1000) },
		index:  segmentSize + 1000,
		what:   []string{"entry 66536 is damaged", "checksum"},
	}, {
		// The record's CRC and the .idx hash are made to match the new
		// bytes; the tree files still hold the hash of the old ones.
		name:   "modify an event and fix its checksum and hash",
		events: n,
		tamper: func(t *testing.T, e *testEnv) { rewriteEvent(t, e.dir, 1234) },
		index:  1024, // the tile of 256 events holding 1234
		what:   []string{"tree file 1", "subtree starting at index 1024"},
		also: []string{
			"entries before index 5000 do not hash to the root signed in checkpoint 1",
			"entries before index 5000 do not hash to the root signed in key store checkpoint",
		},
	}, {
		// As above, and the tree files rebuilt from the changed hashes:
		// only the signatures are left to tell.
		name:   "modify an event and fix its checksum, hash and the tree files",
		events: n,
		tamper: func(t *testing.T, e *testEnv) {
			rewriteEvent(t, e.dir, 1234)
			rebuildTreeFiles(t, e.dir)
		},
		index: -1,
		what:  []string{"entries before index 5000 do not hash to the root signed in checkpoint 1"},
		also:  []string{"do not hash to the root signed in key store checkpoint"},
		open:  "tree files do not match the last checkpoint",
	}, {
		name:   "delete one event",
		events: n,
		tamper: func(t *testing.T, e *testEnv) {
			start, end := recordSpan(t, e.dir, 1234)
			editSegment(t, e.dir, 0, func(b []byte) []byte { return append(b[:start:start], b[end:]...) })
		},
		index: 1234,
		what:  []string{"entry 1234 differs from the hash recorded"},
		also:  []string{"log holds 4999"},
		open:  "shorter than its checkpointed entries",
	}, {
		name:   "delete one event in the first of two segments",
		events: two,
		tamper: func(t *testing.T, e *testEnv) {
			start, end := recordSpan(t, e.dir, 40000)
			editSegment(t, e.dir, 0, func(b []byte) []byte { return append(b[:start:start], b[end:]...) })
		},
		index: 40000,
		what:  []string{"entry 40000 differs from the hash recorded"},
		also:  []string{"segment 0000000000000000 holds 65535 entries, not 65536"},
	}, {
		name:   "swap two events",
		events: n,
		tamper: func(t *testing.T, e *testEnv) {
			s1, e1 := recordSpan(t, e.dir, 1234)
			s2, e2 := recordSpan(t, e.dir, 3456)
			editSegment(t, e.dir, 0, func(b []byte) []byte {
				var out []byte
				out = append(out, b[:s1]...)
				out = append(out, b[s2:e2]...)
				out = append(out, b[e1:s2]...)
				out = append(out, b[s1:e1]...)
				return append(out, b[e2:]...)
			})
		},
		index: 1234,
		what:  []string{"entry 1234 differs from the hash recorded"},
		also:  []string{"do not hash to the root signed in key store checkpoint"},
	}, {
		name:   "insert one event",
		events: n,
		tamper: func(t *testing.T, e *testEnv) {
			start, _ := recordSpan(t, e.dir, 1234)
			rec := appendRecord(nil, forgedEntry(1234))
			editSegment(t, e.dir, 0, func(b []byte) []byte {
				return append(append(append([]byte{}, b[:start]...), rec...), b[start:]...)
			})
		},
		index: 1234,
		what:  []string{"entry 1234 differs from the hash recorded"},
		also:  []string{"do not hash to the root signed in key store checkpoint"},
	}, {
		name:   "truncate the tail",
		events: n,
		tamper: func(t *testing.T, e *testEnv) {
			start, _ := recordSpan(t, e.dir, n-100)
			editSegment(t, e.dir, 0, func(b []byte) []byte { return b[:start] })
		},
		index: n - 100,
		what:  []string{"checkpoint 1 is for 5000 entries but the log holds 4900", "4900..4999"},
		also:  []string{"key store checkpoint is for 5000 entries but the log holds 4900"},
		open:  "shorter than its checkpointed entries",
	}, {
		// A forger without the signing key builds a whole new log, with
		// its own key under the same origin, and puts it in place.
		name:   "replace the log with a forgery",
		events: n,
		tamper: func(t *testing.T, e *testEnv) {
			f := envAt(t, t.TempDir(), "forger's seed")
			l := f.open(t)
			for i := 0; i < n; i += 500 {
				var es [][]byte
				for j := i; j < i+500; j++ {
					es = append(es, forgedEntry(j))
				}
				if _, err := l.Append(context.Background(), es...); err != nil {
					t.Fatal(err)
				}
			}
			if err := l.Close(); err != nil {
				t.Fatal(err)
			}
			for _, name := range []string{"entries", "tree", "checkpoints"} {
				if err := os.RemoveAll(filepath.Join(e.dir, name)); err != nil {
					t.Fatal(err)
				}
				copyPath(t, filepath.Join(f.dir, name), filepath.Join(e.dir, name))
			}
		},
		index: -1,
		what:  []string{"checkpoint 1 in the checkpoints file does not verify"},
		also:  []string{"entries before index 5000 do not hash to the root signed in key store checkpoint"},
		open:  "does not verify with this log's key",
	}, {
		// The files are put back as they were at an earlier checkpoint:
		// consistent and signed, but the key store saw the log grow since.
		name: "roll back to an older state",
		build: func(t *testing.T, e *testEnv) {
			l := e.open(t)
			appendN(t, l, 0, 2000, 500)
			if err := l.Close(); err != nil {
				t.Fatal(err)
			}
			copyPath(t, e.dir, filepath.Join(filepath.Dir(e.dir), "snapshot"))
			l = e.open(t)
			appendN(t, l, 2000, n, 500)
			if err := l.Close(); err != nil {
				t.Fatal(err)
			}
		},
		tamper: func(t *testing.T, e *testEnv) {
			if err := os.RemoveAll(e.dir); err != nil {
				t.Fatal(err)
			}
			copyPath(t, filepath.Join(filepath.Dir(e.dir), "snapshot"), e.dir)
		},
		index: 2000,
		what:  []string{"key store checkpoint is for 5000 entries but the log holds 2000", "2000..4999"},
		open:  "key store's checkpoint",
	}, {
		name:   "delete the checkpoints file",
		events: n,
		tamper: func(t *testing.T, e *testEnv) {
			if err := os.Remove(filepath.Join(e.dir, "checkpoints")); err != nil {
				t.Fatal(err)
			}
		},
		index: -1,
		what:  []string{"key store checkpoint", "checkpoints file"},
	}, {
		// The entries stay; the checkpoints file loses its newest record.
		name: "cut the checkpoints file back",
		build: func(t *testing.T, e *testEnv) {
			l := e.open(t)
			appendN(t, l, 0, 3000, 1000)
			if err := l.Checkpoint(context.Background()); err != nil {
				t.Fatal(err)
			}
			appendN(t, l, 3000, n, 1000)
			if err := l.Close(); err != nil {
				t.Fatal(err)
			}
		},
		tamper: func(t *testing.T, e *testEnv) {
			path := filepath.Join(e.dir, "checkpoints")
			cps, err := readCheckpoints(path)
			if err != nil || len(cps) < 2 {
				t.Fatalf("checkpoints: %d, %v", len(cps), err)
			}
			var kept []byte
			for _, cp := range cps[:len(cps)-1] {
				kept = appendRecord(kept, cp)
			}
			writeFile(t, path, kept)
		},
		index: -1,
		what:  []string{"key store checkpoint is for 5000 entries", "checkpoints file goes up to 3000"},
	}, {
		name:   "corrupt a hash in tree/1",
		events: n,
		tamper: func(t *testing.T, e *testEnv) {
			path := filepath.Join(e.dir, "tree", "1")
			b := readFile(t, path)
			b[5*hashSize+7] ^= 0x40
			writeFile(t, path, b)
		},
		index: 5 << tileBits,
		what:  []string{"tree file 1 disagrees", "subtree starting at index 1280"},
		open:  "tree files do not match the last checkpoint",
	}}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e := newEnv(t)
			if c.build != nil {
				c.build(t, e)
			} else {
				l := e.open(t)
				appendN(t, l, 0, c.events, 1000)
				if err := l.Close(); err != nil {
					t.Fatal(err)
				}
			}
			r := verifyTrusted(t, e)
			if !r.OK() || r.Entries != r.Sealed || r.Checkpoints < 2 {
				t.Fatalf("before tampering: got %+v, want OK with every entry sealed", r)
			}

			c.tamper(t, e)
			r = verifyTrusted(t, e)
			if r.OK() {
				t.Fatalf("after tampering: got OK (%+v), want problems", r)
			}
			p := r.Problems[0]
			if p.Index != c.index {
				t.Errorf("first problem at index %d, want %d: %q", p.Index, c.index, p.What)
			}
			for _, w := range c.what {
				if !strings.Contains(p.What, w) {
					t.Errorf("first problem %q, want it to mention %q", p.What, w)
				}
			}
			for _, w := range c.also {
				if !slices.ContainsFunc(r.Problems, func(p Problem) bool { return strings.Contains(p.What, w) }) {
					t.Errorf("no problem mentions %q", w)
				}
			}
			if t.Failed() {
				for _, p := range r.Problems {
					t.Logf("problem at %d: %s", p.Index, p.What)
				}
			}
			if c.open != "" {
				l, err := Open(context.Background(), e.dir, e.options())
				if err == nil {
					l.Close()
					t.Fatalf("Open of the tampered log: got no error, want one mentioning %q", c.open)
				}
				if !strings.Contains(err.Error(), c.open) {
					t.Errorf("Open of the tampered log: got %v, want it to mention %q", err, c.open)
				}
			}
		})
	}
}

// verifyTrusted verifies e's log, trusting the checkpoint in its key store.
func verifyTrusted(t testing.TB, e *testEnv) *Report {
	t.Helper()
	_, cp, err := e.anchor.LatestCheckpoint(context.Background(), testOrigin)
	if err != nil {
		t.Fatal(err)
	}
	r, err := Verify(e.dir, VerifyOptions{Origin: testOrigin, Verifier: e.verifier,
		Trusted: map[string][]byte{"key store checkpoint": cp}})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// forgedEntry returns an event unlike any entry(i): what an attacker would
// put in the log instead.
func forgedEntry(i int) []byte {
	ev := event(i)
	ev.Action, ev.Outcome = "subject.erase", "denied"
	b, _ := json.Marshal(&ev)
	return b
}

// idxFile returns the .idx file of the segment holding entry i.
func idxFile(dir string, i uint64) string {
	return filepath.Join(dir, "entries", segmentName(i>>segmentBits)+".idx")
}

// recordSpan returns where entry i's record starts and ends in its segment's
// .log file, read from the .idx file's end offsets.
func recordSpan(t testing.TB, dir string, i uint64) (start, end int) {
	t.Helper()
	idx := readFile(t, idxFile(dir, i))
	line := func(j uint64) []byte { return idx[(j%segmentSize)*idxEntry:][:idxEntry] }
	if i%segmentSize != 0 {
		start = int(binary.BigEndian.Uint64(line(i - 1)[hashSize:]))
	}
	end = int(binary.BigEndian.Uint64(line(i)[hashSize:]))
	return start, end
}

// editSegment rewrites a segment's .log file with edit.
func editSegment(t testing.TB, dir string, seg uint64, edit func([]byte) []byte) {
	t.Helper()
	path := filepath.Join(dir, "entries", segmentName(seg)+".log")
	writeFile(t, path, edit(readFile(t, path)))
}

// flipEventByte changes one byte in the middle of entry i's JSON.
func flipEventByte(t testing.TB, dir string, i uint64) {
	t.Helper()
	start, end := recordSpan(t, dir, i)
	editSegment(t, dir, i>>segmentBits, func(b []byte) []byte {
		b[start+recordHeader+(end-start-recordHeader)/2] ^= 0x01
		return b
	})
}

// rewriteEvent changes entry i's subject as a careful attacker would:
// the record's CRC and the leaf hash in the .idx file are made to match.
func rewriteEvent(t testing.TB, dir string, i uint64) {
	t.Helper()
	start, end := recordSpan(t, dir, i)
	var data []byte
	editSegment(t, dir, i>>segmentBits, func(b []byte) []byte {
		data = b[start+recordHeader : end]
		at := bytes.Index(data, []byte(`"subject_id":"sub_`))
		if at < 0 {
			t.Fatalf("entry %d has no subject_id", i)
		}
		data[at+len(`"subject_id":"sub_`)]++ // same length: offsets stay
		binary.BigEndian.PutUint32(b[start+4:], crc32.Checksum(data, castagnoli))
		return b
	})
	path := idxFile(dir, i)
	idx := readFile(t, path)
	copy(idx[(i%segmentSize)*idxEntry:], leafHash(data))
	writeFile(t, path, idx)
}

// rebuildTreeFiles rewrites the tree files from the leaf hashes in the
// .idx files, as the log would have written them for those hashes.
func rebuildTreeFiles(t testing.TB, dir string) {
	t.Helper()
	rng := ranges.NewEmptyRange(0)
	files := map[int][]byte{}
	visit := func(id compact.NodeID, hash []byte) {
		if id.Level == 0 || id.Level%tileBits != 0 {
			return
		}
		k := int(id.Level / tileBits)
		b := files[k]
		if need := int(id.Index+1) * hashSize; len(b) < need {
			b = append(b, make([]byte, need-len(b))...)
		}
		copy(b[id.Index*hashSize:], hash)
		files[k] = b
	}
	for seg := uint64(0); ; seg++ {
		idx, err := os.ReadFile(filepath.Join(dir, "entries", segmentName(seg)+".idx"))
		if errors.Is(err, fs.ErrNotExist) {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		for len(idx) >= idxEntry {
			if err := rng.Append(idx[:hashSize], visit); err != nil {
				t.Fatal(err)
			}
			idx = idx[idxEntry:]
		}
	}
	for k, b := range files {
		writeFile(t, filepath.Join(dir, "tree", strconv.Itoa(k)), b)
	}
}

// copyPath copies a file, or a directory and everything in it.
func copyPath(t testing.TB, src, dst string) {
	t.Helper()
	err := filepath.WalkDir(src, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, path)
		if err != nil {
			return err
		}
		to := filepath.Join(dst, rel)
		if d.IsDir() {
			return os.MkdirAll(to, 0o700)
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		return os.WriteFile(to, b, 0o600)
	})
	if err != nil {
		t.Fatal(err)
	}
}

func readFile(t testing.TB, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func writeFile(t testing.TB, path string, b []byte) {
	t.Helper()
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
}
