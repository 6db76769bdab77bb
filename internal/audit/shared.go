package audit

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/lethe-privacy/lethe"
	"github.com/transparency-dev/formats/log"
	"github.com/transparency-dev/merkle/compact"
	"golang.org/x/mod/sumdb/note"
)

// treeRound bounds the entries one round of tree building reads, so that
// catching up on a long backlog holds little memory at a time.
const treeRound = 100_000

// SharedLog is an audit log that several instances append to through one
// database (a SharedStore): the database gives the order, every instance's
// appends are durable when acknowledged, and the one instance that holds
// the store's lead extends the tree and signs checkpoints, at least every
// Interval while events flow. If that instance stops, another takes the
// lead within an Interval. It is safe for concurrent use; the caller must
// Close it.
type SharedLog struct {
	st       SharedStore
	opts     Options
	verifier note.Verifier
	log      *slog.Logger
	c        committer // a failed append fails its batch, not the log

	cpErr    atomic.Pointer[error] // checkpoints failing or stalled, nil when fine
	kick     chan struct{}         // asks the tree loop for a round now
	stop     chan struct{}
	done     chan struct{}
	lead     Leadership     // tree loop only: held lead, or nil
	rng      *compact.Range // tree loop only: the tree as stored, while leading
	progress struct {       // tree loop only: when the tree last grew
		size uint64
		at   time.Time
	}
}

var (
	_ lethe.Auditor    = (*SharedLog)(nil)
	_ lethe.AuditTrail = (*SharedLog)(nil)
)

// OpenShared opens the shared log in st. It refuses, with ErrDamaged, a log
// that holds fewer entries than the anchor's checkpoint (the database was
// restored from an older backup).
func OpenShared(ctx context.Context, st SharedStore, opts Options) (*SharedLog, error) {
	verifier, err := opts.check()
	if err != nil {
		return nil, err
	}
	size, err := st.Size(ctx)
	if err != nil {
		return nil, fmt.Errorf("open audit log: %w", err)
	}
	anchored, _, err := opts.Anchor.LatestCheckpoint(ctx, opts.Origin)
	if err != nil && lethe.ErrorCode(err) != lethe.ENOTFOUND {
		return nil, fmt.Errorf("open audit log: read the key store's audit checkpoint: %w", err)
	}
	if anchored > size {
		return nil, damaged("the log holds %d entries but the key store's checkpoint is for %d: entries were removed or the database rolled back; run 'lethe audit verify'", size, anchored)
	}
	l := &SharedLog{st: st, opts: opts, verifier: verifier, log: opts.Logger,
		kick: make(chan struct{}, 1), stop: make(chan struct{}), done: make(chan struct{})}
	l.c = committer{commit: l.commit, log: opts.Logger}
	l.progress.at = time.Now()
	go l.treeLoop()
	return l, nil
}

func (l *SharedLog) commit(batch []*pending) error {
	var entries [][]byte
	for _, p := range batch {
		entries = append(entries, p.entries...)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	first, err := l.st.Append(ctx, entries)
	if err != nil {
		return err
	}
	for _, p := range batch {
		p.first = first
		first += uint64(len(p.entries))
	}
	return nil
}

// Record implements lethe.Auditor: the events are appended, each as one
// entry, in one transaction shared with concurrent Records.
func (l *SharedLog) Record(ctx context.Context, events ...lethe.AuditEvent) error {
	return record(ctx, l.Append, events)
}

// Append appends entries and returns the index of the first once they are
// committed. EINVALID for an empty or oversized entry; EUNAVAILABLE if the
// database refused them.
func (l *SharedLog) Append(ctx context.Context, entries ...[]byte) (uint64, error) {
	if err := checkEntries(entries); err != nil {
		return 0, err
	}
	return l.c.submit(ctx, newPending(entries))
}

// Ping reports whether the log accepts events and its checkpoints keep up.
func (l *SharedLog) Ping(ctx context.Context) error {
	if err := l.c.ping(); err != nil {
		return err
	}
	if p := l.cpErr.Load(); p != nil {
		return lethe.Errorf(lethe.EUNAVAILABLE, "audit checkpoints failing or stalled")
	}
	return nil
}

// Close stops accepting entries, waits for the ones in flight and, if this
// instance leads or nobody does, extends the tree over every entry and
// signs a last checkpoint, then gives the lead up.
func (l *SharedLog) Close() error {
	if first, _ := l.c.close(); !first {
		return nil
	}
	close(l.stop)
	<-l.done
	if l.lead == nil {
		// Seal what this instance appended if no other instance leads.
		if lead, ok, err := l.st.Lead(context.Background()); err == nil && ok {
			l.lead, l.rng = lead, nil
		}
	}
	var err error
	if l.lead != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		err = l.buildTree(ctx)
		cancel()
		l.lead.Release()
		l.lead = nil
	}
	return err
}

func (l *SharedLog) treeLoop() {
	defer close(l.done)
	t := time.NewTicker(l.opts.Interval / 2)
	defer t.Stop()
	for {
		select {
		case <-l.stop:
			return
		case <-t.C:
		case <-l.kick:
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*l.opts.Interval)
		err := l.round(ctx)
		cancel()
		if err != nil {
			l.log.Error("audit tree round failed", "err", err.Error())
			l.cpErr.Store(&err)
		}
	}
}

// round takes the lead if nobody holds it and extends the tree if leading;
// either way it watches that the tree keeps up with the entries.
func (l *SharedLog) round(ctx context.Context) error {
	if l.lead == nil {
		lead, ok, err := l.st.Lead(ctx)
		if err != nil {
			return err
		}
		if ok {
			l.lead, l.rng = lead, nil
			l.log.Info("leading the audit tree", "origin", l.opts.Origin)
		}
	}
	if l.lead != nil {
		if err := l.lead.Check(ctx); err != nil {
			l.lead.Release()
			l.lead, l.rng = nil, nil
			return err
		}
		if err := l.buildTree(ctx); err != nil {
			l.rng = nil // reload from the store next round
			return err
		}
	}
	size, err := l.st.Size(ctx)
	if err != nil {
		return err
	}
	tree, err := l.st.TreeSize(ctx)
	if err != nil {
		return err
	}
	if tree != l.progress.size || tree == size {
		l.progress.size, l.progress.at = tree, time.Now()
		l.cpErr.Store(nil)
	} else if time.Since(l.progress.at) > 10*l.opts.Interval {
		return fmt.Errorf("the audit tree has not grown for %s while %d entries wait: no instance is signing checkpoints", time.Since(l.progress.at).Round(time.Second), size-tree)
	}
	return nil
}

// buildTree extends the stored tree over every entry appended so far, a
// round of entries at a time, and signs a checkpoint for each round.
func (l *SharedLog) buildTree(ctx context.Context) error {
	for {
		from, err := l.st.TreeSize(ctx)
		if err != nil {
			return err
		}
		if l.rng == nil || l.rng.End() != from {
			if l.rng, err = rangeAt(ctx, l.st, from); err != nil {
				return fmt.Errorf("load the audit tree at %d: %w", from, err)
			}
		}
		size, err := l.st.Size(ctx)
		if err != nil {
			return err
		}
		if size == from {
			return nil
		}
		to := min(size, from+treeRound)
		var hashes []NodeHash
		visit := func(id compact.NodeID, hash []byte) {
			if id.Level%tileBits == 0 {
				hashes = append(hashes, NodeHash{Stratum: int(id.Level / tileBits), Index: id.Index, Hash: hash})
			}
		}
		errDone := errors.New("round done")
		err = l.st.Scan(ctx, from, func(i uint64, data, _ []byte) error {
			if err := l.rng.Append(leafHash(data), visit); err != nil {
				return err
			}
			if i+1 == to {
				return errDone
			}
			return nil
		})
		if !errors.Is(err, errDone) {
			l.rng = nil
			if err == nil {
				err = fmt.Errorf("audit entries %d..%d are not all stored", from, to-1)
			}
			return err
		}
		root, err := l.rng.GetRootHash(nil)
		if err != nil {
			return err
		}
		signed, err := note.Sign(&note.Note{Text: string(log.Checkpoint{Origin: l.opts.Origin, Size: to, Hash: root}.Marshal())}, l.opts.Signer)
		if err != nil {
			return err
		}
		if err := l.st.SaveTree(ctx, from, to, hashes, signed); err != nil {
			l.rng = nil
			return err
		}
		if err := l.opts.Anchor.SaveCheckpoint(ctx, l.opts.Origin, to, signed); err != nil {
			return fmt.Errorf("save checkpoint in the key store: %w", err)
		}
		for _, p := range l.opts.Publish {
			pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			err := p.Publish(pctx, to, signed)
			cancel()
			if err != nil {
				return err
			}
		}
	}
}

// SubjectEvents implements lethe.AuditTrail: it records the query, waits
// until a checkpoint covers it (every event acknowledged before it), then
// exports the subject's events with proofs against that checkpoint.
func (l *SharedLog) SubjectEvents(ctx context.Context, a lethe.Actor, q lethe.AuditQuery) (*lethe.AuditBundle, error) {
	if q.SubjectID == "" {
		return nil, lethe.Errorf(lethe.EINVALID, "a subject ID is required")
	}
	first, err := l.Append(ctx, mustEncode(auditRead(a, q)))
	if err != nil {
		return nil, lethe.Errorf(lethe.EUNAVAILABLE, "audit log unavailable: audit.read refused")
	}
	wctx, cancel := context.WithTimeout(ctx, 10*l.opts.Interval)
	defer cancel()
	for {
		tree, err := l.st.TreeSize(wctx)
		if err == nil && tree > first {
			break
		}
		select {
		case l.kick <- struct{}{}:
		default:
		}
		select {
		case <-wctx.Done():
			return nil, lethe.Errorf(lethe.EUNAVAILABLE, "no audit checkpoint covers the log yet; try again")
		case <-time.After(20 * time.Millisecond):
		}
	}
	return ExportSource(ctx, l.st, l.opts.Origin, l.verifier, q)
}

// Prune removes, if this instance leads, the oldest entries whose newest
// event is older than before, in whole segments of 65,536 covered by a
// checkpoint; the tree keeps their hashes. It records the pruning first.
func (l *SharedLog) Prune(ctx context.Context, before time.Time) (uint64, error) {
	pruned, err := l.st.Pruned(ctx)
	if err != nil || l.lead == nil {
		return pruned, err
	}
	tree, err := l.st.TreeSize(ctx)
	if err != nil {
		return pruned, err
	}
	keep, err := prunable(ctx, l.st, pruned, tree, before)
	if err != nil {
		return pruned, err
	}
	if keep == pruned {
		return pruned, nil
	}
	if err := l.Record(ctx, pruneEvent(pruned, keep)); err != nil {
		return pruned, err
	}
	if err := l.st.Prune(ctx, keep); err != nil {
		return pruned, err
	}
	l.log.Info("audit log pruned", "first_kept", keep, "removed", keep-pruned)
	return keep, nil
}

// prunable returns up to where whole segments of src, from pruned and
// below sealed, hold only events older than before (judged by each
// segment's last event).
func prunable(ctx context.Context, src Source, pruned, sealed uint64, before time.Time) (uint64, error) {
	keep := pruned
	for end := (pruned>>segmentBits + 1) << segmentBits; end <= sealed; end += segmentSize {
		var t time.Time
		errDone := errors.New("done")
		err := src.Scan(ctx, end-1, func(_ uint64, data, _ []byte) error {
			var ev struct {
				Time time.Time `json:"time"`
			}
			if err := json.Unmarshal(data, &ev); err != nil {
				return err
			}
			t = ev.Time
			return errDone
		})
		if !errors.Is(err, errDone) {
			return keep, fmt.Errorf("read the time of audit entry %d: %v", end-1, err)
		}
		if !t.Before(before) {
			break
		}
		keep = end
	}
	return keep, nil
}

// record encodes events and appends them, each as one entry.
func record(ctx context.Context, appendEntries func(context.Context, ...[]byte) (uint64, error), events []lethe.AuditEvent) error {
	entries, err := encodeEvents(events)
	if err != nil {
		return err
	}
	_, err = appendEntries(ctx, entries...)
	return err
}

// encodeEvents encodes each event as one entry, all in one allocation.
// An event whose time encoding/json would refuse (a year outside
// 0..9999) is refused too.
func encodeEvents(events []lethe.AuditEvent) ([][]byte, error) {
	entries := make([][]byte, len(events))
	buf := make([]byte, 0, 256*len(events))
	for i := range events {
		if y := events[i].Time.Year(); y < 0 || y > 9999 {
			return nil, fmt.Errorf("encode audit event: time out of range")
		}
		start := len(buf)
		buf = appendEvent(buf, &events[i])
		entries[i] = buf[start:len(buf):len(buf)]
	}
	return entries, nil
}

func mustEncode(ev lethe.AuditEvent) []byte {
	entries, err := encodeEvents([]lethe.AuditEvent{ev})
	if err != nil {
		panic(err) // only for events made here, timed now
	}
	return entries[0]
}

// auditRead is the event that records a query of a subject's audit trail.
func auditRead(a lethe.Actor, q lethe.AuditQuery) lethe.AuditEvent {
	return lethe.AuditEvent{
		Time: time.Now().UTC(), Action: "audit.read", Outcome: "ok", KeyID: a.KeyID, Role: a.Role,
		RequestID: a.RequestID, Tenant: q.Tenant, SubjectID: q.SubjectID, Purpose: a.Purpose,
	}
}

// pruneEvent records the pruning of entries [from, to).
func pruneEvent(from, to uint64) lethe.AuditEvent {
	return lethe.AuditEvent{
		Time: time.Now().UTC(), Action: "audit.prune", Outcome: "ok",
		Resource: fmt.Sprintf("audit:entries/%d-%d", from, to-1),
	}
}
