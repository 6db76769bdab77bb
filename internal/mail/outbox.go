package mail

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"time"
)

// Outbox is the Sender of the embedded setup, where there is no mail
// server: it writes each message as an RFC 5322 file, NAME.eml, into a
// directory, where an operator or the demo picks it up (any mail client
// opens .eml files).
//
// Files are written atomically: to a temporary file whose name starts with
// ".tmp-", synced, renamed, and the directory synced, so a crash leaves no
// partial .eml, only a temporary file that List skips and NewOutbox removes
// later. Files have mode 0600 in a directory of mode 0700, since each holds
// an address and a code. Names start with the UTC time to the nanosecond,
// made strictly increasing within an Outbox, and end in a random suffix, so
// they sort by the time they were written.
//
// Set the fields before the first Send. An Outbox is safe for concurrent
// use and holds nothing to close.
type Outbox struct {
	// From is the From header: a bare address, or one with a display name
	// ("Example Privacy Team <privacy@example.com>"). NewOutbox sets
	// noreply@lethe.invalid, a name that can never be delivered to
	// (RFC 2606), since nothing is.
	From string
	// Now is the clock, time.Now by default.
	Now func() time.Time

	dir  string
	mu   sync.Mutex
	last time.Time // the time in the last name given out
}

var _ Sender = (*Outbox)(nil)

const (
	emlExt     = ".eml"
	tempPrefix = ".tmp-"
	// staleTemp is the age after which NewOutbox takes a temporary file
	// for one left by a crash; a write takes milliseconds.
	staleTemp = 10 * time.Minute
)

// NewOutbox returns an Outbox writing into dir. It creates dir with mode
// 0700, narrows an existing dir to 0700, and removes temporary files that
// crashed writes left behind.
func NewOutbox(dir string) (*Outbox, error) {
	if dir == "" {
		return nil, errors.New("outbox: no directory given")
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("outbox: %w", err)
	}
	fi, err := os.Stat(dir)
	if err != nil {
		return nil, fmt.Errorf("outbox: %w", err)
	}
	if !fi.IsDir() {
		return nil, fmt.Errorf("outbox: %s is not a directory", dir)
	}
	// Messages hold personal data: other users may not even list them.
	if runtime.GOOS != "windows" && fi.Mode().Perm() != 0o700 {
		if err := os.Chmod(dir, 0o700); err != nil {
			return nil, fmt.Errorf("outbox: %w", err)
		}
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("outbox: %w", err)
	}
	for _, e := range entries {
		if !strings.HasPrefix(e.Name(), tempPrefix) {
			continue
		}
		if fi, err := e.Info(); err == nil && time.Since(fi.ModTime()) > staleTemp {
			// Best effort: a file that will not go only stays invisible.
			_ = os.Remove(filepath.Join(dir, e.Name()))
		}
	}
	return &Outbox{From: "noreply@lethe.invalid", Now: time.Now, dir: dir}, nil
}

// Dir returns the directory the Outbox writes into.
func (o *Outbox) Dir() string { return o.dir }

// Send writes m into the outbox. It fails with lethe.EINVALID when m or
// From is not valid, and otherwise only when the file cannot be written.
func (o *Outbox) Send(ctx context.Context, m Message) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("outbox: %w", err)
	}
	from, err := parseFrom(o.From)
	if err != nil {
		return err
	}
	now := o.now()
	data, err := render(from, m, now)
	if err != nil {
		return err
	}
	name := o.name(now)
	if err := writeFileAtomic(o.dir, name, data); err != nil {
		return fmt.Errorf("outbox: write %s: %w", name, err)
	}
	return nil
}

func (o *Outbox) now() time.Time {
	if o.Now != nil {
		return o.Now()
	}
	return time.Now()
}

// name returns a new file name: the time, raised to just after the last
// name's if the clock has not moved on (or went back), and a random suffix.
func (o *Outbox) name(now time.Time) string {
	o.mu.Lock()
	t := now.UTC().Round(0)
	if !t.After(o.last) {
		t = o.last.Add(time.Nanosecond)
	}
	o.last = t
	o.mu.Unlock()
	// Fixed width, so names compare as the times do.
	return t.Format("20060102T150405.000000000Z") + "-" + strings.ToLower(rand.Text()[:16]) + emlExt
}

// writeFileAtomic writes data to dir/name through a synced temporary file
// and a rename, then syncs dir so the rename itself survives a crash.
func writeFileAtomic(dir, name string, data []byte) (err error) {
	f, err := os.CreateTemp(dir, tempPrefix+"*") // mode 0600
	if err != nil {
		return err
	}
	tmp := f.Name()
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(tmp)
		}
	}()
	if _, err := f.Write(data); err != nil {
		return err
	}
	if err := f.Sync(); err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp, filepath.Join(dir, name)); err != nil {
		return err
	}
	return syncDir(dir)
}

// syncDir makes a rename in dir durable. Windows cannot sync a directory,
// and NTFS journals the rename.
func syncDir(dir string) error {
	if runtime.GOOS == "windows" {
		return nil
	}
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// List returns the paths of the messages in the outbox, oldest first. It
// skips temporary files, so a write in progress or cut short by a crash is
// never listed.
func (o *Outbox) List() ([]string, error) {
	entries, err := os.ReadDir(o.dir) // sorted by name, so by time
	if err != nil {
		return nil, fmt.Errorf("outbox: %w", err)
	}
	var paths []string
	for _, e := range entries {
		n := e.Name()
		if !e.Type().IsRegular() || strings.HasPrefix(n, ".") || !strings.HasSuffix(n, emlExt) {
			continue
		}
		paths = append(paths, filepath.Join(o.dir, n))
	}
	return paths, nil
}
