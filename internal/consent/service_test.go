package consent_test

import (
	"bytes"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lethe-privacy/lethe"
	"github.com/lethe-privacy/lethe/internal/audit/audittest"
	"github.com/lethe-privacy/lethe/internal/consent"
	"github.com/lethe-privacy/lethe/internal/postgres"
	"github.com/lethe-privacy/lethe/internal/sqlite"
	"github.com/lethe-privacy/lethe/internal/testsvc"
	"github.com/lethe-privacy/lethe/internal/vault"
)

var purposes = []lethe.Purpose{
	{Key: "billing", Description: "Invoices", Basis: lethe.BasisContract, Policy: lethe.PolicyVersion{Version: "1", TextHash: strings.Repeat("a", 64)}},
	{Key: "tax", Description: "Tax records", Basis: lethe.BasisLegalObligation, Policy: lethe.PolicyVersion{Version: "1", TextHash: strings.Repeat("e", 64)}},
	{Key: "newsletter", Description: "Newsletter", Basis: lethe.BasisConsent, DirectMarketing: true,
		Policy:   lethe.PolicyVersion{Version: "v3", TextHash: strings.Repeat("b", 64)},
		Accepted: []lethe.PolicyVersion{{Version: "v2", TextHash: strings.Repeat("c", 64)}}},
	{Key: "research", Description: "Research", Basis: lethe.BasisConsent, Policy: lethe.PolicyVersion{Version: "1", TextHash: strings.Repeat("f", 64)}},
	{Key: "analytics", Description: "Analytics", Basis: lethe.BasisLegitimateInterests, Policy: lethe.PolicyVersion{Version: "1", TextHash: strings.Repeat("d", 64)}},
}

var actor = lethe.Actor{KeyID: "key_test", Role: lethe.RoleService, RequestID: "req_test"}

// env is a vault and a consent service on one engine's stores.
type env struct {
	v      *vault.Service
	c      *consent.Service
	store  lethe.ConsentStore
	dir    vault.Directory
	now    time.Time
	mu     sync.Mutex
	audit  lethe.Auditor
	engine string
	open   func(t *testing.T) lethe.ConsentStore // another handle on the same ledger
}

type engine struct {
	name string
	open func(t *testing.T) (lethe.VaultStore, lethe.KeyStore, lethe.ConsentStore, func(t *testing.T) lethe.ConsentStore)
}

func engines() []engine {
	return []engine{{"sqlite", func(t *testing.T) (lethe.VaultStore, lethe.KeyStore, lethe.ConsentStore, func(t *testing.T) lethe.ConsentStore) {
		dir := t.TempDir()
		data, err := sqlite.OpenData(t.Context(), filepath.Join(dir, "data.db"))
		if err != nil {
			t.Fatal(err)
		}
		keys, err := sqlite.OpenKeys(t.Context(), filepath.Join(dir, "keys.db"))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { data.Close(); keys.Close() })
		return sqlite.NewVaultStore(data), sqlite.NewKeyStore(keys), sqlite.NewConsentStore(data), func(t *testing.T) lethe.ConsentStore {
			return sqlite.NewConsentStore(data)
		}
	}}, {"postgres", func(t *testing.T) (lethe.VaultStore, lethe.KeyStore, lethe.ConsentStore, func(t *testing.T) lethe.ConsentStore) {
		dataDSN := testsvc.Postgres(t)
		data, err := postgres.OpenData(t.Context(), dataDSN)
		if err != nil {
			t.Fatal(err)
		}
		keys, err := postgres.OpenKeys(t.Context(), testsvc.Postgres(t))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { data.Close(); keys.Close() })
		return postgres.NewVaultStore(data), postgres.NewKeyStore(keys), postgres.NewConsentStore(data), func(t *testing.T) lethe.ConsentStore {
			other, err := postgres.OpenData(t.Context(), dataDSN) // another instance's pool
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { other.Close() })
			return postgres.NewConsentStore(other)
		}
	}}}
}

func forEachEngine(t *testing.T, fn func(t *testing.T, e *env)) {
	for _, en := range engines() {
		t.Run(en.name, func(t *testing.T) {
			vs, ks, cs, open := en.open(t)
			kms, _, err := vault.OpenLocalKMS(filepath.Join(t.TempDir(), "master.key"), "")
			if err != nil {
				t.Fatal(err)
			}
			e := &env{store: cs, dir: vault.Directory{Store: vs, Keys: ks}, now: time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC), engine: en.name, open: open}
			e.audit = audittest.Open(t, filepath.Join(t.TempDir(), "audit"), ks.(lethe.CheckpointStore))
			e.c = e.service(t, cs)
			if e.v, err = vault.New(t.Context(), vault.Config{Store: vs, Keys: ks, KMS: kms, Audit: e.audit, Purposes: e.c, Erasures: e.c}); err != nil {
				t.Fatal(err)
			}
			fn(t, e)
		})
	}
}

// service opens a consent service on store, as another instance would.
func (e *env) service(t *testing.T, store lethe.ConsentStore) *consent.Service {
	t.Helper()
	c, err := consent.New(t.Context(), consent.Config{Store: store, Subjects: e.dir, Audit: e.audit, Purposes: purposes,
		ProofKey: bytes.Repeat([]byte{1}, 32), Now: e.clock, Follow: 5 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func (e *env) clock() time.Time {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.now
}

func (e *env) advance(d time.Duration) {
	e.mu.Lock()
	e.now = e.now.Add(d)
	e.mu.Unlock()
}

func (e *env) subject(t *testing.T) string {
	t.Helper()
	s, err := e.v.CreateSubject(t.Context(), actor, lethe.NewSubject{Identifiers: map[string]string{"email": fmt.Sprintf("c%d@example.com", time.Now().UnixNano())}})
	if err != nil {
		t.Fatal(err)
	}
	return s.ID
}

func (e *env) record(t *testing.T, recs ...lethe.ConsentRecord) []lethe.ConsentEvent {
	t.Helper()
	evs, err := e.c.Record(t.Context(), actor, "", recs)
	if err != nil {
		t.Fatal(err)
	}
	return evs
}

func (e *env) want(t *testing.T, id, purpose string, allowed bool, reason string) lethe.ConsentDecision {
	t.Helper()
	d, err := e.c.Check(t.Context(), lethe.DefaultTenant, id, purpose, 0)
	if err != nil {
		t.Fatal(err)
	}
	if d.Allowed != allowed || d.Reason != reason {
		t.Errorf("%s for %s: got allowed=%v %s, want allowed=%v %s", purpose, id, d.Allowed, d.Reason, allowed, reason)
	}
	return d
}

func TestLegalBasisRules(t *testing.T) {
	forEachEngine(t, func(t *testing.T, e *env) {
		id := e.subject(t)
		e.want(t, id, "billing", true, lethe.DecisionLegalBasis)
		e.want(t, id, "tax", true, lethe.DecisionLegalBasis)
		e.want(t, id, "analytics", true, lethe.DecisionLegalBasis)
		e.want(t, id, "newsletter", false, lethe.DecisionNoConsent)
		e.want(t, id, "marketing", false, lethe.DecisionUnknownPurpose)
		e.want(t, "sub_aaaaaaaaaaaaaaaaaaaaaaaaaa", "billing", false, lethe.DecisionUnknownSubject)

		exp := e.clock().Add(time.Hour)
		evs := e.record(t, lethe.ConsentRecord{SubjectID: id, Purpose: "newsletter", Kind: lethe.ConsentGrant, ExpiresAt: &exp, Channel: "web_form", IP: "203.0.113.7", UserAgent: "Mozilla/5.0"})
		d := e.want(t, id, "newsletter", true, lethe.DecisionConsent)
		if d.Event != evs[0].Revision || d.Renew {
			t.Errorf("decision %+v, want event %d and no renewal", d, evs[0].Revision)
		}
		e.want(t, id, "research", false, lethe.DecisionNoConsent) // consent is per purpose
		e.advance(2 * time.Hour)
		e.want(t, id, "newsletter", false, lethe.DecisionExpired)

		// An older, still accepted version counts, and asks for renewal.
		e.record(t, lethe.ConsentRecord{SubjectID: id, Purpose: "newsletter", Kind: lethe.ConsentGrant, PolicyVersion: "v2"})
		if d := e.want(t, id, "newsletter", true, lethe.DecisionConsent); !d.Renew {
			t.Error("consent under an accepted older version: want renew")
		}
		e.record(t, lethe.ConsentRecord{SubjectID: id, Purpose: "newsletter", Kind: lethe.ConsentWithdraw})
		e.want(t, id, "newsletter", false, lethe.DecisionWithdrawn)

		// Restriction stops everything, contract purposes too, until lifted.
		e.record(t, lethe.ConsentRecord{SubjectID: id, Purpose: "newsletter", Kind: lethe.ConsentGrant})
		e.record(t, lethe.ConsentRecord{SubjectID: id, Kind: lethe.ConsentRestrict, Reason: "accuracy_contested"})
		for _, p := range []string{"billing", "tax", "newsletter", "analytics"} {
			e.want(t, id, p, false, lethe.DecisionRestricted)
		}
		e.record(t, lethe.ConsentRecord{SubjectID: id, Kind: lethe.ConsentUnrestrict})
		e.want(t, id, "billing", true, lethe.DecisionLegalBasis)
		e.want(t, id, "newsletter", true, lethe.DecisionConsent)

		// Objection: to a legitimate-interest purpose, and to direct marketing
		// even with consent.
		e.record(t, lethe.ConsentRecord{SubjectID: id, Purpose: "analytics", Kind: lethe.ConsentObject})
		e.want(t, id, "analytics", false, lethe.DecisionObjected)
		e.record(t, lethe.ConsentRecord{SubjectID: id, Purpose: "newsletter", Kind: lethe.ConsentObject})
		e.want(t, id, "newsletter", false, lethe.DecisionObjected)
		e.want(t, id, "billing", true, lethe.DecisionLegalBasis)
		e.record(t, lethe.ConsentRecord{SubjectID: id, Purpose: "analytics", Kind: lethe.ConsentLiftObject})
		e.want(t, id, "analytics", true, lethe.DecisionLegalBasis)

		// Erasure denies everything, at once.
		if _, err := e.v.EraseSubject(t.Context(), actor, "", id); err != nil {
			t.Fatal(err)
		}
		for _, p := range []string{"billing", "tax", "analytics", "research"} {
			e.want(t, id, p, false, lethe.DecisionErased)
		}
		if _, err := e.c.Record(t.Context(), actor, "", []lethe.ConsentRecord{{SubjectID: id, Purpose: "research", Kind: lethe.ConsentGrant}}); lethe.ErrorCode(err) != lethe.EGONE {
			t.Errorf("grant for an erased subject: got %v, want gone", err)
		}

		// The history is the proof, in order, with hashes for IP and agent.
		hist, err := e.c.History(t.Context(), actor, "", id)
		if err != nil {
			t.Fatal(err)
		}
		var kinds []string
		for i, ev := range hist {
			kinds = append(kinds, ev.Kind)
			if i > 0 && ev.Revision <= hist[i-1].Revision {
				t.Errorf("history out of order at %d", i)
			}
		}
		if want := "grant grant withdraw grant restrict lift_restriction object object lift_objection erased"; strings.Join(kinds, " ") != want {
			t.Errorf("history kinds %q, want %q", strings.Join(kinds, " "), want)
		}
		first := hist[0]
		if first.PolicyVersion != "v3" || first.TextHash != strings.Repeat("b", 64) || first.Channel != "web_form" ||
			len(first.IPHMAC) != 64 || len(first.AgentHMAC) != 64 || first.IPHMAC == first.AgentHMAC || first.KeyID != "key_test" {
			t.Errorf("first event's proof: %+v", first)
		}
		if strings.Contains(fmt.Sprint(hist), "203.0.113.7") || strings.Contains(fmt.Sprint(hist), "Mozilla") {
			t.Error("the ledger holds a raw IP address or user agent")
		}
	})
}

func TestRecordRefusesBadInput(t *testing.T) {
	forEachEngine(t, func(t *testing.T, e *env) {
		id := e.subject(t)
		future := e.clock().Add(time.Hour)
		past := e.clock().Add(-time.Hour)
		for _, c := range []struct {
			name string
			rec  lethe.ConsentRecord
			want string
		}{
			{"unknown kind", lethe.ConsentRecord{SubjectID: id, Purpose: "newsletter", Kind: "like"}, "kind must be"},
			{"undeclared purpose", lethe.ConsentRecord{SubjectID: id, Purpose: "spam", Kind: lethe.ConsentGrant}, "not declared"},
			{"an email where the purpose goes", lethe.ConsentRecord{SubjectID: id, Purpose: "x@y", Kind: lethe.ConsentGrant}, "not a declared purpose key"},
			{"grant for a contract purpose", lethe.ConsentRecord{SubjectID: id, Purpose: "billing", Kind: lethe.ConsentGrant}, "not consent"},
			{"unknown policy version", lethe.ConsentRecord{SubjectID: id, Purpose: "newsletter", Kind: lethe.ConsentGrant, PolicyVersion: "v1"}, "neither current"},
			{"expiry before the grant", lethe.ConsentRecord{SubjectID: id, Purpose: "newsletter", Kind: lethe.ConsentGrant, ExpiresAt: &past}, "expires_at"},
			{"event in the future", lethe.ConsentRecord{SubjectID: id, Purpose: "newsletter", Kind: lethe.ConsentGrant, At: &future}, "future"},
			{"objection to a legal obligation", lethe.ConsentRecord{SubjectID: id, Purpose: "tax", Kind: lethe.ConsentObject}, "Art. 21"},
			{"restriction without reason", lethe.ConsentRecord{SubjectID: id, Kind: lethe.ConsentRestrict}, "needs a reason"},
			{"restriction of one purpose", lethe.ConsentRecord{SubjectID: id, Purpose: "billing", Kind: lethe.ConsentRestrict, Reason: "other"}, "give no purpose"},
			{"free-text reason", lethe.ConsentRecord{SubjectID: id, Kind: lethe.ConsentRestrict, Reason: "my email is x@y"}, "needs a reason"},
			{"bad IP", lethe.ConsentRecord{SubjectID: id, Purpose: "newsletter", Kind: lethe.ConsentGrant, IP: "not-an-ip"}, "not an IP"},
			{"bad channel", lethe.ConsentRecord{SubjectID: id, Purpose: "newsletter", Kind: lethe.ConsentGrant, Channel: "Web Form!"}, "channel"},
		} {
			before, _ := e.store.ConsentRevision(t.Context())
			// A good record first: the batch is all or nothing.
			good := lethe.ConsentRecord{SubjectID: id, Purpose: "newsletter", Kind: lethe.ConsentGrant}
			_, err := e.c.Record(t.Context(), actor, "", []lethe.ConsentRecord{good, c.rec})
			if lethe.ErrorCode(err) != lethe.EINVALID || !strings.Contains(lethe.ErrorMessage(err), "record 2") || !strings.Contains(lethe.ErrorMessage(err), c.want) {
				t.Errorf("%s: got %v, want EINVALID about record 2 mentioning %q", c.name, err, c.want)
			}
			if after, _ := e.store.ConsentRevision(t.Context()); after != before {
				t.Errorf("%s: the ledger moved from %d to %d", c.name, before, after)
			}
			if strings.Contains(fmt.Sprint(err), "x@y") {
				t.Errorf("%s: the error quotes the reason given", c.name)
			}
		}
		if _, err := e.c.Record(t.Context(), actor, "", []lethe.ConsentRecord{{SubjectID: "sub_bbbbbbbbbbbbbbbbbbbbbbbbbb", Purpose: "newsletter", Kind: lethe.ConsentGrant}}); lethe.ErrorCode(err) != lethe.ENOTFOUND {
			t.Errorf("grant for an unknown subject: got %v, want not found", err)
		}
	})
}

// TestInstancesFollowTheLedger: a withdrawal recorded through one instance
// reaches another's checks, and min_revision makes a caller's own write
// visible at once.
func TestInstancesFollowTheLedger(t *testing.T) {
	forEachEngine(t, func(t *testing.T, e *env) {
		other := e.service(t, e.open(t))
		id := e.subject(t)
		evs := e.record(t, lethe.ConsentRecord{SubjectID: id, Purpose: "research", Kind: lethe.ConsentGrant})
		d, err := other.Check(t.Context(), lethe.DefaultTenant, id, "research", evs[0].Revision)
		if err != nil || !d.Allowed || d.Revision < evs[0].Revision {
			t.Fatalf("other instance at min_revision %d: %+v, %v", evs[0].Revision, d, err)
		}
		evs = e.record(t, lethe.ConsentRecord{SubjectID: id, Purpose: "research", Kind: lethe.ConsentWithdraw})
		start := time.Now()
		for {
			d, err := other.Check(t.Context(), lethe.DefaultTenant, id, "research", 0)
			if err != nil {
				t.Fatal(err)
			}
			if !d.Allowed {
				if d.Reason != lethe.DecisionWithdrawn || d.Event != evs[0].Revision {
					t.Errorf("after withdrawal: %+v", d)
				}
				t.Logf("the other instance denied %v after the withdrawal", time.Since(start).Round(time.Millisecond))
				break
			}
			if time.Since(start) > 2*time.Second {
				t.Fatal("the other instance still allows 2 s after the withdrawal")
			}
			time.Sleep(time.Millisecond)
		}
		if d, _ := other.Check(t.Context(), lethe.DefaultTenant, id, "research", 1<<40); d.Allowed || d.Reason != lethe.DecisionUncertain {
			t.Errorf("a revision the ledger does not have: %+v, want uncertain", d)
		}
	})
}

func TestCheckBatch(t *testing.T) {
	forEachEngine(t, func(t *testing.T, e *env) {
		var ids []string
		for i := range 10 {
			id := e.subject(t)
			ids = append(ids, id)
			if i%2 == 0 {
				e.record(t, lethe.ConsentRecord{SubjectID: id, Purpose: "newsletter", Kind: lethe.ConsentGrant})
			}
		}
		ids = append(ids, "sub_cccccccccccccccccccccccccc")
		b, err := e.c.CheckBatch(t.Context(), lethe.DefaultTenant, "newsletter", ids, 0)
		if err != nil {
			t.Fatal(err)
		}
		want := []string{ids[0], ids[2], ids[4], ids[6], ids[8]}
		if !slices.Equal(b.Allowed, want) || len(b.Denied) != 6 || b.Denied[5].Reason != lethe.DecisionUnknownSubject || b.Denied[0].Reason != lethe.DecisionNoConsent {
			t.Errorf("batch: allowed %v, denied %+v", b.Allowed, b.Denied)
		}
		b, err = e.c.CheckBatch(t.Context(), lethe.DefaultTenant, "billing", ids, 0)
		if err != nil || len(b.Allowed) != 10 || len(b.Denied) != 1 {
			t.Errorf("batch for a contract purpose: %+v, %v", b, err)
		}
	})
}

// TestVaultHonoursTheCheck: detokenisation for a purpose passes the check.
func TestVaultHonoursTheCheck(t *testing.T) {
	forEachEngine(t, func(t *testing.T, e *env) {
		id := e.subject(t)
		v := "4111"
		toks, err := e.v.Tokenize(t.Context(), actor, "", id, []lethe.TokenRequest{{Field: "card", Value: &v}})
		if err != nil {
			t.Fatal(err)
		}
		detok := func(purpose string) string {
			a := actor
			a.Purpose = purpose
			out, err := e.v.Detokenize(t.Context(), a, "", []string{toks[0].Token})
			if err != nil {
				t.Fatal(err)
			}
			return out[0].Status
		}
		if s := detok("research"); s != "denied" {
			t.Errorf("detokenize for research without consent: %s, want denied", s)
		}
		if s := detok("billing"); s != "ok" {
			t.Errorf("detokenize for billing: %s, want ok", s)
		}
		read := func(purpose string) error {
			a := actor
			a.Purpose = purpose
			_, err := e.v.ReadSubject(t.Context(), a, "", id, lethe.ReadOptions{})
			return err
		}
		if err := read("research"); lethe.ErrorCode(err) != lethe.EFORBIDDEN {
			t.Errorf("read for research without consent: %v, want forbidden", err)
		}
		if err := read("billing"); err != nil {
			t.Errorf("read for billing: %v", err)
		}
		e.record(t, lethe.ConsentRecord{SubjectID: id, Kind: lethe.ConsentRestrict, Reason: "unlawful_processing"})
		if s := detok("billing"); s != "denied" {
			t.Errorf("detokenize for billing while restricted: %s, want denied", s)
		}
		if err := read("billing"); lethe.ErrorCode(err) != lethe.EFORBIDDEN {
			t.Errorf("read for billing while restricted: %v, want forbidden", err)
		}
		if err := read(""); err != nil {
			t.Errorf("a read for no purpose (storage, not processing): %v", err)
		}
	})
}

func TestImport(t *testing.T) {
	forEachEngine(t, func(t *testing.T, e *env) {
		a, b := e.subject(t), e.subject(t)
		past := e.clock().Add(-24 * time.Hour)
		recs := []lethe.ConsentRecord{
			{SubjectID: a, Purpose: "newsletter", Kind: lethe.ConsentGrant, At: &past},
			{SubjectID: "sub_ffffffffffffffffffffffffff", Purpose: "newsletter", Kind: lethe.ConsentGrant},
			{SubjectID: b, Purpose: "billing", Kind: lethe.ConsentGrant},
			{SubjectID: b, Purpose: "research", Kind: lethe.ConsentGrant},
			{SubjectID: a, Kind: lethe.ConsentRestrict, Reason: "free text"},
		}
		rep, err := e.c.Import(t.Context(), actor, "", recs)
		if err != nil {
			t.Fatal(err)
		}
		if rep.Imported != 2 || len(rep.Rejected) != 3 || rep.Rejected[0].Row != 2 || rep.Rejected[1].Row != 3 || rep.Rejected[2].Row != 5 {
			t.Fatalf("report %+v", rep)
		}
		e.want(t, a, "newsletter", true, lethe.DecisionConsent)
		e.want(t, b, "research", true, lethe.DecisionConsent)
		hist, _ := e.c.History(t.Context(), actor, "", a)
		if len(hist) != 1 || !hist[0].At.Equal(past) || hist[0].Channel != "import" {
			t.Errorf("imported history: %+v", hist)
		}
	})
}
