package audit

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/lethe-privacy/lethe"
)

// The crash test runs the test binary again as a child process that
// appends to the log from many goroutines and reports each acknowledged
// Append on stdout; the parent kills it with SIGKILL at a random moment,
// then checks that every acknowledged event survived and the log verifies.
const (
	crashDirEnv   = "LETHE_AUDIT_CRASH_DIR"   // the root given to envAt
	crashRoundEnv = "LETHE_AUDIT_CRASH_ROUND" // makes each round's events distinct
	crashSeed     = "test signing seed"
	crashWriters  = 16
)

// crashEntry is the k-th event of the seq-th Append by goroutine g in a
// round: its content says where it came from, so the parent can tell what
// each acknowledged index must hold.
func crashEntry(round, g, seq, k int) []byte {
	ev := lethe.AuditEvent{
		Time:   time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC).Add(time.Duration(seq) * time.Millisecond),
		Action: "subject.read", Outcome: "ok", KeyID: "key_test", Role: lethe.RoleService,
		RequestID: fmt.Sprintf("crash-r%d-g%d-s%d-k%d", round, g, seq, k),
		Tenant:    "acme", SubjectID: fmt.Sprintf("sub_%d", g), Purpose: "billing",
		// Records of varied sizes.
		Fields: []string{"email", "phone", "address", "birth_date", "iban"}[:1+(seq+k)%5],
	}
	b, _ := json.Marshal(&ev)
	return b
}

// crashBatch is how many events the seq-th Append of a goroutine holds.
func crashBatch(seq int) int { return 1 + seq%4 }

// TestCrashChild is the child process of TestCrash; it does nothing unless
// TestCrash started it. It never returns: it is killed.
func TestCrashChild(t *testing.T) {
	root := os.Getenv(crashDirEnv)
	if root == "" {
		t.Skip("run by TestCrash in a child process")
	}
	round, err := strconv.Atoi(os.Getenv(crashRoundEnv))
	if err != nil {
		t.Fatal(err)
	}
	e := envAt(t, root, crashSeed)
	opts := e.options()
	opts.Interval = 10 * time.Millisecond // checkpoints while events flow: kills land in them too
	l, err := Open(context.Background(), e.dir, opts)
	if err != nil {
		fmt.Fprintf(os.Stderr, "child: open: %v\n", err)
		os.Exit(2)
	}
	fmt.Fprintln(os.Stdout, "ready")
	for g := range crashWriters {
		go func() {
			for seq := 0; ; seq++ {
				es := make([][]byte, crashBatch(seq))
				for k := range es {
					es[k] = crashEntry(round, g, seq, k)
				}
				first, err := l.Append(context.Background(), es...)
				if err != nil {
					fmt.Fprintf(os.Stderr, "child: append: %v\n", err)
					os.Exit(2)
				}
				// One write per line (os.Stdout is unbuffered), so a
				// line is out before the next Append starts.
				fmt.Fprintf(os.Stdout, "ack %d %d %d %d\n", first, len(es), g, seq)
			}
		}()
	}
	// If the parent is gone and never kills us, do not fill the disk.
	time.Sleep(30 * time.Second)
	fmt.Fprintln(os.Stderr, "child: not killed within 30s")
	os.Exit(3)
}

// ack is one acknowledged Append: count events from index first.
type ack struct {
	first         uint64
	count         int
	round, g, seq int
}

func TestCrash(t *testing.T) {
	if os.Getenv(crashDirEnv) != "" {
		t.Skip("in the child process")
	}
	rounds := 10
	if testing.Short() {
		rounds = 3
	}
	seed := uint64(time.Now().UnixNano())
	t.Logf("random seed %d", seed)
	rnd := rand.New(rand.NewPCG(seed, 0))
	root := t.TempDir()
	// Start just short of a segment's end, so that the first rounds'
	// children roll over to a new segment and are killed around it.
	e := envAt(t, root, crashSeed)
	l := e.open(t)
	appendN(t, l, 0, segmentSize-1000, 1000)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	// want[i] is the Append that acknowledged entry i, over all rounds.
	want := map[uint64]ack{}
	for round := range rounds {
		delay := time.Duration(50+rnd.IntN(351)) * time.Millisecond
		torn := round%2 == 1
		ok := t.Run(fmt.Sprintf("round %d", round), func(t *testing.T) {
			acks := runCrashChild(t, root, round, delay)
			t.Logf("killed %v after Open: %d appends acknowledged", delay, len(acks))
			for _, a := range acks {
				for k := range a.count {
					i := a.first + uint64(k)
					if prev, dup := want[i]; dup {
						t.Fatalf("entry %d acknowledged twice: to goroutine %d append %d and to goroutine %d append %d of round %d",
							i, prev.g, prev.seq, a.g, a.seq, prev.round)
					}
					want[i] = a
				}
			}
			e := envAt(t, root, crashSeed)
			if torn {
				// A write cut short by a power cut: half a record
				// after the last one. Open must drop it.
				appendTornRecord(t, e.dir)
			}
			l := e.open(t)
			size := l.Size()
			t.Logf("reopened with %d entries", size)
			for i := range want {
				if i >= size {
					t.Fatalf("entry %d was acknowledged but the reopened log holds %d entries", i, size)
				}
			}
			// Earlier rounds' entries are sealed by checkpoints that
			// Verify checks; read back this round's.
			from := size
			for _, a := range acks {
				from = min(from, a.first)
			}
			err := l.Entries(from, size, func(i uint64, data []byte) error {
				a, ok := want[i]
				if !ok {
					return nil
				}
				if !bytes.Equal(data, crashEntry(a.round, a.g, a.seq, int(i-a.first))) {
					return fmt.Errorf("entry %d does not hold event %d of goroutine %d's append %d in round %d", i, i-a.first, a.g, a.seq, a.round)
				}
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			if err := l.Close(); err != nil {
				t.Fatal(err)
			}
			r := verifyTrusted(t, e)
			if !r.OK() || r.Entries != size || r.Sealed != size {
				t.Fatalf("verify after round %d: got %+v, want OK with %d entries sealed", round, r, size)
			}
		})
		if !ok {
			break
		}
	}
	if len(want) == 0 {
		t.Fatal("no Append was acknowledged in any round: the child never got to write")
	}
}

// runCrashChild starts TestCrashChild on root, kills it with SIGKILL delay
// after it opened the log, and returns the Appends it acknowledged.
func runCrashChild(t *testing.T, root string, round int, delay time.Duration) []ack {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestCrashChild$", "-test.count=1")
	cmd.Env = append(os.Environ(), crashDirEnv+"="+root, crashRoundEnv+"="+strconv.Itoa(round))
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	ready, done := make(chan struct{}), make(chan []byte)
	go func() {
		var out []byte
		buf := make([]byte, 64<<10)
		signalled := false
		for {
			n, err := stdout.Read(buf)
			out = append(out, buf[:n]...)
			if !signalled && bytes.Contains(out, []byte("ready\n")) {
				close(ready)
				signalled = true
			}
			if err != nil {
				done <- out
				return
			}
		}
	}()
	select {
	case <-ready:
		time.Sleep(delay)
	case <-time.After(10 * time.Second):
	}
	if err := cmd.Process.Kill(); err != nil { // SIGKILL
		t.Fatal(err)
	}
	out := <-done
	cmd.Wait()
	if cmd.ProcessState.Exited() {
		t.Fatalf("child exited by itself (%v) instead of being killed; stderr:\n%s", cmd.ProcessState, stderr.Bytes())
	}
	if !bytes.Contains(out, []byte("ready\n")) {
		t.Fatalf("child never opened the log; stderr:\n%s", stderr.Bytes())
	}
	// The last line may have been cut by the kill; only whole lines count.
	lines := strings.Split(string(out), "\n")
	var acks []ack
	for _, line := range lines[:len(lines)-1] {
		f := strings.Fields(line)
		if len(f) == 0 || f[0] != "ack" {
			continue
		}
		if len(f) != 5 {
			t.Fatalf("malformed ack line %q", line)
		}
		var nums [4]uint64
		for i := range nums {
			if nums[i], err = strconv.ParseUint(f[1+i], 10, 64); err != nil {
				t.Fatalf("malformed ack line %q", line)
			}
		}
		a := ack{first: nums[0], count: int(nums[1]), round: round, g: int(nums[2]), seq: int(nums[3])}
		if a.count != crashBatch(a.seq) {
			t.Fatalf("ack line %q: count %d, want %d", line, a.count, crashBatch(a.seq))
		}
		acks = append(acks, a)
	}
	return acks
}

// appendTornRecord appends the first half of a record to the newest
// segment, unless it is full (the log writes no record past a segment's
// end, torn or not).
func appendTornRecord(t *testing.T, dir string) {
	t.Helper()
	logs, err := filepath.Glob(filepath.Join(dir, "entries", "*.log"))
	if err != nil || len(logs) == 0 {
		t.Fatalf("no segment to tear: %v", err)
	}
	path := logs[len(logs)-1] // names sort by first index
	data := readFile(t, path)
	n := 0
	for len(data) > 0 {
		_, size, err := readRecord(data)
		if err != nil {
			break
		}
		data, n = data[size:], n+1
	}
	if n == segmentSize {
		return
	}
	rec := appendRecord(nil, crashEntry(-1, 0, 0, 0))
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	_, err = f.Write(rec[:len(rec)/2])
	if err = errors.Join(err, f.Close()); err != nil {
		t.Fatal(err)
	}
}
