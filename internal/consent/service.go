package consent

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"regexp"
	"slices"
	"sync"
	"time"

	"github.com/lethe-privacy/lethe"
)

// Subjects tells whether a subject exists, for purposes that need no
// consent (a contract purpose is allowed for a subject the vault holds,
// and for nobody else). The vault implements it.
type Subjects interface {
	// SubjectStatus reports whether the subject exists, and whether it (or
	// its tenant) was erased.
	SubjectStatus(ctx context.Context, tenant, id string) (exists, erased bool, err error)
}

// Config configures a Service.
type Config struct {
	Store    lethe.ConsentStore // required
	Subjects Subjects           // required
	Audit    lethe.Auditor      // required: every ledger event is audited first
	Purposes []lethe.Purpose
	// ProofKey keys the HMACs of IP addresses and user agents kept as
	// proof (32 bytes, a deployment secret).
	ProofKey []byte
	// Follow is how often the ledger is read for events other instances
	// appended; 25 ms if zero.
	Follow time.Duration
	Now    lethe.Now
	Logger *slog.Logger
}

// Service records consent, restriction and objection in the ledger and
// answers processing checks from memory. It implements
// lethe.PurposeChecker (for the vault) and lethe.ErasureObserver. It is
// safe for concurrent use; the caller must Close it.
type Service struct {
	store    lethe.ConsentStore
	subjects Subjects
	audit    lethe.Auditor
	proofKey []byte
	now      lethe.Now
	log      *slog.Logger
	follow   time.Duration

	mu      sync.RWMutex
	st      *State
	changed chan struct{} // closed when the state moves on; guarded by mu
	sync    sync.Mutex    // one catch-up at a time

	stop chan struct{}
	done chan struct{}
}

var (
	_ lethe.Consent         = (*Service)(nil)
	_ lethe.PurposeChecker  = (*Service)(nil)
	_ lethe.ErasureObserver = (*Service)(nil)
)

// New loads the whole ledger into memory and starts following it.
func New(ctx context.Context, c Config) (*Service, error) {
	if c.Store == nil || c.Subjects == nil || c.Audit == nil {
		return nil, errors.New("consent: store, subjects and audit are required")
	}
	if len(c.ProofKey) < 32 {
		return nil, errors.New("consent: the proof key must be 32 bytes")
	}
	s := &Service{store: c.Store, subjects: c.Subjects, audit: c.Audit, proofKey: c.ProofKey, now: c.Now, log: c.Logger,
		follow: c.Follow, st: NewState(c.Purposes), changed: make(chan struct{}), stop: make(chan struct{}), done: make(chan struct{})}
	if s.now == nil {
		s.now = time.Now
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.follow <= 0 {
		s.follow = 25 * time.Millisecond
	}
	if err := s.catchUp(ctx); err != nil {
		return nil, fmt.Errorf("load the consent ledger: %w", err)
	}
	go s.followLoop()
	return s, nil
}

// Close stops following the ledger.
func (s *Service) Close() error {
	close(s.stop)
	<-s.done
	return nil
}

func (s *Service) followLoop() {
	defer close(s.done)
	t := time.NewTicker(s.follow)
	defer t.Stop()
	for {
		select {
		case <-s.stop:
			return
		case <-t.C:
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			if err := s.catchUp(ctx); err != nil {
				s.log.Error("follow the consent ledger", "err", err.Error())
			}
			cancel()
		}
	}
}

// catchUp applies every event the store holds past the state's revision.
func (s *Service) catchUp(ctx context.Context) error {
	s.sync.Lock()
	defer s.sync.Unlock()
	for {
		s.mu.RLock()
		rev := s.st.rev
		s.mu.RUnlock()
		evs, err := s.store.ConsentSince(ctx, rev, lethe.ConsentEventsLimit)
		if err != nil {
			return err
		}
		if len(evs) == 0 {
			return nil
		}
		s.mu.Lock()
		before := s.st.rev
		for i := range evs {
			if evs[i].Revision == s.st.rev+1 {
				s.st.Apply(&evs[i])
			}
		}
		if s.st.rev != before {
			close(s.changed)
			s.changed = make(chan struct{})
		}
		s.mu.Unlock()
		if len(evs) < lethe.ConsentEventsLimit {
			return nil
		}
	}
}

// Revision returns the newest ledger revision this instance has applied.
func (s *Service) Revision() uint64 {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.st.rev
}

// Follow returns at most limit of tenant's ledger events after revision
// after, waiting up to wait for the ledger to move if it has not, and the
// revision it read up to (pass it as after next time). The events carry no
// proof hashes: the stream is for checking, the history for proof.
func (s *Service) Follow(ctx context.Context, tenant string, after uint64, limit int, wait time.Duration) ([]lethe.ConsentEvent, uint64, error) {
	tenant, err := tenantOrDefault(tenant)
	if err != nil {
		return nil, 0, err
	}
	s.mu.RLock()
	rev, changed := s.st.rev, s.changed
	s.mu.RUnlock()
	if rev <= after {
		t := time.NewTimer(wait)
		select {
		case <-changed:
		case <-t.C:
		case <-ctx.Done():
		}
		t.Stop()
		if rev = s.Revision(); rev <= after {
			return nil, max(after, rev), ctx.Err()
		}
	}
	evs, err := s.store.ConsentSince(ctx, after, limit)
	if err != nil {
		return nil, after, lethe.Errorf(lethe.EUNAVAILABLE, "consent ledger unavailable")
	}
	out := make([]lethe.ConsentEvent, 0, len(evs))
	for _, ev := range evs {
		after = ev.Revision
		if ev.Tenant != tenant {
			continue
		}
		ev.IPHMAC, ev.AgentHMAC = "", ""
		out = append(out, ev)
	}
	return out, after, nil
}

// Purposes returns the declared purposes.
func (s *Service) Purposes() []lethe.Purpose {
	return slices.Clone(s.st.purposes)
}

// Check decides whether tenant's subject may be processed for purpose. If
// minRevision is above what this instance has applied, it reads the
// ledger first; if the ledger does not reach it either, the answer is a
// denial (uncertain). Errors are EINVALID for a malformed argument and
// EUNAVAILABLE when the store cannot be read.
func (s *Service) Check(ctx context.Context, tenant, id, purpose string, minRevision uint64) (lethe.ConsentDecision, error) {
	tenant, err := tenantOrDefault(tenant)
	if err != nil {
		return lethe.ConsentDecision{}, err
	}
	if err := s.reach(ctx, minRevision); err != nil {
		return lethe.ConsentDecision{}, err
	}
	now := s.now()
	s.mu.RLock()
	d := s.st.Decide(tenant, id, purpose, now, false)
	s.mu.RUnlock()
	if minRevision > d.Revision {
		return lethe.ConsentDecision{Reason: lethe.DecisionUncertain, Revision: d.Revision}, nil
	}
	if d.Reason != lethe.DecisionUnknownSubject {
		return d, nil
	}
	return s.decideAfterLookup(ctx, tenant, id, purpose, now)
}

// decideAfterLookup asks the vault whether a subject the ledger does not
// know exists, remembers it if it does, and decides again.
func (s *Service) decideAfterLookup(ctx context.Context, tenant, id, purpose string, now time.Time) (lethe.ConsentDecision, error) {
	exists, erased, err := s.subjects.SubjectStatus(ctx, tenant, id)
	if err != nil {
		return lethe.ConsentDecision{}, lethe.Errorf(lethe.EUNAVAILABLE, "subject status unavailable")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case erased:
		return lethe.ConsentDecision{Reason: lethe.DecisionErased, Revision: s.st.rev}, nil
	case !exists:
		return lethe.ConsentDecision{Reason: lethe.DecisionUnknownSubject, Revision: s.st.rev}, nil
	}
	s.st.MarkExists(tenant, id)
	return s.st.Decide(tenant, id, purpose, now, true), nil
}

// reach makes sure the state has applied minRevision, if the ledger has it.
func (s *Service) reach(ctx context.Context, minRevision uint64) error {
	if minRevision == 0 || s.Revision() >= minRevision {
		return nil
	}
	if err := s.catchUp(ctx); err != nil {
		return lethe.Errorf(lethe.EUNAVAILABLE, "consent ledger unavailable")
	}
	return nil
}

// CheckBatch filters subjects for a purpose: one read lock for the whole
// batch, then a vault lookup only for subjects the ledger does not know.
func (s *Service) CheckBatch(ctx context.Context, tenant, purpose string, ids []string, minRevision uint64) (*lethe.BatchDecision, error) {
	tenant, err := tenantOrDefault(tenant)
	if err != nil {
		return nil, err
	}
	if len(ids) > lethe.ConsentBatchLimit {
		return nil, lethe.Errorf(lethe.EINVALID, "at most %d subjects per batch, not %d", lethe.ConsentBatchLimit, len(ids))
	}
	if err := s.reach(ctx, minRevision); err != nil {
		return nil, err
	}
	now := s.now()
	b := &lethe.BatchDecision{Purpose: purpose, Allowed: []string{}, Denied: []lethe.DeniedReason{}}
	reasons := make([]string, len(ids)) // "" for allowed
	var unknown []int
	s.mu.RLock()
	b.Revision = s.st.rev
	for i, id := range ids {
		d := s.st.Decide(tenant, id, purpose, now, false)
		switch {
		case minRevision > b.Revision:
			reasons[i] = lethe.DecisionUncertain
		case d.Reason == lethe.DecisionUnknownSubject:
			unknown = append(unknown, i)
		case !d.Allowed:
			reasons[i] = d.Reason
		}
	}
	s.mu.RUnlock()
	for _, i := range unknown {
		d, err := s.decideAfterLookup(ctx, tenant, ids[i], purpose, now)
		if err != nil {
			return nil, err
		}
		if !d.Allowed {
			reasons[i] = d.Reason
		}
	}
	for i, id := range ids {
		if reasons[i] == "" {
			b.Allowed = append(b.Allowed, id)
		} else {
			b.Denied = append(b.Denied, lethe.DeniedReason{SubjectID: id, Reason: reasons[i]})
		}
	}
	return b, nil
}

// Allowed implements lethe.PurposeChecker for the vault: a read or a
// detokenisation for a purpose passes the same check.
func (s *Service) Allowed(ctx context.Context, tenant, id, purpose string) (bool, error) {
	d, err := s.Check(ctx, tenant, id, purpose, 0)
	return d.Allowed, err
}

var channelRE = regexp.MustCompile(`^[a-z][a-z0-9_]{0,31}$`)

// maxSkew is how far in the future an event's time may be (clock skew
// between the caller and Lethe).
const maxSkew = 5 * time.Minute

// Record validates records, audits them, appends them to the ledger in one
// transaction and returns the events as stored. Either every record is
// recorded or none is: EINVALID names the first bad record by position;
// ENOTFOUND or EGONE if a subject does not exist or was erased.
func (s *Service) Record(ctx context.Context, a lethe.Actor, tenant string, recs []lethe.ConsentRecord) ([]lethe.ConsentEvent, error) {
	tenant, err := tenantOrDefault(tenant)
	if err != nil {
		return nil, err
	}
	if len(recs) == 0 || len(recs) > lethe.ConsentEventsLimit {
		return nil, lethe.Errorf(lethe.EINVALID, "give 1 to %d records, not %d", lethe.ConsentEventsLimit, len(recs))
	}
	now := s.now().UTC()
	events := make([]lethe.ConsentEvent, len(recs))
	checked := map[string]bool{}
	for i, r := range recs {
		ev, err := s.event(tenant, r, now, a)
		if err != nil {
			return nil, lethe.Errorf(lethe.EINVALID, "record %d: %s", i+1, lethe.ErrorMessage(err))
		}
		if !checked[r.SubjectID] {
			if err := s.mustExist(ctx, tenant, r.SubjectID); err != nil {
				return nil, err
			}
			checked[r.SubjectID] = true
		}
		events[i] = ev
	}
	if err := s.audit.Record(ctx, auditEvents(a, now, events)...); err != nil {
		return nil, lethe.Errorf(lethe.EUNAVAILABLE, "audit log unavailable: consent not recorded")
	}
	if _, err := s.store.AppendConsent(ctx, events); err != nil {
		return nil, err
	}
	// Apply in ledger order, with whatever other instances appended before.
	if err := s.catchUp(ctx); err != nil {
		s.log.Error("apply recorded consent", "err", err.Error())
	}
	return events, nil
}

// Import implements lethe.Consent: each record is checked on its own; the
// valid ones are audited and appended in chunks of ConsentEventsLimit, in
// the order given.
func (s *Service) Import(ctx context.Context, a lethe.Actor, tenant string, recs []lethe.ConsentRecord) (*lethe.ImportReport, error) {
	tenant, err := tenantOrDefault(tenant)
	if err != nil {
		return nil, err
	}
	if len(recs) > lethe.ConsentImportLimit {
		return nil, lethe.Errorf(lethe.EINVALID, "at most %d records per import, not %d", lethe.ConsentImportLimit, len(recs))
	}
	now := s.now().UTC()
	rep := &lethe.ImportReport{Rejected: []lethe.RejectedRow{}}
	exists := map[string]error{}
	var events []lethe.ConsentEvent
	flush := func() error {
		if len(events) == 0 {
			return nil
		}
		if err := s.audit.Record(ctx, auditEvents(a, now, events)...); err != nil {
			return lethe.Errorf(lethe.EUNAVAILABLE, "audit log unavailable: import stopped")
		}
		first, err := s.store.AppendConsent(ctx, events)
		if err != nil {
			return err
		}
		if rep.FirstRevision == 0 {
			rep.FirstRevision = first
		}
		rep.LastRevision = first + uint64(len(events)) - 1
		rep.Imported += len(events)
		events = events[:0]
		return nil
	}
	for i, r := range recs {
		if r.Channel == "" {
			r.Channel = "import"
		}
		ev, err := s.event(tenant, r, now, a)
		if err == nil {
			e, seen := exists[r.SubjectID]
			if !seen {
				e = s.mustExist(ctx, tenant, r.SubjectID)
				exists[r.SubjectID] = e
			}
			err = e
		}
		if err != nil {
			rep.Rejected = append(rep.Rejected, lethe.RejectedRow{Row: i + 1, Reason: lethe.ErrorMessage(err)})
			continue
		}
		events = append(events, ev)
		if len(events) == lethe.ConsentEventsLimit {
			if err := flush(); err != nil {
				return rep, err
			}
		}
	}
	if err := flush(); err != nil {
		return rep, err
	}
	if err := s.catchUp(ctx); err != nil {
		s.log.Error("apply imported consent", "err", err.Error())
	}
	return rep, nil
}

// auditEvents are the audit events of ledger events: consent.<kind>, with
// the subject and purpose.
func auditEvents(a lethe.Actor, now time.Time, events []lethe.ConsentEvent) []lethe.AuditEvent {
	audits := make([]lethe.AuditEvent, len(events))
	for i, ev := range events {
		audits[i] = lethe.AuditEvent{Time: now, Action: "consent." + ev.Kind, Outcome: "ok", KeyID: a.KeyID, Role: a.Role,
			RequestID: a.RequestID, Tenant: ev.Tenant, SubjectID: ev.SubjectID, Purpose: ev.Purpose}
	}
	return audits
}

// mustExist refuses a record for a subject the vault does not hold.
func (s *Service) mustExist(ctx context.Context, tenant, id string) error {
	exists, erased, err := s.subjects.SubjectStatus(ctx, tenant, id)
	switch {
	case err != nil:
		return lethe.Errorf(lethe.EUNAVAILABLE, "subject status unavailable")
	case erased:
		return lethe.Errorf(lethe.EGONE, "subject %s was erased", id)
	case !exists:
		return lethe.Errorf(lethe.ENOTFOUND, "no subject %s", id)
	}
	return nil
}

// event turns a record into a ledger event, or says what is wrong with it.
func (s *Service) event(tenant string, r lethe.ConsentRecord, now time.Time, a lethe.Actor) (lethe.ConsentEvent, error) {
	ev := lethe.ConsentEvent{Tenant: tenant, SubjectID: r.SubjectID, Purpose: r.Purpose, Kind: r.Kind, At: now,
		Channel: r.Channel, Reason: r.Reason, KeyID: a.KeyID}
	if r.SubjectID == "" {
		return ev, lethe.Errorf(lethe.EINVALID, "subject_id is required")
	}
	if r.At != nil {
		if r.At.After(now.Add(maxSkew)) {
			return ev, lethe.Errorf(lethe.EINVALID, "at is in the future")
		}
		ev.At = r.At.UTC()
	}
	if ev.Channel == "" {
		ev.Channel = "api"
	} else if !channelRE.MatchString(ev.Channel) {
		return ev, lethe.Errorf(lethe.EINVALID, "channel must be 1 to 32 of a-z, 0-9 and '_', starting with a letter")
	}
	if r.IP != "" {
		ip, err := netip.ParseAddr(r.IP)
		if err != nil {
			return ev, lethe.Errorf(lethe.EINVALID, "ip is not an IP address")
		}
		ev.IPHMAC = s.proof("ip", ip.Unmap().String())
	}
	if r.UserAgent != "" {
		ev.AgentHMAC = s.proof("user-agent", r.UserAgent)
	}
	var p *lethe.Purpose
	if r.Purpose != "" {
		i, ok := s.st.index[r.Purpose]
		if !ok {
			// Name it only if it looks like a purpose key: an error must
			// never echo what might be a personal value.
			if lethe.ValidPurposeKey(r.Purpose) {
				return ev, lethe.Errorf(lethe.EINVALID, "purpose %s is not declared", r.Purpose)
			}
			return ev, lethe.Errorf(lethe.EINVALID, "purpose is not a declared purpose key")
		}
		p = &s.st.purposes[i]
	}
	needPurpose := func() error {
		if p == nil {
			return lethe.Errorf(lethe.EINVALID, "%s needs a purpose", r.Kind)
		}
		return nil
	}
	noPurpose := func() error {
		if p != nil {
			return lethe.Errorf(lethe.EINVALID, "%s concerns all processing of the subject: give no purpose", r.Kind)
		}
		return nil
	}
	reason := func(def string) error {
		if ev.Reason == "" {
			ev.Reason = def
		}
		if ev.Reason == "" || !slices.Contains(lethe.ConsentReasons, ev.Reason) {
			return lethe.Errorf(lethe.EINVALID, "%s needs a reason, one of %v", r.Kind, lethe.ConsentReasons)
		}
		return nil
	}
	if r.Kind != lethe.ConsentGrant && (r.PolicyVersion != "" || r.ExpiresAt != nil) {
		return ev, lethe.Errorf(lethe.EINVALID, "policy_version and expires_at belong to a grant")
	}
	if r.Kind != lethe.ConsentRestrict && r.Kind != lethe.ConsentObject && r.Reason != "" {
		return ev, lethe.Errorf(lethe.EINVALID, "a reason belongs to restrict and object")
	}
	switch r.Kind {
	case lethe.ConsentGrant:
		if err := needPurpose(); err != nil {
			return ev, err
		}
		if p.Basis != lethe.BasisConsent {
			return ev, lethe.Errorf(lethe.EINVALID, "purpose %s is based on %s, not consent: there is nothing to grant", p.Key, p.Basis)
		}
		v, ok := policyVersion(p, r.PolicyVersion)
		if !ok {
			return ev, lethe.Errorf(lethe.EINVALID, "policy_version of purpose %s is neither current (%s) nor accepted", p.Key, p.Policy.Version)
		}
		ev.PolicyVersion, ev.TextHash = v.Version, v.TextHash
		if r.ExpiresAt != nil {
			if !r.ExpiresAt.After(ev.At) {
				return ev, lethe.Errorf(lethe.EINVALID, "expires_at must be after the consent")
			}
			t := r.ExpiresAt.UTC()
			ev.ExpiresAt = &t
		}
	case lethe.ConsentWithdraw:
		if err := needPurpose(); err != nil {
			return ev, err
		}
		if p.Basis != lethe.BasisConsent {
			return ev, lethe.Errorf(lethe.EINVALID, "purpose %s is based on %s, not consent: object to it instead", p.Key, p.Basis)
		}
	case lethe.ConsentObject:
		if err := needPurpose(); err != nil {
			return ev, err
		}
		if !p.Basis.Objectable() && !p.DirectMarketing {
			return ev, lethe.Errorf(lethe.EINVALID, "purpose %s is based on %s: Art. 21 objection applies to public-task, legitimate-interest and direct-marketing purposes", p.Key, p.Basis)
		}
		def := "particular_situation"
		if p.DirectMarketing {
			def = "direct_marketing"
		}
		if err := reason(def); err != nil {
			return ev, err
		}
	case lethe.ConsentLiftObject:
		if err := needPurpose(); err != nil {
			return ev, err
		}
	case lethe.ConsentRestrict:
		if err := noPurpose(); err != nil {
			return ev, err
		}
		if err := reason(""); err != nil {
			return ev, err
		}
	case lethe.ConsentUnrestrict:
		if err := noPurpose(); err != nil {
			return ev, err
		}
	default:
		return ev, lethe.Errorf(lethe.EINVALID, "kind must be grant, withdraw, object, lift_objection, restrict or lift_restriction")
	}
	return ev, nil
}

// policyVersion returns the version a grant names: the current one if it
// names none, else the current or an accepted one.
func policyVersion(p *lethe.Purpose, v string) (lethe.PolicyVersion, bool) {
	if v == "" || v == p.Policy.Version {
		return p.Policy, true
	}
	for _, a := range p.Accepted {
		if a.Version == v {
			return a, true
		}
	}
	return lethe.PolicyVersion{}, false
}

// proof returns the hex HMAC-SHA256 of value under the proof key, with a
// label so that an IP address and a user agent never hash alike.
func (s *Service) proof(label, value string) string {
	m := hmac.New(sha256.New, s.proofKey)
	m.Write([]byte(label))
	m.Write([]byte{0})
	m.Write([]byte(value))
	return hex.EncodeToString(m.Sum(nil))
}

// History returns a subject's ledger events, oldest first, and records the
// read in the audit log.
func (s *Service) History(ctx context.Context, a lethe.Actor, tenant, id string) ([]lethe.ConsentEvent, error) {
	tenant, err := tenantOrDefault(tenant)
	if err != nil {
		return nil, err
	}
	ev := lethe.AuditEvent{Time: s.now().UTC(), Action: "consent.history", Outcome: "ok", KeyID: a.KeyID, Role: a.Role,
		RequestID: a.RequestID, Tenant: tenant, SubjectID: id}
	if err := s.audit.Record(ctx, ev); err != nil {
		return nil, lethe.Errorf(lethe.EUNAVAILABLE, "audit log unavailable: consent.history refused")
	}
	return s.store.ConsentHistory(ctx, tenant, id)
}

// SubjectErased implements lethe.ErasureObserver: it appends the erasure to
// the ledger, so that every instance's checks deny from now on.
func (s *Service) SubjectErased(ctx context.Context, tenant, id string) error {
	ev := lethe.ConsentEvent{Tenant: tenant, SubjectID: id, Kind: lethe.ConsentErased, At: s.now().UTC(), Channel: "erasure", KeyID: "lethe"}
	if _, err := s.store.AppendConsent(ctx, []lethe.ConsentEvent{ev}); err != nil {
		return fmt.Errorf("record erasure in the consent ledger: %w", err)
	}
	return s.catchUp(ctx)
}

func tenantOrDefault(t string) (string, error) {
	if t == "" {
		return lethe.DefaultTenant, nil
	}
	return t, lethe.ValidTenant(t)
}
