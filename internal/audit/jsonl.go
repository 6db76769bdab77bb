// Package audit records Lethe's audit events: who did what to which
// subject, for which purpose, with which outcome — IDs and field names,
// never personal-data values.
//
// This is the interim log the vault writes to until the tamper-evident,
// Merkle-tree log of the audit issue replaces it: an append-only file of
// JSON lines. It already fails closed: when an event cannot be written,
// Record returns an error and the vault refuses the operation.
package audit

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"sync"

	"github.com/lethe-privacy/lethe"
)

// File appends audit events to a file, one JSON object per line. It is
// safe for concurrent use; the caller must Close it.
type File struct {
	mu  sync.Mutex
	f   *os.File
	w   *bufio.Writer
	err error // first write error; the log refuses everything after it
}

// encoder is a buffer with a JSON encoder writing into it, reused across
// Records so that encoding a batch allocates little.
type encoder struct {
	buf bytes.Buffer
	enc *json.Encoder
}

var encoders = sync.Pool{New: func() any {
	e := &encoder{}
	e.enc = json.NewEncoder(&e.buf)
	return e
}}

var _ lethe.Auditor = (*File)(nil)

// OpenFile opens (or creates, mode 0600) the audit file at path for
// appending.
func OpenFile(path string) (*File, error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open audit log: %w", err)
	}
	return &File{f: f, w: bufio.NewWriterSize(f, 64<<10)}, nil
}

// Record appends the events and hands them to the operating system before
// returning, so they survive a crash of the process (not yet a power loss:
// the audit issue adds group-committed syncs). It fails, and keeps failing,
// once a write has failed.
func (l *File) Record(_ context.Context, events ...lethe.AuditEvent) error {
	// Encode every event first, outside the lock, so that a batch is
	// written whole or not at all. The encoder ends each event with a
	// newline.
	e := encoders.Get().(*encoder)
	defer encoders.Put(e)
	e.buf.Reset()
	for i := range events {
		if err := e.enc.Encode(&events[i]); err != nil {
			return fmt.Errorf("encode audit event: %w", err)
		}
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.err != nil {
		return l.err
	}
	if _, err := l.w.Write(e.buf.Bytes()); err != nil {
		l.err = fmt.Errorf("write audit log: %w", err)
		return l.err
	}
	if err := l.w.Flush(); err != nil {
		l.err = fmt.Errorf("write audit log: %w", err)
		return l.err
	}
	return nil
}

// Ping reports whether the log still accepts events, for /readyz.
func (l *File) Ping(context.Context) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.err
}

// Close flushes, syncs and closes the file.
func (l *File) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if err := l.w.Flush(); err != nil {
		l.f.Close()
		return fmt.Errorf("close audit log: %w", err)
	}
	if err := l.f.Sync(); err != nil {
		l.f.Close()
		return fmt.Errorf("close audit log: %w", err)
	}
	return l.f.Close()
}
