package audit

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/lethe-privacy/lethe"
	"github.com/transparency-dev/formats/log"
	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"
	"golang.org/x/mod/sumdb/note"
)

// Bundle, ProvenEvent and Filter are the root package's audit types, named
// here for the package's own callers.
type (
	Bundle      = lethe.AuditBundle
	ProvenEvent = lethe.ProvenAuditEvent
	Filter      = lethe.AuditQuery
)

// Export returns the events matching f, with inclusion proofs against a
// checkpoint made now, so that every event acknowledged so far is
// included. Events before the pruned point are no longer kept.
func (l *Log) Export(ctx context.Context, f Filter) (*Bundle, error) {
	if err := l.checkpoint(ctx); err != nil {
		return nil, lethe.Errorf(lethe.EUNAVAILABLE, "audit checkpoint failing")
	}
	return ExportSource(ctx, l.store, l.opts.Origin, l.verifier, f)
}

// SubjectEvents implements lethe.AuditTrail: it records the query (action
// audit.read), then exports the subject's events.
func (l *Log) SubjectEvents(ctx context.Context, a lethe.Actor, q lethe.AuditQuery) (*lethe.AuditBundle, error) {
	if q.SubjectID == "" {
		return nil, lethe.Errorf(lethe.EINVALID, "a subject ID is required")
	}
	if err := l.Record(ctx, auditRead(a, q)); err != nil {
		return nil, lethe.Errorf(lethe.EUNAVAILABLE, "audit log unavailable: audit.read refused")
	}
	return l.Export(ctx, q)
}

// ExportSource returns the events of src matching f, with inclusion proofs
// against its newest checkpoint, which it checks with verifier.
func ExportSource(ctx context.Context, src Source, origin string, verifier note.Verifier, f Filter) (*Bundle, error) {
	if f.SubjectID == "" {
		return nil, lethe.Errorf(lethe.EINVALID, "a subject ID is required")
	}
	cps, err := src.Checkpoints(ctx)
	if err != nil && len(cps) == 0 {
		return nil, err
	}
	if len(cps) == 0 {
		return nil, lethe.Errorf(lethe.ENOTFOUND, "the audit log has no checkpoint yet")
	}
	signed := cps[len(cps)-1]
	cp, _, _, err := log.ParseCheckpoint(signed, origin, verifier)
	if err != nil {
		return nil, fmt.Errorf("the newest checkpoint does not verify: %w", err)
	}
	pruned, err := src.Pruned(ctx)
	if err != nil {
		return nil, err
	}
	b := &Bundle{Checkpoint: string(signed), Events: []ProvenEvent{}}
	needle := []byte(`"subject_id":` + quote(f.SubjectID))
	errFull := errors.New("page full")
	err = src.Scan(ctx, max(pruned, f.After), func(i uint64, data, _ []byte) error {
		if i >= cp.Size {
			return errFull
		}
		if !bytes.Contains(data, needle) {
			return nil
		}
		var ev lethe.AuditEvent
		if err := json.Unmarshal(data, &ev); err != nil {
			return fmt.Errorf("audit entry %d: %w", i, err)
		}
		if ev.SubjectID != f.SubjectID || (f.Tenant != "" && ev.Tenant != f.Tenant) {
			return nil
		}
		if f.Limit > 0 && len(b.Events) == f.Limit {
			b.Next = &i
			return errFull
		}
		b.Events = append(b.Events, ProvenEvent{Index: i, Event: bytes.Clone(data)})
		return nil
	})
	if err != nil && !errors.Is(err, errFull) {
		return nil, err
	}
	for i := range b.Events {
		e := &b.Events[i]
		if e.Proof, err = inclusionProof(ctx, src, e.Index, cp.Size); err != nil {
			return nil, err
		}
		if err := proof.VerifyInclusion(rfc6962.DefaultHasher, e.Index, cp.Size, leafHash(e.Event), e.Proof, cp.Hash); err != nil {
			return nil, fmt.Errorf("audit entry %d does not prove against the checkpoint (tree files damaged? run 'lethe audit verify'): %w", e.Index, err)
		}
	}
	return b, nil
}

// VerifyBundle checks a bundle: its checkpoint must be signed by verifier
// for the log origin, and every event must be included in that checkpoint's
// tree. It returns the checkpoint's tree size; the error names the first
// event that fails.
func VerifyBundle(b *Bundle, origin string, verifier note.Verifier) (uint64, error) {
	cp, _, _, err := log.ParseCheckpoint([]byte(b.Checkpoint), origin, verifier)
	if err != nil {
		return 0, fmt.Errorf("checkpoint: %w", err)
	}
	for _, e := range b.Events {
		var compact bytes.Buffer
		if err := json.Compact(&compact, e.Event); err != nil {
			return 0, fmt.Errorf("event %d: not JSON: %w", e.Index, err)
		}
		if err := proof.VerifyInclusion(rfc6962.DefaultHasher, e.Index, cp.Size, leafHash(compact.Bytes()), e.Proof, cp.Hash); err != nil {
			return 0, fmt.Errorf("event %d is not in the signed log: %w", e.Index, err)
		}
	}
	return cp.Size, nil
}

// quote returns s as a JSON string, as encoding/json writes it.
func quote(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

var _ lethe.AuditTrail = (*Log)(nil)
