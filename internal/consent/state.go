package consent

import (
	"time"

	"github.com/lethe-privacy/lethe"
)

// State is what the ledger says now, folded from its events: per subject,
// whether it was erased or restricted, and per purpose the latest consent
// and objection. Checks read it from memory: the server's Service, and the
// Go client's in-process cache, which follows the ledger's stream. It is
// not safe for concurrent use.
type State struct {
	purposes []lethe.Purpose
	index    map[string]int // purpose key → position in purposes
	subjects *table
	tenants  map[string]uint64 // erased tenants → revision of the erasure
	more     [][]item          // items of subjects with more than inlineItems; more[0] unused
	free     []uint32          // released places in more
	rev      uint64            // the newest revision applied
}

// subjectState is one subject's standing. Items are few (one per purpose
// the person consented to or objected to), so they sit inline, and a check
// over millions of subjects follows as few pointers as memory latency
// allows: no strings to compare, no separate slice for the common case.
// With the ID it fills one 128-byte slot of the table (two cache lines,
// which the processor fetches as a pair).
type subjectState struct {
	exists     bool   // known to exist: an event was recorded for it, or a check found it
	n          uint8  // items used in inline
	more       uint32 // items beyond inlineItems: State.more[more]; 0 if none
	erased     uint64 // revision of its erasure; 0 if none
	restricted uint64 // revision of the restriction in force; 0 if none
	inline     [inlineItems]item
}

// inlineItems keeps a subjectState at 88 bytes.
const inlineItems = 2

// item is a subject's standing toward one purpose.
type item struct {
	purpose   int32
	withdrawn bool
	// version is which policy version the consent was given to, resolved
	// when the event is applied: versionCurrent, versionAccepted+i for
	// the purpose's accepted version i, or versionOutdated.
	version   int16
	consent   uint64 // revision of the latest grant or withdrawal; 0 if none
	expires   int64  // unix nanoseconds; 0 for no expiry
	objection uint64 // revision of the objection in force; 0 if none
}

const (
	versionOutdated int16 = -1
	versionCurrent  int16 = 0
	versionAccepted int16 = 1
)

// resolveVersion says which of p's policy versions a consent names.
func resolveVersion(p *lethe.Purpose, version, hash string) int16 {
	if version == p.Policy.Version && hash == p.Policy.TextHash {
		return versionCurrent
	}
	for i, a := range p.Accepted {
		if version == a.Version && hash == a.TextHash {
			return versionAccepted + int16(i)
		}
	}
	return versionOutdated
}

// NewState returns the empty state for the declared purposes.
func NewState(purposes []lethe.Purpose) *State {
	st := &State{purposes: purposes, index: map[string]int{}, subjects: newTable(), tenants: map[string]uint64{}, more: make([][]item, 1)}
	for i, p := range purposes {
		st.index[p.Key] = i
	}
	return st
}

// subjectKey names a subject in the state; a struct, so that a lookup
// builds no string.
type subjectKey struct{ tenant, id string }

// subject returns a copy of the subject's state; update stores it back.
func (st *State) subject(tenant, id string) (subjectState, bool) {
	return st.subjects.get(tenant, id)
}

func (st *State) update(tenant, id string, s subjectState) {
	st.subjects.put(tenant, id, s)
}

// item returns s's item for purpose, adding it if create is set, or nil.
func (st *State) item(s *subjectState, purpose int, create bool) *item {
	for i := range s.n {
		if s.inline[i].purpose == int32(purpose) {
			return &s.inline[i]
		}
	}
	if s.more != 0 {
		more := st.more[s.more]
		for i := range more {
			if more[i].purpose == int32(purpose) {
				return &more[i]
			}
		}
	}
	if !create {
		return nil
	}
	if int(s.n) < inlineItems {
		s.inline[s.n] = item{purpose: int32(purpose)}
		s.n++
		return &s.inline[s.n-1]
	}
	if s.more == 0 {
		if n := len(st.free); n > 0 {
			s.more, st.free = st.free[n-1], st.free[:n-1]
		} else {
			s.more = uint32(len(st.more))
			st.more = append(st.more, nil)
		}
	}
	st.more[s.more] = append(st.more[s.more], item{purpose: int32(purpose)})
	more := st.more[s.more]
	return &more[len(more)-1]
}

// dropItems forgets all of s's items.
func (st *State) dropItems(s *subjectState) {
	if s.more != 0 {
		st.more[s.more] = nil
		st.free = append(st.free, s.more)
	}
	s.n, s.more = 0, 0
}

// Apply folds one event in. Events must come in revision order; an event
// for a purpose no longer declared still counts for the subject (an
// erasure, a restriction) but its purpose part is dropped.
func (st *State) Apply(ev *lethe.ConsentEvent) {
	st.rev = ev.Revision
	if ev.Kind == lethe.ConsentErased && ev.SubjectID == "" {
		st.tenants[ev.Tenant] = ev.Revision
		return
	}
	s, _ := st.subject(ev.Tenant, ev.SubjectID)
	s.exists = true
	defer func() { st.update(ev.Tenant, ev.SubjectID, s) }()
	switch ev.Kind {
	case lethe.ConsentErased:
		s.erased = ev.Revision
		st.dropItems(&s)
		return
	case lethe.ConsentRestrict:
		s.restricted = ev.Revision
		return
	case lethe.ConsentUnrestrict:
		s.restricted = 0
		return
	}
	p, ok := st.index[ev.Purpose]
	if !ok {
		return
	}
	it := st.item(&s, p, true)
	switch ev.Kind {
	case lethe.ConsentGrant:
		it.consent, it.withdrawn, it.expires = ev.Revision, false, 0
		it.version = resolveVersion(&st.purposes[p], ev.PolicyVersion, ev.TextHash)
		if ev.ExpiresAt != nil {
			it.expires = ev.ExpiresAt.UnixNano()
		}
	case lethe.ConsentWithdraw:
		it.consent, it.withdrawn = ev.Revision, true
	case lethe.ConsentObject:
		it.objection = ev.Revision
	case lethe.ConsentLiftObject:
		it.objection = 0
	}
}

// Decide answers whether tenant's subject may be processed for purpose at
// now. known reports whether the subject is known to exist; when it is not
// and the state cannot tell, decide returns DecisionUnknownSubject and the
// caller may ask the vault and call again with known set.
func (st *State) Decide(tenant, id, purpose string, now time.Time, known bool) lethe.ConsentDecision {
	d := lethe.ConsentDecision{Revision: st.rev}
	deny := func(reason string, event uint64) lethe.ConsentDecision {
		d.Reason, d.Event = reason, event
		return d
	}
	p, ok := st.index[purpose]
	if !ok {
		return deny(lethe.DecisionUnknownPurpose, 0)
	}
	if rev, erased := st.tenants[tenant]; erased {
		return deny(lethe.DecisionErased, rev)
	}
	s, _ := st.subject(tenant, id)
	if s.erased != 0 {
		return deny(lethe.DecisionErased, s.erased)
	}
	if !s.exists && !known {
		return deny(lethe.DecisionUnknownSubject, 0)
	}
	if s.restricted != 0 {
		return deny(lethe.DecisionRestricted, s.restricted)
	}
	it := st.item(&s, p, false)
	if it != nil && it.objection != 0 {
		return deny(lethe.DecisionObjected, it.objection)
	}
	pur := &st.purposes[p]
	if pur.Basis != lethe.BasisConsent {
		d.Allowed, d.Reason = true, lethe.DecisionLegalBasis
		return d
	}
	switch {
	case it == nil || it.consent == 0:
		return deny(lethe.DecisionNoConsent, 0)
	case it.withdrawn:
		return deny(lethe.DecisionWithdrawn, it.consent)
	case it.expires != 0 && now.UnixNano() >= it.expires:
		return deny(lethe.DecisionExpired, it.consent)
	}
	switch {
	case it.version == versionCurrent:
		d.Allowed, d.Reason, d.Event = true, lethe.DecisionConsent, it.consent
		return d
	case it.version >= versionAccepted:
		d.Allowed, d.Reason, d.Event, d.Renew = true, lethe.DecisionConsent, it.consent, true
		return d
	}
	return deny(lethe.DecisionPolicyOutdated, it.consent)
}

// MarkExists records that the vault holds the subject.
func (st *State) MarkExists(tenant, id string) {
	s, _ := st.subject(tenant, id)
	s.exists = true
	st.update(tenant, id, s)
}

// Revision returns the newest revision applied.
func (st *State) Revision() uint64 { return st.rev }

// Advance moves the revision to rev without an event: a follower that
// sees only its tenant's events learns this way that the ledger went on.
func (st *State) Advance(rev uint64) {
	st.rev = max(st.rev, rev)
}
