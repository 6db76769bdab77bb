package audit

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/transparency-dev/formats/log"
	"golang.org/x/mod/sumdb/note"
	"golang.org/x/sys/unix"
)

// NewSigner returns a C2SP signed-note signer for checkpoints of the log
// named origin, with the Ed25519 key made from seed (32 bytes, kept in the
// key store), and the verifier key that checks its signatures (the
// "name+hash+key" string an auditor keeps to verify the log).
func NewSigner(origin string, seed []byte) (note.Signer, string, error) {
	if len(seed) != ed25519.SeedSize {
		return nil, "", fmt.Errorf("checkpoint signing seed is %d bytes, want %d", len(seed), ed25519.SeedSize)
	}
	priv := ed25519.NewKeyFromSeed(seed)
	vkey, err := note.NewEd25519VerifierKey(origin, priv.Public().(ed25519.PublicKey))
	if err != nil {
		return nil, "", fmt.Errorf("checkpoint verifier key: %w", err)
	}
	v, err := note.NewVerifier(vkey)
	if err != nil {
		return nil, "", err
	}
	return &signer{name: origin, hash: v.KeyHash(), key: priv}, vkey, nil
}

// signer signs notes with an Ed25519 key held in memory. The note package
// makes signers only from its text encoding of a private key; building one
// from the seed keeps the key out of any string.
type signer struct {
	name string
	hash uint32
	key  ed25519.PrivateKey
}

func (s *signer) Name() string                    { return s.name }
func (s *signer) KeyHash() uint32                 { return s.hash }
func (s *signer) Sign(msg []byte) ([]byte, error) { return ed25519.Sign(s.key, msg), nil }

// verifierOf returns the verifier for a signer by signing and checking a
// probe, which also proves that the signer works.
func verifierOf(s note.Signer) (note.Verifier, error) {
	sg, ok := s.(*signer)
	if !ok {
		return nil, errors.New("checkpoint signer must come from NewSigner")
	}
	vkey, err := note.NewEd25519VerifierKey(sg.name, sg.key.Public().(ed25519.PublicKey))
	if err != nil {
		return nil, err
	}
	return note.NewVerifier(vkey)
}

// Publisher sends each new checkpoint somewhere outside Lethe's control, so
// that a copy exists that the operator of this machine cannot rewrite.
type Publisher interface {
	Publish(ctx context.Context, size uint64, checkpoint []byte) error
}

// FilePublisher writes the latest checkpoint to a file (atomically, by
// rename), typically on storage another party controls.
type FilePublisher struct{ Path string }

// Publish implements Publisher.
func (p FilePublisher) Publish(_ context.Context, _ uint64, cp []byte) error {
	if err := writeFileSync(p.Path, cp); err != nil {
		return fmt.Errorf("publish checkpoint to %s: %w", p.Path, err)
	}
	return nil
}

// WebhookPublisher POSTs each checkpoint (text/plain, the signed note) to a
// URL; any 2xx answer counts as received.
type WebhookPublisher struct {
	URL    string
	Client *http.Client // http.DefaultClient if nil
}

// Publish implements Publisher.
func (p WebhookPublisher) Publish(ctx context.Context, _ uint64, cp []byte) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, p.URL, bytes.NewReader(cp))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "text/plain; charset=utf-8")
	c := p.Client
	if c == nil {
		c = http.DefaultClient
	}
	resp, err := c.Do(req)
	if err != nil {
		return fmt.Errorf("publish checkpoint: %w", err)
	}
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("publish checkpoint: webhook answered %s", resp.Status)
	}
	return nil
}

// openCheckpoints opens the checkpoints file for appending and returns its
// last checkpoint, checked against the log's key (nil if there is none). A
// checkpoint cut short by a crash is dropped.
func (l *Log) openCheckpoints() (*log.Checkpoint, error) {
	path := filepath.Join(l.dir, "checkpoints")
	data, err := os.ReadFile(path)
	if err != nil && !os.IsNotExist(err) {
		return nil, err
	}
	var last []byte
	off := 0
	for off < len(data) {
		rec, n, err := readRecord(data[off:])
		if errors.Is(err, errTorn) {
			l.log.Warn("dropping a checkpoint cut short by a crash", "bytes", len(data)-off)
			break
		} else if err != nil {
			return nil, damaged("checkpoints file damaged at byte %d: %w; run 'lethe audit verify'", off, err)
		}
		last, off = rec, off+n
	}
	if l.cpFile, err = os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600); err != nil {
		return nil, err
	}
	if off < len(data) {
		if err := l.cpFile.Truncate(int64(off)); err != nil {
			return nil, err
		}
	}
	if _, err := l.cpFile.Seek(int64(off), io.SeekStart); err != nil {
		return nil, err
	}
	if last == nil {
		return nil, nil
	}
	cp, _, _, err := log.ParseCheckpoint(last, l.opts.Origin, l.verifier)
	if err != nil {
		return nil, damaged("last checkpoint does not verify with this log's key: %w", err)
	}
	return cp, nil
}

// checkpoint signs the tree as it is now, if it grew since the last
// checkpoint, and stores it beside the log, in the key store and with the
// publishers, in that order.
func (l *Log) checkpoint(ctx context.Context) error {
	l.cpMu.Lock()
	defer l.cpMu.Unlock()
	l.treeMu.Lock()
	size := l.rng.End()
	root, err := l.rng.GetRootHash(nil)
	l.treeMu.Unlock()
	if err != nil {
		return err
	}
	prev := l.cpSize.Load()
	if size == prev {
		return nil
	}
	// The hash files are written without syncs; make the ones up to this
	// size durable before a checkpoint vouches for them, so that recovery
	// can start from it.
	for seg := prev >> segmentBits; seg <= (size-1)>>segmentBits; seg++ {
		if err := syncPath(l.segmentPath(seg, ".idx")); err != nil {
			return l.cpFailed(err)
		}
	}
	for k := 1; size>>(tileBits*k) > 0; k++ {
		if err := syncPath(l.treePath(k)); err != nil {
			return l.cpFailed(err)
		}
	}
	body := log.Checkpoint{Origin: l.opts.Origin, Size: size, Hash: root}.Marshal()
	signed, err := note.Sign(&note.Note{Text: string(body)}, l.opts.Signer)
	if err != nil {
		return l.cpFailed(err)
	}
	if _, err := l.cpFile.Write(appendRecord(nil, signed)); err != nil {
		return l.cpFailed(err)
	}
	if err := fdatasync(l.cpFile); err != nil {
		return l.cpFailed(err)
	}
	l.cpSize.Store(size)
	if err := l.opts.Anchor.SaveCheckpoint(ctx, l.opts.Origin, size, signed); err != nil {
		return l.cpFailed(fmt.Errorf("save checkpoint in the key store: %w", err))
	}
	for _, p := range l.opts.Publish {
		pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		err := p.Publish(pctx, size, signed)
		cancel()
		if err != nil {
			return l.cpFailed(err)
		}
	}
	l.cpErr.Store(nil)
	return nil
}

func (l *Log) cpFailed(err error) error {
	l.cpErr.Store(&err)
	return err
}

// readCheckpoints returns every checkpoint in a checkpoints file, unparsed.
func readCheckpoints(path string) ([][]byte, error) {
	data, err := os.ReadFile(path)
	if err != nil && !os.IsNotExist(err) {
		return nil, err
	}
	var cps [][]byte
	for off := 0; off < len(data); {
		rec, n, err := readRecord(data[off:])
		if err != nil {
			return cps, fmt.Errorf("checkpoints file at byte %d: %w", off, err)
		}
		cps = append(cps, rec)
		off += n
	}
	return cps, nil
}

func fdatasync(f *os.File) error {
	for {
		err := unix.Fdatasync(int(f.Fd()))
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return fmt.Errorf("sync %s: %w", f.Name(), err)
		}
		return nil
	}
}
