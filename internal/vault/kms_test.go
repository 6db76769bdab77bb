package vault

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
)

func TestLocalKMSCreateAndReopen(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "keyring")
	kms, created, err := OpenLocalKMS(path, "")
	if err != nil || !created {
		t.Fatalf("OpenLocalKMS: got created %v, err %v, want true, nil", created, err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if runtime.GOOS != "windows" && fi.Mode().Perm() != 0o600 {
		t.Fatalf("mode: got %04o, want 0600", fi.Mode().Perm())
	}
	data, _ := os.ReadFile(path)
	if lines := strings.Split(strings.TrimSuffix(string(data), "\n"), "\n"); len(lines) != 2 || lines[0] != "lethe-keyring-v1" || !strings.HasPrefix(lines[1], kms.CurrentID()+" ") {
		t.Fatalf("keyring file: got %d lines, want the header and one key line for the current id", len(lines))
	}
	if !strings.HasPrefix(kms.CurrentID(), "local-") || len(kms.CurrentID()) != len("local-")+16 {
		t.Fatalf("id: got %q, want local-<16 hex>", kms.CurrentID())
	}
	if entries, _ := os.ReadDir(filepath.Dir(path)); len(entries) != 1 {
		t.Fatalf("directory: got %d entries, want only the keyring (no temporary file left)", len(entries))
	}

	dek := NewKey()
	ad := AD("tenant-key", "acme")
	wrapped, id, err := kms.Wrap(ctx, dek, ad)
	if err != nil || id != kms.CurrentID() {
		t.Fatalf("Wrap: got id %q, err %v, want %q, nil", id, err, kms.CurrentID())
	}

	again, created, err := OpenLocalKMS(path, "")
	if err != nil || created {
		t.Fatalf("reopen: got created %v, err %v, want false, nil", created, err)
	}
	if again.CurrentID() != id {
		t.Fatalf("reopen id: got %q, want %q", again.CurrentID(), id)
	}
	got, err := again.Unwrap(ctx, wrapped, id, ad)
	if err != nil || got != dek {
		t.Fatalf("Unwrap after reopen: got err %v or another key, want the key", err)
	}
	if _, err := again.Unwrap(ctx, wrapped, id, AD("tenant-key", "other")); !errors.Is(err, ErrOpen) {
		t.Fatalf("Unwrap with wrong ad: got %v, want ErrOpen", err)
	}
}

func TestLocalKMSEnv(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "keyring")
	fileKMS, _, err := OpenLocalKMS(path, "")
	if err != nil {
		t.Fatal(err)
	}
	data, _ := os.ReadFile(path)
	line := strings.Split(string(data), "\n")[1]
	b64 := strings.Fields(line)[1]

	other := filepath.Join(t.TempDir(), "not-created")
	envKMS, created, err := OpenLocalKMS(other, b64+"\n")
	if err != nil || created {
		t.Fatalf("OpenLocalKMS(env): got created %v, err %v, want false, nil", created, err)
	}
	if _, err := os.Stat(other); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("keyring path with env key: got %v, want it untouched (not created)", err)
	}
	if envKMS.CurrentID() != fileKMS.CurrentID() {
		t.Fatalf("env id: got %q, want the file's %q", envKMS.CurrentID(), fileKMS.CurrentID())
	}
	dek := NewKey()
	wrapped, id, _ := fileKMS.Wrap(ctx, dek, nil)
	if got, err := envKMS.Unwrap(ctx, wrapped, id, nil); err != nil || got != dek {
		t.Fatalf("env Unwrap of file Wrap: got err %v or another key, want the key", err)
	}
	if _, err := envKMS.Rotate(path); err == nil || !strings.Contains(err.Error(), "LETHE_MASTER_KEY") {
		t.Fatalf("Rotate with env key: got %v, want an error naming LETHE_MASTER_KEY", err)
	}

	short := base64.StdEncoding.EncodeToString(make([]byte, 31))
	long := base64.StdEncoding.EncodeToString(make([]byte, 33))
	for name, env := range map[string]string{
		"not base64": "not base64!",
		"31 bytes":   short,
		"33 bytes":   long,
		"url base64": base64.URLEncoding.EncodeToString(bytes.Repeat([]byte{0xfb, 0xff}, 16)),
		"very long":  strings.Repeat("A", 10000),
		"unpadded":   strings.TrimRight(base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{0xfb}, 32)), "="),
	} {
		t.Run(name, func(t *testing.T) {
			_, _, err := OpenLocalKMS(other, env)
			if err == nil || !strings.Contains(err.Error(), "LETHE_MASTER_KEY") {
				t.Fatalf("got %v, want an error naming LETHE_MASTER_KEY", err)
			}
			if len(env) > 8 && strings.Contains(err.Error(), env[:8]) {
				t.Fatal("the error contains the key")
			}
		})
	}
}

func TestLocalKMSModeRefused(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("no mode bits on Windows")
	}
	path := filepath.Join(t.TempDir(), "keyring")
	if _, _, err := OpenLocalKMS(path, ""); err != nil {
		t.Fatal(err)
	}
	for _, mode := range []os.FileMode{0o640, 0o604, 0o660, 0o644} {
		t.Run(mode.String(), func(t *testing.T) {
			if err := os.Chmod(path, mode); err != nil {
				t.Fatal(err)
			}
			_, _, err := OpenLocalKMS(path, "")
			if err == nil || !strings.Contains(err.Error(), "chmod 600") {
				t.Fatalf("got %v, want an error saying chmod 600", err)
			}
		})
	}
	if err := os.Chmod(path, 0o400); err != nil {
		t.Fatal(err)
	}
	if _, _, err := OpenLocalKMS(path, ""); err != nil {
		t.Fatalf("mode 0400: got %v, want nil", err)
	}
}

func TestLocalKMSRotate(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "keyring")
	kms, _, err := OpenLocalKMS(path, "")
	if err != nil {
		t.Fatal(err)
	}
	oldID := kms.CurrentID()
	dek1 := NewKey()
	w1, id1, _ := kms.Wrap(ctx, dek1, AD("tenant-key", "a"))

	newID, err := kms.Rotate(path)
	if err != nil {
		t.Fatalf("Rotate: %v", err)
	}
	if newID == oldID || kms.CurrentID() != newID {
		t.Fatalf("after Rotate: got current %q (new %q), want a new current id", kms.CurrentID(), newID)
	}
	if _, err := os.Stat(path + ".new"); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("%s.new: got %v, want it gone", path, err)
	}
	if fi, _ := os.Stat(path); runtime.GOOS != "windows" && fi.Mode().Perm() != 0o600 {
		t.Fatalf("mode after Rotate: got %04o, want 0600", fi.Mode().Perm())
	}
	dek2 := NewKey()
	w2, id2, _ := kms.Wrap(ctx, dek2, AD("tenant-key", "b"))
	if id1 != oldID || id2 != newID {
		t.Fatalf("wrap ids: got %q, %q, want %q, %q", id1, id2, oldID, newID)
	}

	reopened, _, err := OpenLocalKMS(path, "")
	if err != nil {
		t.Fatal(err)
	}
	if reopened.CurrentID() != newID {
		t.Fatalf("reopened current: got %q, want %q", reopened.CurrentID(), newID)
	}
	for _, c := range []struct {
		name    string
		kms     *LocalKMS
		wrapped []byte
		id, ad  string
		want    Key
	}{
		{"old key, same process", kms, w1, id1, "a", dek1},
		{"new key, same process", kms, w2, id2, "b", dek2},
		{"old key, reopened", reopened, w1, id1, "a", dek1},
		{"new key, reopened", reopened, w2, id2, "b", dek2},
	} {
		t.Run(c.name, func(t *testing.T) {
			got, err := c.kms.Unwrap(ctx, c.wrapped, c.id, AD("tenant-key", c.ad))
			if err != nil || got != c.want {
				t.Fatalf("Unwrap: got err %v or another key, want the key", err)
			}
		})
	}
	if _, err := kms.Unwrap(ctx, w1, id2, AD("tenant-key", "a")); !errors.Is(err, ErrOpen) {
		t.Fatalf("Unwrap under the other id: got %v, want ErrOpen", err)
	}

	// A second process rotates too; this one keeps its keys.
	third, err := reopened.Rotate(path)
	if err != nil {
		t.Fatal(err)
	}
	fourth, err := kms.Rotate(path)
	if err != nil {
		t.Fatal(err)
	}
	final, _, _ := OpenLocalKMS(path, "")
	if got := len(final.ids); got != 4 || final.ids[2] != third || final.CurrentID() != fourth {
		t.Fatalf("after two processes rotate: got %d keys, want 4 in order", got)
	}

	// An interrupted rotation blocks the next one with a clear message.
	if err := os.WriteFile(path+".new", nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := kms.Rotate(path); err == nil || !strings.Contains(err.Error(), "remove it") {
		t.Fatalf("Rotate with a leftover .new: got %v, want an error saying to remove it", err)
	}
	if _, err := os.Stat(path + ".new"); err != nil {
		t.Fatalf("Rotate removed a .new file it did not create: %v", err)
	}
}

func TestLocalKMSRotateRefusesLostKey(t *testing.T) {
	dir := t.TempDir()
	a, _, _ := OpenLocalKMS(filepath.Join(dir, "a"), "")
	b := filepath.Join(dir, "b")
	if _, _, err := OpenLocalKMS(b, ""); err != nil {
		t.Fatal(err)
	}
	before, _ := os.ReadFile(b)
	if _, err := a.Rotate(b); err == nil || !strings.Contains(err.Error(), a.CurrentID()) {
		t.Fatalf("Rotate of a file without our key: got %v, want an error naming %s", err, a.CurrentID())
	}
	if after, _ := os.ReadFile(b); !bytes.Equal(before, after) {
		t.Fatal("a refused Rotate changed the file")
	}
}

func TestLocalKMSUnknownID(t *testing.T) {
	kms, _, err := OpenLocalKMS(filepath.Join(t.TempDir(), "keyring"), "")
	if err != nil {
		t.Fatal(err)
	}
	wrapped, _, _ := kms.Wrap(context.Background(), NewKey(), nil)
	_, err = kms.Unwrap(context.Background(), wrapped, "local-0000000000000000", nil)
	if err == nil || !strings.Contains(err.Error(), "local-0000000000000000") || errors.Is(err, ErrOpen) {
		t.Fatalf("got %v, want an error naming the id (not ErrOpen)", err)
	}
}

func TestLocalKMSContext(t *testing.T) {
	kms, _, _ := OpenLocalKMS(filepath.Join(t.TempDir(), "keyring"), "")
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, _, err := kms.Wrap(ctx, NewKey(), nil); !errors.Is(err, context.Canceled) {
		t.Fatalf("Wrap: got %v, want context.Canceled", err)
	}
	if _, err := kms.Unwrap(ctx, nil, kms.CurrentID(), nil); !errors.Is(err, context.Canceled) {
		t.Fatalf("Unwrap: got %v, want context.Canceled", err)
	}
}

func TestLocalKMSNoPath(t *testing.T) {
	if _, _, err := OpenLocalKMS("", ""); err == nil {
		t.Fatal("got nil error, want one")
	}
	if _, _, err := OpenLocalKMS(filepath.Join(t.TempDir(), "missing-dir", "keyring"), ""); err == nil {
		t.Fatal("missing directory: got nil error, want one")
	}
}

// TestLocalKMSConcurrentCreate starts many openers on one missing path: all
// must end up with the one key that was written.
func TestLocalKMSConcurrentCreate(t *testing.T) {
	path := filepath.Join(t.TempDir(), "keyring")
	const n = 8
	ids := make([]string, n)
	created := make([]bool, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			k, c, err := OpenLocalKMS(path, "")
			if err != nil {
				t.Errorf("OpenLocalKMS: %v", err)
				return
			}
			ids[i], created[i] = k.CurrentID(), c
		}()
	}
	wg.Wait()
	nCreated := 0
	for i := range n {
		if ids[i] != ids[0] {
			t.Fatalf("ids differ: got %q and %q, want one key", ids[i], ids[0])
		}
		if created[i] {
			nCreated++
		}
	}
	if nCreated != 1 {
		t.Fatalf("created: got %d, want 1", nCreated)
	}
}

func TestParseKeyring(t *testing.T) {
	k1, k2 := *testKey(1), *testKey(2)
	good := string(formatKeyring([]keyEntry{{keyID(&k1), k1}, {keyID(&k2), k2}}))
	lines := strings.Split(strings.TrimSuffix(good, "\n"), "\n")
	line1, line2 := lines[1], lines[2]
	id1, b1, _ := strings.Cut(line1, " ")
	tests := []struct {
		name    string
		data    string
		wantErr string // "" for success
	}{
		{"good", good, ""},
		{"no final newline", strings.TrimSuffix(good, "\n"), ""},
		{"empty", "", "line 1"},
		{"wrong header", "lethe-keyring-v2\n" + line1 + "\n", "line 1"},
		{"crlf header", "lethe-keyring-v1\r\n" + line1 + "\n", "line 1"},
		{"header only", "lethe-keyring-v1\n", "no keys"},
		{"blank line", "lethe-keyring-v1\n" + line1 + "\n\n" + line2 + "\n", "line 3"},
		{"no space", "lethe-keyring-v1\n" + id1 + b1 + "\n", "line 2"},
		{"two spaces", "lethe-keyring-v1\n" + id1 + "  " + b1 + "\n", "line 2"},
		{"tab", "lethe-keyring-v1\n" + id1 + "\t" + b1 + "\n", "line 2"},
		{"crlf", "lethe-keyring-v1\n" + line1 + "\r\n", "line 2"},
		{"trailing space", "lethe-keyring-v1\n" + line1 + " \n", "line 2"},
		{"bad base64", "lethe-keyring-v1\n" + id1 + " " + strings.Repeat("!", 44) + "\n", "line 2"},
		{"short key", "lethe-keyring-v1\n" + id1 + " " + base64.StdEncoding.EncodeToString(k1[:31]) + "\n", "line 2"},
		{"unpadded", "lethe-keyring-v1\n" + id1 + " " + strings.TrimRight(b1, "=") + "\n", "line 2"},
		{"wrong id", "lethe-keyring-v1\n" + "local-0000000000000000 " + b1 + "\n", "line 2"},
		{"upper-case id", "lethe-keyring-v1\n" + strings.ToUpper(id1) + " " + b1 + "\n", "line 2"},
		{"duplicate", "lethe-keyring-v1\n" + line1 + "\n" + line2 + "\n" + line1 + "\n", "line 4: the same key as line 2"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			entries, err := parseKeyring([]byte(tt.data))
			if tt.wantErr == "" {
				if err != nil || len(entries) != 2 || entries[0].key != k1 || entries[1].key != k2 {
					t.Fatalf("got %d entries, err %v, want the two keys in order", len(entries), err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("got %v, want an error with %q", err, tt.wantErr)
			}
			if strings.Contains(err.Error(), b1[:12]) {
				t.Fatal("the error contains key material")
			}
		})
	}
}

func TestReadKeyringErrorsHideKey(t *testing.T) {
	path := filepath.Join(t.TempDir(), "keyring")
	k := *testKey(9)
	data := formatKeyring([]keyEntry{{"local-0000000000000000", k}})
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	_, _, err := OpenLocalKMS(path, "")
	if err == nil {
		t.Fatal("got nil error, want one")
	}
	if strings.Contains(err.Error(), base64.StdEncoding.EncodeToString(k[:])[:12]) {
		t.Fatal("the error contains key material")
	}
	if !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), "line 2") {
		t.Fatalf("got %v, want an error naming the path and line 2", err)
	}
}

// TestLocalKMSFollowsFile checks that a ring follows rotations another
// process makes on its keyring file, and refuses a file that lost its keys.
func TestLocalKMSFollowsFile(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "keyring")
	a, _, err := OpenLocalKMS(path, "")
	if err != nil {
		t.Fatal(err)
	}
	b, _, _ := OpenLocalKMS(path, "")
	c, _, _ := OpenLocalKMS(path, "")
	id0 := a.CurrentID()

	id1, err := b.Rotate(path)
	if err != nil {
		t.Fatal(err)
	}
	if _, id, err := a.Wrap(ctx, NewKey(), nil); err != nil || id != id1 || a.CurrentID() != id1 {
		t.Fatalf("Wrap after another ring rotated: got %q (current %q), %v, want %q", id, a.CurrentID(), err, id1)
	}

	// c has not wrapped since: it learns of the new key when it meets it.
	dek := NewKey()
	w, id, _ := b.Wrap(ctx, dek, AD("tenant-key", "acme"))
	if got, err := c.Unwrap(ctx, w, id, AD("tenant-key", "acme")); err != nil || got != dek {
		t.Fatalf("Unwrap under a key another ring added: got err %v or another key, want the key", err)
	}
	if c.CurrentID() != id1 {
		t.Fatalf("current after following: got %q, want %q", c.CurrentID(), id1)
	}

	// A file that no longer holds the ring's keys is not followed.
	other := filepath.Join(t.TempDir(), "other")
	foreign, _, _ := OpenLocalKMS(other, "")
	data, _ := os.ReadFile(other)
	if err := os.WriteFile(path+".tmp", data, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(path+".tmp", path); err != nil {
		t.Fatal(err)
	}
	if err := a.Reload(); err == nil || !strings.Contains(err.Error(), "no longer holds key "+id0) {
		t.Fatalf("Reload of a foreign keyring: got %v, want an error naming %s", err, id0)
	}
	if _, id, err := a.Wrap(ctx, NewKey(), nil); err != nil || id != id1 {
		t.Fatalf("Wrap with a foreign keyring in place: got %q, %v, want %q", id, err, id1)
	}
	fw, fid, _ := foreign.Wrap(ctx, NewKey(), nil)
	if _, err := a.Unwrap(ctx, fw, fid, nil); err == nil || !strings.Contains(err.Error(), "no longer holds") {
		t.Fatalf("Unwrap under the foreign key: got %v, want an error saying why the file was not followed", err)
	}

	env, _, _ := OpenLocalKMS("", base64.StdEncoding.EncodeToString(make([]byte, 32)))
	if err := env.Reload(); err != nil {
		t.Fatalf("Reload of an environment key: got %v, want nil", err)
	}
}

// TestLocalKMSFollowsConcurrently wraps and unwraps while another ring
// rotates the file, for the race detector.
func TestLocalKMSFollowsConcurrently(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "keyring")
	a, _, _ := OpenLocalKMS(path, "")
	b, _, _ := OpenLocalKMS(path, "")
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for range 50 {
				dek := NewKey()
				w, id, err := a.Wrap(ctx, dek, nil)
				if err != nil {
					t.Error(err)
					return
				}
				if got, err := a.Unwrap(ctx, w, id, nil); err != nil || got != dek {
					t.Errorf("Unwrap: %v", err)
					return
				}
			}
		})
	}
	for range 5 {
		dek := NewKey()
		if _, err := b.Rotate(path); err != nil {
			t.Fatal(err)
		}
		w, id, _ := b.Wrap(ctx, dek, nil)
		if got, err := a.Unwrap(ctx, w, id, nil); err != nil || got != dek {
			t.Fatalf("Unwrap under the rotated key: %v", err)
		}
	}
	wg.Wait()
	if a.CurrentID() != b.CurrentID() {
		t.Errorf("current: got %q, want %q", a.CurrentID(), b.CurrentID())
	}
}
