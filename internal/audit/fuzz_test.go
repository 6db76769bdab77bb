package audit

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/mod/sumdb/note"
)

func FuzzReadRecord(f *testing.F) {
	rec := appendRecord(nil, entry(1))
	f.Add(rec)
	f.Add(append(rec, rec...))
	f.Add(rec[:recordHeader+10])
	f.Add(rec[:5])
	f.Add([]byte{})
	f.Add(make([]byte, recordHeader))
	bad := bytes.Clone(rec)
	bad[len(bad)-1] ^= 1
	f.Add(bad)
	f.Fuzz(func(t *testing.T, b []byte) {
		data, n, err := readRecord(b)
		if err != nil {
			if data != nil || n != 0 {
				t.Fatalf("error %v with %d bytes of data and length %d, want none", err, len(data), n)
			}
			if errors.Is(err, errTorn) {
				if len(b) >= recordHeader && len(b) >= recordHeader+int(binary.BigEndian.Uint32(b)) {
					t.Fatalf("a whole record of %d bytes read as cut short", len(b))
				}
			}
			return
		}
		if n <= recordHeader || n > len(b) || len(data) != n-recordHeader || len(data) > MaxEntrySize {
			t.Fatalf("record of %d bytes with %d bytes of data, from %d bytes", n, len(data), len(b))
		}
		if got := appendRecord(nil, data); !bytes.Equal(got, b[:n]) {
			t.Fatalf("re-encoded record differs from the %d bytes it was read from", n)
		}
	})
}

// TestRecordBoundaries checks records at the edges of the sizes allowed
// (kept out of FuzzReadRecord's corpus: a 64 KiB seed stalls the fuzzer).
func TestRecordBoundaries(t *testing.T) {
	for _, size := range []int{1, MaxEntrySize - 1, MaxEntrySize} {
		data := bytes.Repeat([]byte{'x'}, size)
		rec := appendRecord(nil, data)
		got, n, err := readRecord(rec)
		if err != nil || n != len(rec) || !bytes.Equal(got, data) {
			t.Errorf("record of %d bytes: got %d bytes, length %d, %v; want it back whole", size, len(got), n, err)
		}
		if _, _, err := readRecord(rec[:len(rec)-1]); !errors.Is(err, errTorn) {
			t.Errorf("record of %d bytes less its last byte: got %v, want %v", size, err, errTorn)
		}
	}
	for _, size := range []int{0, MaxEntrySize + 1} {
		rec := appendRecord(nil, make([]byte, size))
		if _, _, err := readRecord(rec); err == nil || errors.Is(err, errTorn) {
			t.Errorf("record of %d bytes: got %v, want a length out of range", size, err)
		}
	}
}

func FuzzReadCheckpoints(f *testing.F) {
	e := newEnv(f)
	l := e.open(f)
	appendN(f, l, 0, 10, 5)
	if err := l.Checkpoint(context.Background()); err != nil {
		f.Fatal(err)
	}
	appendN(f, l, 10, 20, 5)
	if err := l.Close(); err != nil {
		f.Fatal(err)
	}
	saved := readFile(f, filepath.Join(e.dir, "checkpoints"))
	f.Add(saved)
	f.Add(saved[:len(saved)-3])
	f.Add([]byte{})
	f.Add(append(bytes.Clone(saved), 0, 0, 0, 0, 0, 0, 0, 0))
	path := filepath.Join(f.TempDir(), "checkpoints")
	f.Fuzz(func(t *testing.T, b []byte) {
		writeFile(t, path, b)
		cps, err := readCheckpoints(path)
		var again []byte
		for _, cp := range cps {
			again = appendRecord(again, cp)
		}
		if !bytes.HasPrefix(b, again) {
			t.Fatalf("the %d checkpoints read do not frame the file's first %d bytes", len(cps), len(again))
		}
		if (err == nil) != (len(again) == len(b)) {
			t.Fatalf("read %d of %d bytes, error %v", len(again), len(b), err)
		}
	})
}

func FuzzReadPruned(f *testing.F) {
	for _, s := range []string{"0\n", "65536\n", "131072", " 196608 \n", "65535", "-65536", "1e5", "", "18446744073709486080", "18446744073709551616"} {
		f.Add([]byte(s))
	}
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, b []byte) {
		writeFile(t, filepath.Join(dir, "pruned"), b)
		n, err := readPruned(dir)
		if err != nil {
			return
		}
		want, perr := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64)
		if perr != nil || want != n || n%segmentSize != 0 {
			t.Fatalf("read %d from a file that holds no segment boundary (%v)", n, perr)
		}
	})
}

// FuzzVerifyBundle checks that no bundle verifies unless it is made of a
// checkpoint signed by the log's key and events really in that tree: the
// seeds are saved bundles, and any accepted input must carry the seeds'
// signed checkpoint and events the log holds at the indexes claimed.
func FuzzVerifyBundle(f *testing.F) {
	const size = 600
	e := newEnv(f)
	l := e.open(f)
	appendN(f, l, 0, size, 100)
	logged := make([][]byte, 0, size)
	if err := l.Entries(0, size, func(_ uint64, data []byte) error {
		logged = append(logged, bytes.Clone(data))
		return nil
	}); err != nil {
		f.Fatal(err)
	}
	var signed string
	for _, flt := range []Filter{
		{Tenant: "acme", SubjectID: "sub_3", Limit: 8},
		{SubjectID: "sub_0", Limit: 1},
		{SubjectID: "sub_9", After: size - 10},
	} {
		b, err := l.Export(context.Background(), flt)
		if err != nil {
			f.Fatal(err)
		}
		if _, err := VerifyBundle(b, testOrigin, e.verifier); err != nil {
			f.Fatal(err)
		}
		signed = b.Checkpoint
		compact, _ := json.Marshal(b)
		pretty, _ := json.MarshalIndent(b, "", "  ")
		f.Add(compact)
		f.Add(pretty)
	}
	if err := l.Close(); err != nil {
		f.Fatal(err)
	}
	seed, err := note.Open([]byte(signed), note.VerifierList(e.verifier))
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var b Bundle
		if json.Unmarshal(data, &b) != nil {
			return
		}
		n, err := VerifyBundle(&b, testOrigin, e.verifier)
		if err != nil {
			return
		}
		// The note may differ from the seed's in signatures by unknown
		// keys, which prove nothing and are ignored; what is signed must
		// be the same.
		got, err := note.Open([]byte(b.Checkpoint), note.VerifierList(e.verifier))
		if err != nil {
			t.Fatalf("accepted a checkpoint that does not open: %v", err)
		}
		if got.Text != seed.Text || n != size {
			t.Fatalf("accepted a checkpoint for %d entries with signed text %q, want the log's for %d", n, got.Text, size)
		}
		for _, ev := range b.Events {
			var c bytes.Buffer
			if err := json.Compact(&c, ev.Event); err != nil {
				t.Fatalf("accepted event %d that is not JSON: %v", ev.Index, err)
			}
			if ev.Index >= size || !bytes.Equal(c.Bytes(), logged[ev.Index]) {
				t.Fatalf("accepted event %d that the log does not hold at that index", ev.Index)
			}
		}
	})
}

// FuzzVerifyDamaged overwrites part of one file of a small saved log and
// checks that Verify neither panics nor calls the damaged log intact.
func FuzzVerifyDamaged(f *testing.F) {
	e := newEnv(f)
	l := e.open(f)
	appendN(f, l, 0, 300, 50)
	if err := l.Checkpoint(context.Background()); err != nil {
		f.Fatal(err)
	}
	appendN(f, l, 300, 600, 50) // tree/1 then holds two hashes
	if err := l.Close(); err != nil {
		f.Fatal(err)
	}
	_, anchor, err := e.anchor.LatestCheckpoint(context.Background(), testOrigin)
	if err != nil {
		f.Fatal(err)
	}
	names := []string{
		filepath.Join("entries", segmentName(0)+".log"),
		filepath.Join("entries", segmentName(0)+".idx"),
		filepath.Join("tree", "1"),
		"checkpoints",
	}
	orig := make([][]byte, len(names))
	for i, name := range names {
		orig[i] = readFile(f, filepath.Join(e.dir, name))
	}
	for i := range names {
		f.Add(uint8(i), uint32(100), []byte{0xff})
		f.Add(uint8(i), uint32(0), []byte{})
	}
	f.Add(uint8(3), uint32(len(orig[3])-70), []byte("AAAA"))
	dir := filepath.Join(f.TempDir(), "audit")
	for _, d := range []string{"entries", "tree"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o700); err != nil {
			f.Fatal(err)
		}
	}
	opts := VerifyOptions{Origin: testOrigin, Verifier: e.verifier, Trusted: map[string][]byte{"key store checkpoint": anchor}}
	f.Fuzz(func(t *testing.T, file uint8, off uint32, data []byte) {
		which := int(file) % len(names)
		changed := false
		for i, name := range names {
			b := orig[i]
			if i == which {
				b = bytes.Clone(b)
				copy(b[int(off)%len(b):], data)
				changed = !bytes.Equal(b, orig[i])
			}
			writeFile(t, filepath.Join(dir, name), b)
		}
		r, err := Verify(dir, opts)
		if err != nil {
			t.Fatalf("%s damaged at byte %d: Verify failed: %v", names[which], int(off)%len(orig[which]), err)
		}
		if changed && r.OK() {
			t.Fatalf("%s damaged at byte %d (%d bytes written): Verify reports OK", names[which], int(off)%len(orig[which]), len(data))
		}
		if !changed && !r.OK() {
			t.Fatalf("intact log: got problems %+v", r.Problems)
		}
	})
}
