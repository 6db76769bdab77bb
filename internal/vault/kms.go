package vault

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
)

// KMS wraps data keys under key-encryption keys it holds and never reveals.
// It is deliberately this small so that HashiCorp Vault or OpenBao transit,
// or a cloud KMS, can implement it. Implementations are safe for concurrent
// use.
type KMS interface {
	// Wrap encrypts key under the KMS's current key-encryption key, binding
	// ad, and returns the wrapped bytes with the ID of the key used.
	Wrap(ctx context.Context, key Key, ad []byte) (wrapped []byte, kekID string, err error)
	// Unwrap reverses Wrap for a key wrapped under kekID.
	Unwrap(ctx context.Context, wrapped []byte, kekID string, ad []byte) (Key, error)
}

var _ KMS = (*LocalKMS)(nil)

// LocalKMS is the default KMS: a keyring of master keys held in this
// process, read from a keyring file or from the LETHE_MASTER_KEY environment
// variable. The last key of the ring is the current one, which Wrap uses;
// Unwrap uses whichever key the ID names, so keys wrapped before a rotation
// still unwrap. A LocalKMS is safe for concurrent use, Rotate included.
//
// A LocalKMS read from a keyring file follows the file: before each Wrap,
// and before Unwrap reports a key ID it does not know, it checks (with one
// stat) whether the file changed and, if it did, adds the keys the file
// gained, its last key becoming the current one. So a rotation made by
// another process on the same file, such as "lethe keys rotate-master"
// beside a running server, takes effect here without a restart: keys that
// process rewraps under the new key still unwrap here, and keys made here
// from then on are wrapped under it. A file that no longer holds every key
// of the ring is not followed (see Reload).
//
// The keyring file is text:
//
//	lethe-keyring-v1
//	local-<16 hex> <standard base64 of the 32-byte key>
//	…
//
// one line per key, oldest first, the last line the current key. A key's ID
// is "local-" and the first 8 bytes, in hex, of SHA-256 over
// "lethe-local-kek-id-v1\x00" and the key, so the same key has the same ID
// whether it comes from the file or the environment, and a corrupted line is
// caught because its ID no longer matches its key. The prefix keeps the ID
// apart from any other hash of the key.
type LocalKMS struct {
	fromEnv bool
	path    string // the keyring file; "" for a ring from LETHE_MASTER_KEY

	mu    sync.RWMutex
	keys  map[string]*Key // by ID; never modified once added
	ids   []string        // oldest first; the last is the current key
	stamp os.FileInfo     // of the keyring file as last read; nil if unknown
}

type keyEntry struct {
	id  string
	key Key
}

const (
	keyringHeader  = "lethe-keyring-v1"
	keyIDDomain    = "lethe-local-kek-id-v1\x00"
	maxKeyringSize = 1 << 20
)

// keyID returns the keyring ID of k.
func keyID(k *Key) string {
	h := sha256.New()
	_, _ = io.WriteString(h, keyIDDomain)
	h.Write(k[:])
	var sum [sha256.Size]byte
	return "local-" + hex.EncodeToString(h.Sum(sum[:0])[:8])
}

// OpenLocalKMS returns the local KMS. If env, the value of LETHE_MASTER_KEY
// that the caller read, is not empty, it must be the standard base64 of a
// 32-byte key, which becomes the only key of the ring, and the file at path
// is not touched. Otherwise the keyring file at path is read or, if there is
// none, created with one new random key: mode 0600, written to a temporary
// file, fsynced and linked into place, so that a crash never leaves a
// partial keyring and two processes starting at once end up with the same
// one. The bool reports whether this call created the file.
//
// It refuses a keyring file that group or others may access (the error says
// to chmod 600), and one that is malformed: a wrong first line, a line that
// is not "<id> <base64 key>", a key that is not 32 bytes, an ID that does
// not match its key, or a duplicate ID. Errors name the path and the line
// number, never key material. None carries a lethe.Error code: a broken
// keyring is an operator's problem, reported as EINTERNAL.
func OpenLocalKMS(path string, env string) (*LocalKMS, bool, error) {
	if env != "" {
		k, err := parseEnvKey(env)
		if err != nil {
			return nil, false, err
		}
		return newLocalKMS([]keyEntry{{keyID(&k), k}}, "", nil), false, nil
	}
	if path == "" {
		return nil, false, errors.New("open local kms: no master key: set LETHE_MASTER_KEY or give a keyring path")
	}
	entries, fi, err := readKeyring(path)
	if err == nil {
		return newLocalKMS(entries, path, fi), false, nil
	} else if !errors.Is(err, fs.ErrNotExist) {
		return nil, false, err
	}
	k := NewKey()
	entries = []keyEntry{{keyID(&k), k}}
	err = createKeyring(path, formatKeyring(entries))
	if errors.Is(err, fs.ErrExist) {
		// Another process created it first: use theirs.
		if entries, fi, err = readKeyring(path); err != nil {
			return nil, false, err
		}
		return newLocalKMS(entries, path, fi), false, nil
	} else if err != nil {
		return nil, false, err
	}
	fi, _ = os.Stat(path) // unknown (nil) only makes the first check re-read the file
	return newLocalKMS(entries, path, fi), true, nil
}

// newLocalKMS returns a ring of entries read from the keyring file at path
// (stamp is its FileInfo), or from LETHE_MASTER_KEY if path is "".
func newLocalKMS(entries []keyEntry, path string, stamp os.FileInfo) *LocalKMS {
	k := &LocalKMS{fromEnv: path == "", path: path, stamp: stamp, keys: make(map[string]*Key, len(entries))}
	k.add(entries)
	return k
}

// add adds the entries not yet in the ring, in order; k.mu must be held or k
// not yet shared.
func (k *LocalKMS) add(entries []keyEntry) {
	for _, e := range entries {
		if _, ok := k.keys[e.id]; !ok {
			key := e.key
			k.keys[e.id] = &key
			k.ids = append(k.ids, e.id)
		}
	}
}

func parseEnvKey(env string) (Key, error) {
	const msg = "LETHE_MASTER_KEY must be the standard base64 of 32 bytes (make one with: openssl rand -base64 32)"
	s := strings.TrimSpace(env)
	var buf [33]byte
	if base64.StdEncoding.DecodedLen(len(s)) > len(buf) {
		return Key{}, errors.New(msg)
	}
	n, err := base64.StdEncoding.Strict().Decode(buf[:], []byte(s))
	defer clear(buf[:])
	if err != nil || n != len(Key{}) {
		return Key{}, errors.New(msg)
	}
	return Key(buf[:32]), nil
}

// CurrentID returns the ID of the key Wrap uses now. A key wrapped under
// another ID may be rewrapped to move it to the current key.
func (k *LocalKMS) CurrentID() string {
	k.mu.RLock()
	defer k.mu.RUnlock()
	return k.ids[len(k.ids)-1]
}

// Wrap wraps key under the current master key with WrapKey, binding ad, and
// returns the wrapped bytes with the master key's ID. It fails only if ctx
// is done.
func (k *LocalKMS) Wrap(ctx context.Context, key Key, ad []byte) ([]byte, string, error) {
	if err := ctx.Err(); err != nil {
		return nil, "", err
	}
	// A keyring that cannot be re-read leaves the ring as it is: wrapping
	// under the key this process has is still right, and Unwrap reports
	// the problem when it matters.
	_ = k.refresh()
	k.mu.RLock()
	id := k.ids[len(k.ids)-1]
	kek := k.keys[id]
	k.mu.RUnlock()
	return WrapKey(kek, key, ad), id, nil
}

// Unwrap unwraps a key wrapped under the master key kekID with UnwrapKey.
// The error names kekID if the ring has no such key, even after following
// the keyring file, and wraps ErrOpen if wrapped does not open with ad.
func (k *LocalKMS) Unwrap(ctx context.Context, wrapped []byte, kekID string, ad []byte) (Key, error) {
	if err := ctx.Err(); err != nil {
		return Key{}, err
	}
	kek, ok := k.key(kekID)
	if !ok {
		// Perhaps another process rotated the keyring and rewrapped this
		// key under the new master key: follow the file and look again.
		rerr := k.refresh()
		if kek, ok = k.key(kekID); !ok {
			if rerr != nil {
				return Key{}, fmt.Errorf("unwrap: unknown key-encryption key %q: the keyring does not hold it (%w)", kekID, rerr)
			}
			return Key{}, fmt.Errorf("unwrap: unknown key-encryption key %q: the keyring does not hold it", kekID)
		}
	}
	key, err := UnwrapKey(kek, wrapped, ad)
	if err != nil {
		return Key{}, fmt.Errorf("unwrap with key-encryption key %s: %w", kekID, err)
	}
	return key, nil
}

// key returns the ring's key with the given ID.
func (k *LocalKMS) key(id string) (*Key, bool) {
	k.mu.RLock()
	defer k.mu.RUnlock()
	kek, ok := k.keys[id]
	return kek, ok
}

// refresh reloads the keyring file if it changed since it was last read:
// if it is another file (a rotation renames a new one into place), or its
// size or modification time differ. It costs one stat when nothing changed.
func (k *LocalKMS) refresh() error {
	if k.fromEnv {
		return nil
	}
	fi, err := os.Stat(k.path)
	if err != nil {
		return fmt.Errorf("reload keyring: %w", err)
	}
	k.mu.RLock()
	same := k.stamp != nil && os.SameFile(k.stamp, fi) && k.stamp.Size() == fi.Size() && k.stamp.ModTime().Equal(fi.ModTime())
	k.mu.RUnlock()
	if same {
		return nil
	}
	return k.Reload()
}

// Reload reads the keyring file again and adds the keys it holds that the
// ring lacks, in the file's order, so that the file's last key becomes the
// current one: keys another process added with Rotate are then used here.
// Keys are never removed from a ring. Reload refuses, and changes nothing,
// a file that is unreadable or malformed, as OpenLocalKMS does, or that no
// longer holds every key of the ring: keys may still be wrapped under
// them, and following such a file (say, another deployment's keyring
// copied over this one) would wrap new keys under a key this deployment
// may not keep. For a ring from LETHE_MASTER_KEY, Reload does nothing.
// Wrap and Unwrap call it when the file changed; there is no need to call
// it after Rotate.
func (k *LocalKMS) Reload() error {
	if k.fromEnv {
		return nil
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	entries, fi, err := readKeyring(k.path)
	if err != nil {
		return fmt.Errorf("reload: %w", err)
	}
	if err := k.holdsRing(k.path, entries); err != nil {
		return fmt.Errorf("reload: %w", err)
	}
	k.add(entries)
	k.stamp = fi
	return nil
}

// holdsRing returns an error unless entries, read from the keyring file at
// path, hold every key of the ring; k.mu must be held.
func (k *LocalKMS) holdsRing(path string, entries []keyEntry) error {
	inFile := make(map[string]bool, len(entries))
	for _, e := range entries {
		inFile[e.id] = true
	}
	for _, id := range k.ids {
		if !inFile[id] {
			return fmt.Errorf("keyring %s no longer holds key %s, which is in use", path, id)
		}
	}
	return nil
}

// Rotate adds a new random master key to the keyring file at path and makes
// it the current key, here and in the file, and returns its ID. Old keys
// stay in the ring, so everything wrapped under them still unwraps. The file
// is re-read first, so keys another process added are kept, and rewritten
// atomically: the new ring goes to path+".new", created exclusively (so two
// rotations cannot both run), fsynced and renamed over path. If that file
// exists, Rotate fails and says so; it is left by an interrupted rotation
// and holds no key in use, so it may be removed. Other processes using the
// same keyring file follow it (see LocalKMS) and use the new key from their
// next Wrap; processes with their own copy of the file need the new file.
//
// Rotate fails for a ring from LETHE_MASTER_KEY (rotate by adding a keyring
// file instead), and if the file no longer holds a key this ring uses.
func (k *LocalKMS) Rotate(path string) (newID string, err error) {
	if k.fromEnv {
		return "", errors.New("rotate: the master key comes from LETHE_MASTER_KEY, which holds one key and cannot be rotated; use a keyring file")
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	entries, _, err := readKeyring(path)
	if err != nil {
		return "", fmt.Errorf("rotate: %w", err)
	}
	if err := k.holdsRing(path, entries); err != nil {
		return "", fmt.Errorf("rotate: %w; refusing to rewrite it", err)
	}
	nk := NewKey()
	entries = append(entries, keyEntry{keyID(&nk), nk})
	data := formatKeyring(entries)
	defer clear(data)

	newPath := path + ".new"
	f, err := os.OpenFile(newPath, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, fs.ErrExist) {
		return "", fmt.Errorf("rotate keyring %s: %s exists: another rotation is running, or one was interrupted; if none is running, remove it and try again", path, newPath)
	} else if err != nil {
		return "", fmt.Errorf("rotate keyring %s: %w", path, err)
	}
	done := false
	defer func() {
		if !done {
			_ = os.Remove(newPath)
		}
	}()
	if err := writeSync(f, data); err != nil {
		return "", fmt.Errorf("rotate keyring %s: %w", path, err)
	}
	if err := os.Rename(newPath, path); err != nil {
		return "", fmt.Errorf("rotate keyring %s: %w", path, err)
	}
	done = true
	if err := syncDir(filepath.Dir(path)); err != nil {
		return "", fmt.Errorf("rotate keyring %s: %w", path, err)
	}
	k.add(entries)
	if path == k.path {
		// The file is ours as of now; unknown (nil) only makes the next
		// check re-read it.
		k.stamp, _ = os.Stat(path)
	}
	return entries[len(entries)-1].id, nil
}

// readKeyring reads and parses the keyring file at path, refusing it if its
// mode lets group or others in, and returns its entries with the FileInfo
// of the file it read. A missing file is an error matching fs.ErrNotExist.
func readKeyring(path string) ([]keyEntry, os.FileInfo, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, nil, fmt.Errorf("open keyring: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, nil, fmt.Errorf("open keyring: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return nil, nil, fmt.Errorf("open keyring %s: not a regular file", path)
	}
	// Windows has no such mode bits; its ACLs are the operator's to set.
	if perm := fi.Mode().Perm(); runtime.GOOS != "windows" && perm&0o077 != 0 {
		return nil, nil, fmt.Errorf("open keyring %s: group or others may access it (mode %04o); run chmod 600 %s", path, perm, path)
	}
	data, err := io.ReadAll(io.LimitReader(f, maxKeyringSize+1))
	defer clear(data)
	if err != nil {
		return nil, nil, fmt.Errorf("read keyring %s: %w", path, err)
	}
	if len(data) > maxKeyringSize {
		return nil, nil, fmt.Errorf("read keyring %s: larger than %d bytes", path, maxKeyringSize)
	}
	entries, err := parseKeyring(data)
	if err != nil {
		return nil, nil, fmt.Errorf("read keyring %s: %w", path, err)
	}
	return entries, fi, nil
}

// parseKeyring parses a keyring file. Errors name line numbers, never
// content. The format is strict (no blank lines, no comments, no CR, one
// space) so that there is exactly one way to write a ring; a final newline
// is optional.
func parseKeyring(data []byte) ([]keyEntry, error) {
	lines := bytes.Split(data, []byte("\n"))
	if n := len(lines); n > 0 && len(lines[n-1]) == 0 {
		lines = lines[:n-1]
	}
	if len(lines) == 0 || string(lines[0]) != keyringHeader {
		return nil, errors.New("line 1: the first line must be " + keyringHeader)
	}
	var entries []keyEntry
	seen := make(map[string]int)
	for i, line := range lines[1:] {
		no := i + 2
		id, enc, ok := bytes.Cut(line, []byte(" "))
		if !ok {
			return nil, fmt.Errorf("line %d: want <id> <base64 key>", no)
		}
		var buf [33]byte // base64 of 32 bytes is 44 characters, which DecodedLen makes 33
		n, err := 0, error(nil)
		if len(enc) == base64.StdEncoding.EncodedLen(len(Key{})) {
			n, err = base64.StdEncoding.Strict().Decode(buf[:], enc)
		}
		k := Key(buf[:32])
		clear(buf[:])
		if err != nil || n != len(Key{}) {
			return nil, fmt.Errorf("line %d: the key is not the standard base64 of 32 bytes", no)
		}
		if string(id) != keyID(&k) {
			return nil, fmt.Errorf("line %d: the id does not match the key; the line is corrupt", no)
		}
		if prev, dup := seen[string(id)]; dup {
			return nil, fmt.Errorf("line %d: the same key as line %d", no, prev)
		}
		seen[string(id)] = no
		entries = append(entries, keyEntry{string(id), k})
	}
	if len(entries) == 0 {
		return nil, errors.New("no keys")
	}
	return entries, nil
}

// formatKeyring writes entries in the keyring file format.
func formatKeyring(entries []keyEntry) []byte {
	var b bytes.Buffer
	// Grow once, so no copy of key material is left behind in a buffer
	// that was outgrown; the caller may clear the result.
	b.Grow(len(keyringHeader) + 1 + len(entries)*(len("local-")+16+1+44+1))
	b.WriteString(keyringHeader + "\n")
	for _, e := range entries {
		b.WriteString(e.id)
		b.WriteByte(' ')
		enc := base64.NewEncoder(base64.StdEncoding, &b)
		_, _ = enc.Write(e.key[:])
		_ = enc.Close()
		b.WriteByte('\n')
	}
	return b.Bytes()
}

// createKeyring writes data to a new file at path, mode 0600, atomically: a
// temporary file in the same directory is written and fsynced, then
// hard-linked to path, which fails with an error matching fs.ErrExist if path
// exists. Unlike rename, link never replaces an existing keyring.
func createKeyring(path string, data []byte) error {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*") // mode 0600
	if err != nil {
		return fmt.Errorf("create keyring: %w", err)
	}
	defer os.Remove(f.Name())
	if err := writeSync(f, data); err != nil {
		return fmt.Errorf("create keyring %s: %w", path, err)
	}
	if err := os.Link(f.Name(), path); err != nil {
		return fmt.Errorf("create keyring: %w", err)
	}
	if err := syncDir(dir); err != nil {
		return fmt.Errorf("create keyring %s: %w", path, err)
	}
	return nil
}

// writeSync writes data to f, fsyncs and closes it.
func writeSync(f *os.File, data []byte) error {
	_, err := f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// syncDir fsyncs a directory so that a new or renamed entry in it survives a
// crash. Windows cannot sync directories and does not need to.
func syncDir(dir string) error {
	if runtime.GOOS == "windows" {
		return nil
	}
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}
