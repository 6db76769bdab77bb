package mail

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/lethe-privacy/lethe"
)

// clock returns the given times in turn, then the last one forever.
func clock(times ...time.Time) func() time.Time {
	return func() time.Time {
		t := times[0]
		if len(times) > 1 {
			times = times[1:]
		}
		return t
	}
}

func TestOutboxWritesMessages(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "outbox")
	o, err := NewOutbox(dir)
	if err != nil {
		t.Fatalf("NewOutbox: got %v, want nil", err)
	}
	t0 := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	// A clock that stands still, then goes back: names still sort in the
	// order the messages were written.
	o.Now = clock(t0, t0, t0.Add(-time.Hour), t0.Add(time.Second))
	o.From = testFrom
	msgs := []Message{
		{To: testTo, Subject: "Your verification code", Text: "Your code is " + testCode + ".\n"},
		{To: "grace@example.test", Subject: "Ihr Bestätigungscode", Text: "Grüße\nCode: " + testCode},
		{To: testTo, Subject: "Download", Text: "https://lethe.example.test/d/abc\n\n-- \nLethe\n"},
		{To: testTo, Subject: "", Text: ""},
	}
	for _, m := range msgs {
		if err := o.Send(context.Background(), m); err != nil {
			t.Fatalf("Send: got %v, want nil", err)
		}
	}
	paths, err := o.List()
	if err != nil {
		t.Fatalf("List: got %v, want nil", err)
	}
	if len(paths) != len(msgs) {
		t.Fatalf("List: got %d paths, want %d", len(paths), len(msgs))
	}
	if !slices.IsSorted(paths) {
		t.Errorf("List: got %v, want sorted names", paths)
	}
	for i, p := range paths {
		got, err := ReadMessage(p)
		if err != nil {
			t.Fatalf("ReadMessage: got %v, want nil", err)
		}
		if got != msgs[i] {
			t.Errorf("message %d: got %+v, want %+v", i, got, msgs[i])
		}
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if runtime.GOOS != "windows" && fi.Mode().Perm() != 0o600 {
			t.Errorf("mode of %s: got %v, want 0600", filepath.Base(p), fi.Mode().Perm())
		}
		raw, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		checkMessage(t, string(raw), msgs[i])
		if len(raw) > 0 && !strings.HasSuffix(string(raw), "\r\n") {
			t.Errorf("message %d: got no final CRLF, want one", i)
		}
	}
	// The first message's name carries the clock's time.
	if got, want := filepath.Base(paths[0]), "20260301T120000.000000000Z-"; !strings.HasPrefix(got, want) {
		t.Errorf("name: got %s, want prefix %s", got, want)
	}
	fi, err := os.Stat(dir)
	if err != nil {
		t.Fatal(err)
	}
	if runtime.GOOS != "windows" && fi.Mode().Perm() != 0o700 {
		t.Errorf("mode of the directory: got %v, want 0700", fi.Mode().Perm())
	}
}

func TestOutboxNamesSortByTime(t *testing.T) {
	o, err := NewOutbox(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	// Times whose plain string forms do not sort: 9 ms before 10 ms, a
	// year boundary, whole seconds before fractions.
	t0 := time.Date(2025, 12, 31, 23, 59, 59, 9_000_000, time.UTC)
	times := []time.Time{t0, t0.Add(time.Millisecond), t0.Add(991 * time.Millisecond), t0.Add(time.Second), t0.Add(time.Hour)}
	o.Now = clock(times...)
	for i := range times {
		if err := o.Send(context.Background(), Message{To: testTo, Subject: "n", Text: string(rune('a' + i))}); err != nil {
			t.Fatal(err)
		}
	}
	paths, err := o.List()
	if err != nil {
		t.Fatal(err)
	}
	var got string
	for _, p := range paths {
		m, err := ReadMessage(p)
		if err != nil {
			t.Fatal(err)
		}
		got += m.Text
	}
	if want := "abcde"; got != want {
		t.Errorf("texts in List order: got %s, want %s", got, want)
	}
}

func TestOutboxSkipsPartialWrites(t *testing.T) {
	dir := t.TempDir()
	o, err := NewOutbox(dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := o.Send(context.Background(), Message{To: testTo, Subject: "s", Text: testCode}); err != nil {
		t.Fatal(err)
	}
	// What a crash mid-write leaves: a temporary file with part of a
	// message, one recent, one old.
	fresh := filepath.Join(dir, tempPrefix+"123")
	stale := filepath.Join(dir, tempPrefix+"456")
	for _, p := range []string{fresh, stale} {
		if err := os.WriteFile(p, []byte("From: noreply@lethe.invalid\r\nTo: ada@exa"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	old := time.Now().Add(-time.Hour)
	if err := os.Chtimes(stale, old, old); err != nil {
		t.Fatal(err)
	}
	paths, err := o.List()
	if err != nil {
		t.Fatal(err)
	}
	if len(paths) != 1 || strings.Contains(paths[0], tempPrefix) {
		t.Errorf("List: got %v, want the one complete message", paths)
	}

	// A new Outbox on the directory removes the stale temporary file and
	// leaves the fresh one, which a running writer may yet rename.
	if _, err := NewOutbox(dir); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(stale); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("stale temporary file: got %v, want it removed", err)
	}
	if _, err := os.Stat(fresh); err != nil {
		t.Errorf("fresh temporary file: got %v, want it kept", err)
	}
}

func TestOutboxNarrowsDirectory(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("no Unix modes")
	}
	dir := filepath.Join(t.TempDir(), "outbox")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, 0o755); err != nil { // past the umask
		t.Fatal(err)
	}
	if _, err := NewOutbox(dir); err != nil {
		t.Fatalf("NewOutbox: got %v, want nil", err)
	}
	fi, err := os.Stat(dir)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := fi.Mode().Perm(), os.FileMode(0o700); got != want {
		t.Errorf("mode: got %v, want %v", got, want)
	}
}

func TestNewOutboxErrors(t *testing.T) {
	file := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, dir := range []string{"", file} {
		if _, err := NewOutbox(dir); err == nil {
			t.Errorf("NewOutbox(%q): got nil, want an error", dir)
		}
	}
}

func TestOutboxRefuses(t *testing.T) {
	dir := t.TempDir()
	o, err := NewOutbox(dir)
	if err != nil {
		t.Fatal(err)
	}
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	for _, tc := range []struct {
		name     string
		ctx      context.Context
		from     string
		msg      Message
		wantCode string
	}{
		{"display name in to", context.Background(), "", Message{To: "Ada <" + testTo + ">", Subject: "s", Text: testCode}, lethe.EINVALID},
		{"header injection", context.Background(), "", Message{To: testTo, Subject: "s\nBcc: " + testFrom, Text: testCode}, lethe.EINVALID},
		{"invalid utf-8", context.Background(), "", Message{To: testTo, Subject: "s", Text: testCode + "\xc3"}, lethe.EINVALID},
		{"bad from", context.Background(), "Lethe <" + testFrom, Message{To: testTo, Subject: "s", Text: testCode}, lethe.EINVALID},
		{"cancelled", cancelled, "", Message{To: testTo, Subject: "s", Text: testCode}, lethe.EINTERNAL},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o.From = "noreply@lethe.invalid"
			if tc.from != "" {
				o.From = tc.from
			}
			err := o.Send(tc.ctx, tc.msg)
			if got := lethe.ErrorCode(err); got != tc.wantCode {
				t.Errorf("Send: got %v (code %q), want code %q", err, got, tc.wantCode)
			}
			assertClean(t, err)
		})
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 0 {
		t.Errorf("directory: got %d entries, want none", len(entries))
	}
}

func TestReadMessageErrors(t *testing.T) {
	dir := t.TempDir()
	for name, content := range map[string]string{
		"header.eml":   "To " + testTo + "\r\n\r\nbody",
		"encoding.eml": "To: " + testTo + "\r\nContent-Transfer-Encoding: base64\r\n\r\nYWJj",
		"missing.eml":  "",
	} {
		p := filepath.Join(dir, name)
		if name != "missing.eml" {
			if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
				t.Fatal(err)
			}
		}
		_, err := ReadMessage(p)
		if err == nil {
			t.Errorf("ReadMessage(%s): got nil, want an error", name)
		}
		assertClean(t, err)
	}
}
