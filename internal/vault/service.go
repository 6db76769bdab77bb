package vault

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	mathrand "math/rand/v2"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/lethe-privacy/lethe"
)

// Names of the deployment secrets kept, wrapped by the KMS, in the key store.
const (
	secretIndexRoot = "blind-index-root"
	secretTokenRoot = "token-root"
)

// maxUpdateAttempts bounds the retries of a rectification that lost a race
// with another change of the same subject.
const maxUpdateAttempts = 16

// Config holds what a Service needs. Store, Keys, KMS and Audit are
// required.
type Config struct {
	Store     lethe.VaultStore
	Keys      lethe.KeyStore
	KMS       KMS
	Audit     lethe.Auditor
	Purposes  lethe.PurposeChecker  // nil: any named purpose is allowed
	Erasures  lethe.ErasureObserver // told of each erasure once the key is destroyed; may be nil
	Now       lethe.Now             // default time.Now
	CacheSize int                   // unwrapped subject keys kept in memory; default 100,000
}

// Service is the vault: it seals subjects' data under their own keys,
// finds them through blind indexes and erases them by destroying keys. It
// implements lethe.Vault and is safe for concurrent use.
type Service struct {
	store    lethe.VaultStore
	keys     lethe.KeyStore
	kms      KMS
	audit    lethe.Auditor
	purposes lethe.PurposeChecker
	erasures lethe.ErasureObserver
	now      lethe.Now

	subjectKeys *KeyCache // unwrapped subject data keys, by tenant and subject ID
	indexRoot   Key
	tokenRoot   Key

	mu         sync.RWMutex
	tenantKeys map[string]*tenantKeyring // unwrapped tenant key-encryption keys, by tenant
	indexKeys  map[string]Key            // derived blind-index keys, by tenant and kind
	tokenKeys  map[string]*TokenKeys

	// writing serialises the rectifications of one subject within this
	// instance (striped by subject ID), so that they queue instead of
	// racing for the next version number. Across instances the store's
	// version check still decides, and the loser retries.
	writing [64]sync.Mutex
}

var _ lethe.Vault = (*Service)(nil)

// New returns a Service, loading the deployment's blind-index and token
// root keys from the key store, or making them on a deployment's first
// start.
func New(ctx context.Context, c Config) (*Service, error) {
	s := &Service{
		store: c.Store, keys: c.Keys, kms: c.KMS, audit: c.Audit, purposes: c.Purposes, erasures: c.Erasures, now: c.Now,
		tenantKeys: map[string]*tenantKeyring{}, indexKeys: map[string]Key{}, tokenKeys: map[string]*TokenKeys{},
	}
	if s.now == nil {
		s.now = time.Now
	}
	if c.CacheSize <= 0 {
		c.CacheSize = 100_000
	}
	s.subjectKeys = NewKeyCache(c.CacheSize)
	var err error
	if s.indexRoot, err = s.secret(ctx, secretIndexRoot); err != nil {
		return nil, err
	}
	if s.tokenRoot, err = s.secret(ctx, secretTokenRoot); err != nil {
		return nil, err
	}
	return s, nil
}

// Initialized reports whether the key store already holds the vault's
// deployment secrets, that is whether a master key exists somewhere that
// wrapped them. A new instance must then be given that master key rather
// than make its own.
func Initialized(ctx context.Context, keys lethe.KeyStore) (bool, error) {
	_, err := keys.Secret(ctx, secretIndexRoot)
	switch lethe.ErrorCode(err) {
	case "":
		return true, nil
	case lethe.ENOTFOUND:
		return false, nil
	}
	return false, fmt.Errorf("read key store: %w", err)
}

// secret loads the named deployment secret, making it if it does not exist
// yet.
func (s *Service) secret(ctx context.Context, name string) (Key, error) {
	return DeploymentSecret(ctx, s.keys, s.kms, name, s.now)
}

// DeploymentSecret loads the 32-byte deployment secret stored in the key
// store under name, wrapped by the KMS, making and storing it if it does
// not exist yet. Of two instances starting at once, one secret wins and both
// use it. Other components keep their root secrets this way (the audit
// log's checkpoint signing key) so that one master key protects them all.
func DeploymentSecret(ctx context.Context, keys lethe.KeyStore, kms KMS, name string, now lethe.Now) (Key, error) {
	if now == nil {
		now = time.Now
	}
	ad := AD("secret", name)
	for attempt := 0; attempt < 2; attempt++ {
		w, err := keys.Secret(ctx, name)
		if err == nil {
			k, err := kms.Unwrap(ctx, w.Wrapped, w.KEKID, ad)
			if err != nil {
				return Key{}, fmt.Errorf("unwrap secret %s: %w", name, err)
			}
			return k, nil
		} else if lethe.ErrorCode(err) != lethe.ENOTFOUND {
			return Key{}, fmt.Errorf("load secret %s: %w", name, err)
		}
		k := NewKey()
		wrapped, kekID, err := kms.Wrap(ctx, k, ad)
		if err != nil {
			return Key{}, fmt.Errorf("wrap secret %s: %w", name, err)
		}
		err = keys.CreateSecret(ctx, name, &lethe.WrappedKey{Wrapped: wrapped, KEKID: kekID, CreatedAt: now().UTC()})
		if err == nil {
			return k, nil
		} else if lethe.ErrorCode(err) != lethe.ECONFLICT {
			return Key{}, fmt.Errorf("store secret %s: %w", name, err)
		}
	}
	return Key{}, fmt.Errorf("secret %s: created concurrently but not readable", name)
}

// currentVersionTTL is how long a Service trusts the current version of a
// tenant's key that it read, before reading it again: a rotation made by
// another process is followed within that time. Until then, a create
// wraps under the version this instance knows, and the key store refuses
// it if that version is no longer current (lethe.ErrStaleTenantKey); the
// create then reads the version again and retries, so the TTL bounds extra
// work, never correctness.
const currentVersionTTL = time.Second

// tenantKeyring is what a Service holds of one tenant's key: the unwrapped
// versions it has used, and the current version as last read.
type tenantKeyring struct {
	current int       // the highest version read from the key store
	checked time.Time // when current was read (monotonic clock)
	keys    map[int]Key
}

// tenantKey returns the tenant's current key-encryption key and its
// version, making version 1 when create is set and the tenant has none.
// The current version is read from the key store when this instance last
// read it more than currentVersionTTL ago, or always when refresh is set.
// ENOTFOUND when the tenant has no key and create is not set; EGONE when
// the tenant was erased.
//
// Reading a newer current version drops the tenant's older versions from
// memory: they are only needed for subject keys a rotation has not moved
// yet, and are read again (tenantKeyVersion) if one is.
func (s *Service) tenantKey(ctx context.Context, tenant string, create, refresh bool) (Key, int, error) {
	if !refresh {
		s.mu.RLock()
		if r := s.tenantKeys[tenant]; r != nil && time.Since(r.checked) < currentVersionTTL {
			if k, ok := r.keys[r.current]; ok {
				v := r.current
				s.mu.RUnlock()
				return k, v, nil
			}
		}
		s.mu.RUnlock()
	}
	ad := AD("tenant-key", tenant)
	for attempt := 0; attempt < 2; attempt++ {
		w, err := s.keys.TenantKey(ctx, tenant)
		if err == nil {
			k, err := s.openTenantKey(ctx, tenant, w)
			if err != nil {
				return Key{}, 0, err
			}
			s.mu.Lock()
			r := s.keyring(tenant)
			if w.Version >= r.current {
				r.current, r.checked = w.Version, time.Now()
				for v := range r.keys {
					if v < r.current {
						delete(r.keys, v)
					}
				}
			}
			s.mu.Unlock()
			return k, w.Version, nil
		} else if lethe.ErrorCode(err) != lethe.ENOTFOUND || !create {
			return Key{}, 0, err
		}
		k := NewKey()
		wrapped, kekID, err := s.kms.Wrap(ctx, k, ad)
		if err != nil {
			return Key{}, 0, fmt.Errorf("wrap tenant key %s: %w", tenant, err)
		}
		err = s.keys.CreateTenantKey(ctx, tenant, &lethe.WrappedKey{Wrapped: wrapped, KEKID: kekID, Version: 1, CreatedAt: s.now().UTC()})
		if err != nil && lethe.ErrorCode(err) != lethe.ECONFLICT {
			return Key{}, 0, err
		}
		// On success or a lost race, read back the stored key so that
		// every instance uses the same one.
	}
	return Key{}, 0, fmt.Errorf("tenant key %s: created concurrently but not readable", tenant)
}

// tenantKeyVersion returns the given version of the tenant's key, from
// memory or the key store. ENOTFOUND if the key store no longer holds that
// version (a rotation deleted it); EGONE if the tenant was erased.
func (s *Service) tenantKeyVersion(ctx context.Context, tenant string, version int) (Key, error) {
	s.mu.RLock()
	if r := s.tenantKeys[tenant]; r != nil {
		if k, ok := r.keys[version]; ok {
			s.mu.RUnlock()
			return k, nil
		}
	}
	s.mu.RUnlock()
	w, err := s.keys.TenantKeyVersion(ctx, tenant, version)
	if err != nil {
		return Key{}, err
	}
	return s.openTenantKey(ctx, tenant, w)
}

// openTenantKey returns the key w wraps, version w.Version of the tenant's
// key, unwrapping it with the KMS unless this instance holds it already,
// and keeps it.
func (s *Service) openTenantKey(ctx context.Context, tenant string, w *lethe.WrappedKey) (Key, error) {
	s.mu.RLock()
	if r := s.tenantKeys[tenant]; r != nil {
		if k, ok := r.keys[w.Version]; ok {
			s.mu.RUnlock()
			return k, nil
		}
	}
	s.mu.RUnlock()
	// Every version is bound to the same associated data: the version is
	// not secret, and a version's wrapped bytes stored as another's would
	// only fail to open the subject keys under it.
	k, err := s.kms.Unwrap(ctx, w.Wrapped, w.KEKID, AD("tenant-key", tenant))
	if err != nil {
		return Key{}, fmt.Errorf("unwrap tenant key %s version %d: %w", tenant, w.Version, err)
	}
	s.mu.Lock()
	s.keyring(tenant).keys[w.Version] = k
	s.mu.Unlock()
	return k, nil
}

// keyring returns the tenant's entry, adding it if missing; s.mu must be
// held for writing.
func (s *Service) keyring(tenant string) *tenantKeyring {
	r := s.tenantKeys[tenant]
	if r == nil {
		r = &tenantKeyring{keys: map[int]Key{}}
		s.tenantKeys[tenant] = r
	}
	return r
}

func cacheID(tenant, id string) string { return tenant + "/" + id }

// subjectKey returns the subject's data key. ENOTFOUND if the subject has
// none; EGONE if it (or its tenant) was erased.
//
// The subject key's KEKID names the version of the tenant key that wraps
// it. A rotation may move the key to a newer version and delete the old
// one between the two reads; then the old version is not found, and the
// subject key is read again, once.
func (s *Service) subjectKey(ctx context.Context, tenant, id string) (Key, error) {
	if k, ok := s.subjectKeys.Get(cacheID(tenant, id)); ok {
		return k, nil
	}
	for attempt := 0; ; attempt++ {
		w, err := s.keys.SubjectKey(ctx, tenant, id)
		switch lethe.ErrorCode(err) {
		case "":
		case lethe.ENOTFOUND:
			return Key{}, lethe.Errorf(lethe.ENOTFOUND, "subject %s not found", id)
		case lethe.EGONE:
			return Key{}, lethe.Errorf(lethe.EGONE, "subject %s was erased", id)
		default:
			return Key{}, err
		}
		kekTenant, version, ok := lethe.ParseTenantKEKID(w.KEKID)
		if !ok || kekTenant != tenant {
			return Key{}, fmt.Errorf("subject key %s: wrapped under %q, not a version of tenant %s's key", id, w.KEKID, tenant)
		}
		tk, err := s.tenantKeyVersion(ctx, tenant, version)
		switch {
		case lethe.ErrorCode(err) == lethe.ENOTFOUND && attempt == 0:
			continue // rewrapped and the old version deleted meanwhile
		case lethe.ErrorCode(err) == lethe.ENOTFOUND:
			// Not the subject's absence: its key names a version that is
			// not stored, a fault for operators (EINTERNAL), not a 404.
			return Key{}, fmt.Errorf("subject key %s: version %d of tenant %s's key is not stored", id, version, tenant)
		case err != nil:
			return Key{}, fmt.Errorf("subject %s: %w", id, err)
		}
		k, err := UnwrapKey(&tk, w.Wrapped, AD("subject-key", tenant, id))
		if err != nil {
			return Key{}, fmt.Errorf("unwrap subject key %s: %w", id, err)
		}
		s.subjectKeys.Put(cacheID(tenant, id), k)
		return k, nil
	}
}

// indexKey returns the blind-index key of an identifier kind in a tenant.
func (s *Service) indexKey(tenant, kind string) *Key {
	id := tenant + "/" + kind
	s.mu.RLock()
	k, ok := s.indexKeys[id]
	s.mu.RUnlock()
	if !ok {
		k = DeriveKey(&s.indexRoot, "blind-index", tenant, kind)
		s.mu.Lock()
		s.indexKeys[id] = k
		s.mu.Unlock()
	}
	return &k
}

// record is the sealed payload of a profile version: the whole record as it
// stood after the change, and why it changed.
type record struct {
	Profile     json.RawMessage   `json:"profile"`
	Identifiers map[string]string `json:"identifiers"`
	Reason      string            `json:"reason,omitempty"`
}

func versionAD(tenant, id string, version int) []byte {
	return AD("profile", tenant, id, strconv.Itoa(version))
}

// normalizeIdentifiers validates kinds and normalises values.
func normalizeIdentifiers(in map[string]string) (map[string]string, error) {
	out := make(map[string]string, len(in))
	for kind, v := range in {
		if err := lethe.ValidIdentifierKind(kind); err != nil {
			return nil, err
		}
		n, err := Normalize(kind, v)
		if err != nil {
			return nil, err
		}
		out[kind] = n
	}
	return out, nil
}

// profileObject checks that raw is a JSON object ({} for nil) and returns it
// compacted.
func profileObject(raw json.RawMessage) (json.RawMessage, map[string]json.RawMessage, error) {
	if len(bytes.TrimSpace(raw)) == 0 {
		return json.RawMessage("{}"), map[string]json.RawMessage{}, nil
	}
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(raw, &obj); err != nil || obj == nil {
		return nil, nil, lethe.Errorf(lethe.EINVALID, "profile must be a JSON object")
	}
	for name := range obj {
		if err := lethe.ValidFieldName(name); err != nil {
			return nil, nil, lethe.Errorf(lethe.EINVALID, "profile: %s", lethe.ErrorMessage(err))
		}
	}
	var b bytes.Buffer
	if err := json.Compact(&b, raw); err != nil {
		return nil, nil, lethe.Errorf(lethe.EINVALID, "profile must be a JSON object")
	}
	return b.Bytes(), obj, nil
}

func (s *Service) sealIdentifiers(dek *Key, tenant, id string, ids map[string]string) []lethe.SealedIdentifier {
	out := make([]lethe.SealedIdentifier, 0, len(ids))
	for kind, v := range ids {
		out = append(out, lethe.SealedIdentifier{
			Tenant: tenant, SubjectID: id, Kind: kind,
			Index:  BlindIndex(s.indexKey(tenant, kind), v),
			Sealed: Seal(dek, []byte(v), AD("identifier", tenant, id, kind)),
		})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Kind < out[j].Kind })
	return out
}

func sortedKeys[V any](m map[string]V) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}

// event returns the audit event of an action done for a on a subject.
func (s *Service) event(a lethe.Actor, action, tenant, subjectID string, fields []string) lethe.AuditEvent {
	return lethe.AuditEvent{
		Time: s.now().UTC(), Action: action, Outcome: "ok", KeyID: a.KeyID, Role: a.Role,
		RequestID: a.RequestID, Tenant: tenant, SubjectID: subjectID, Purpose: a.Purpose, Fields: fields,
	}
}

// record writes an audit event. The caller must not go on if it fails.
func (s *Service) record(ctx context.Context, a lethe.Actor, action, tenant, subjectID string, fields []string) error {
	if err := s.audit.Record(ctx, s.event(a, action, tenant, subjectID, fields)); err != nil {
		return lethe.Errorf(lethe.EUNAVAILABLE, "audit log unavailable: %s refused", action)
	}
	return nil
}

func tenantOrDefault(t string) (string, error) {
	if t == "" {
		return lethe.DefaultTenant, nil
	}
	return t, lethe.ValidTenant(t)
}

// CreateSubject implements lethe.Vault. The subject's key is stored before
// its data: a failure in between leaves an unused key, never data that no
// key opens.
func (s *Service) CreateSubject(ctx context.Context, a lethe.Actor, in lethe.NewSubject) (*lethe.SubjectView, error) {
	tenant, err := tenantOrDefault(in.Tenant)
	if err != nil {
		return nil, err
	}
	if len(in.Identifiers) == 0 {
		return nil, lethe.Errorf(lethe.EINVALID, "a subject needs at least one identifier")
	}
	ids, err := normalizeIdentifiers(in.Identifiers)
	if err != nil {
		return nil, err
	}
	profile, obj, err := profileObject(in.Profile)
	if err != nil {
		return nil, err
	}
	id, dek, now := NewSubjectID(), NewKey(), s.now().UTC()
	if err := s.createSubjectKey(ctx, tenant, id, dek, now); err != nil {
		return nil, err
	}
	payload, err := json.Marshal(record{Profile: profile, Identifiers: ids, Reason: "created"})
	if err != nil {
		return nil, err
	}
	first := &lethe.SealedVersion{Tenant: tenant, SubjectID: id, Version: 1, Sealed: Seal(&dek, payload, versionAD(tenant, id, 1)), Principal: a.KeyID, CreatedAt: now}
	if err := s.store.CreateSubject(ctx, &lethe.Subject{ID: id, Tenant: tenant, CreatedAt: now}, s.sealIdentifiers(&dek, tenant, id, ids), first); err != nil {
		return nil, err
	}
	s.subjectKeys.Put(cacheID(tenant, id), dek)
	if err := s.record(ctx, a, "subject.create", tenant, id, append(sortedKeys(ids), sortedKeys(obj)...)); err != nil {
		return nil, err
	}
	return &lethe.SubjectView{ID: id, Tenant: tenant, CreatedAt: now, Version: 1, UpdatedAt: now, Identifiers: ids, Profile: profile}, nil
}

// createSubjectKey wraps dek under the tenant's current key, making the
// tenant's first key if it has none, and stores it. If the key store
// refuses the version this instance took for current (a rotation added a
// newer one since it last looked), it reads the current version again and
// retries, once.
func (s *Service) createSubjectKey(ctx context.Context, tenant, id string, dek Key, now time.Time) error {
	for attempt := 0; ; attempt++ {
		tk, version, err := s.tenantKey(ctx, tenant, true, attempt > 0)
		if err != nil {
			return err
		}
		wrapped := WrapKey(&tk, dek, AD("subject-key", tenant, id))
		err = s.keys.CreateSubjectKey(ctx, tenant, id, &lethe.WrappedKey{Wrapped: wrapped, KEKID: lethe.TenantKEKID(tenant, version), CreatedAt: now})
		if errors.Is(err, lethe.ErrStaleTenantKey) && attempt == 0 {
			continue
		}
		return err
	}
}

// PseudonymKey returns the key erasure pseudonymises a subject's values
// under in other systems (connector.Subject.PseudonymKey): derived from the
// subject's own key, so that once erasure destroys that key the pseudonyms
// are linked to nobody. ENOTFOUND or EGONE as for a read.
func (s *Service) PseudonymKey(ctx context.Context, tenant, id string) (Key, error) {
	tenant, err := tenantOrDefault(tenant)
	if err != nil {
		return Key{}, err
	}
	k, err := s.subjectKey(ctx, tenant, id)
	if err != nil {
		return Key{}, err
	}
	return DeriveKey(&k, "pseudonym", tenant, id), nil
}

// FindSubject returns the ID of the tenant's subject holding the
// identifier, or "" if none does, without reading the subject: a
// data-subject request names the person by their address. It is not
// audited here; the request that uses it is. EINVALID for a value the kind
// cannot hold.
func (s *Service) FindSubject(ctx context.Context, tenant, kind, value string) (string, error) {
	tenant, err := tenantOrDefault(tenant)
	if err != nil {
		return "", err
	}
	n, err := Normalize(kind, value)
	if err != nil {
		return "", err
	}
	id, err := s.store.SubjectByIdentifier(ctx, tenant, kind, BlindIndex(s.indexKey(tenant, kind), n))
	if lethe.ErrorCode(err) == lethe.ENOTFOUND {
		return "", nil
	}
	return id, err
}

// LookupSubject implements lethe.Vault. Finding and reading are one
// audited action: one event names the identifier kind used and the fields
// returned.
func (s *Service) LookupSubject(ctx context.Context, a lethe.Actor, tenant, kind, value string, o lethe.ReadOptions) (*lethe.SubjectView, error) {
	tenant, err := tenantOrDefault(tenant)
	if err != nil {
		return nil, err
	}
	if err := lethe.ValidIdentifierKind(kind); err != nil {
		return nil, err
	}
	n, err := Normalize(kind, value)
	if err != nil {
		return nil, err
	}
	id, err := s.store.SubjectByIdentifier(ctx, tenant, kind, BlindIndex(s.indexKey(tenant, kind), n))
	if lethe.ErrorCode(err) == lethe.ENOTFOUND {
		return nil, lethe.Errorf(lethe.ENOTFOUND, "no subject with that %s", kind)
	} else if err != nil {
		return nil, err
	}
	return s.read(ctx, a, "subject.lookup", tenant, id, o, "by:"+kind)
}

// read opens a subject's current record, projects it for o and records the
// audit event (action, or action_masked) before returning it. extra names
// come first in the event's fields.
func (s *Service) read(ctx context.Context, a lethe.Actor, action, tenant, id string, o lethe.ReadOptions, extra ...string) (*lethe.SubjectView, error) {
	v, rec, _, err := s.current(ctx, tenant, id)
	if err != nil {
		return nil, err
	}
	// A read for a named purpose passes the same check as detokenising
	// for it; a read that names none is not for processing.
	if a.Purpose != "" && s.purposes != nil {
		ok, err := s.purposes.Allowed(ctx, tenant, id, a.Purpose)
		if err != nil {
			return nil, err
		}
		if !ok {
			return nil, lethe.Errorf(lethe.EFORBIDDEN, "subject %s may not be processed for purpose %s", id, a.Purpose)
		}
	}
	view, fields, err := project(v, rec, o)
	if err != nil {
		return nil, err
	}
	if o.Masked {
		action += "_masked"
	}
	if err := s.record(ctx, a, action, tenant, id, append(extra, fields...)); err != nil {
		return nil, err
	}
	return view, nil
}

// current opens the subject's latest version.
func (s *Service) current(ctx context.Context, tenant, id string) (*lethe.SealedVersion, *record, *Key, error) {
	dek, err := s.subjectKey(ctx, tenant, id)
	if err != nil {
		return nil, nil, nil, err
	}
	v, err := s.store.LatestVersion(ctx, tenant, id)
	if err != nil {
		return nil, nil, nil, err
	}
	rec, err := openRecord(&dek, v)
	if err != nil {
		return nil, nil, nil, err
	}
	return v, rec, &dek, nil
}

func openRecord(dek *Key, v *lethe.SealedVersion) (*record, error) {
	plain, err := Open(dek, v.Sealed, versionAD(v.Tenant, v.SubjectID, v.Version))
	if err != nil {
		return nil, fmt.Errorf("open subject %s version %d: %w", v.SubjectID, v.Version, err)
	}
	var rec record
	if err := json.Unmarshal(plain, &rec); err != nil {
		return nil, fmt.Errorf("decode subject %s version %d: %w", v.SubjectID, v.Version, err)
	}
	return &rec, nil
}

// ReadSubject implements lethe.Vault.
func (s *Service) ReadSubject(ctx context.Context, a lethe.Actor, tenant, id string, o lethe.ReadOptions) (*lethe.SubjectView, error) {
	tenant, err := tenantOrDefault(tenant)
	if err != nil {
		return nil, err
	}
	return s.read(ctx, a, "subject.read", tenant, id, o)
}

// project selects and masks what a read returns, and lists the field names
// it returns for the audit event.
func project(v *lethe.SealedVersion, rec *record, o lethe.ReadOptions) (*lethe.SubjectView, []string, error) {
	want := func(string) bool { return true }
	if o.Fields != nil {
		set := map[string]bool{}
		for _, f := range o.Fields {
			set[strings.TrimSpace(f)] = true
		}
		want = func(f string) bool { return set[f] }
	}
	view := &lethe.SubjectView{ID: v.SubjectID, Tenant: v.Tenant, CreatedAt: v.SubjectCreatedAt, Version: v.Version, UpdatedAt: v.CreatedAt, Identifiers: map[string]string{}}
	var fields []string
	for kind, val := range rec.Identifiers {
		if !want(kind) {
			continue
		}
		if o.Masked {
			val = Mask(kind, val)
		}
		view.Identifiers[kind] = val
		fields = append(fields, kind)
	}
	var prof map[string]json.RawMessage
	if err := json.Unmarshal(rec.Profile, &prof); err != nil {
		return nil, nil, fmt.Errorf("decode profile of %s: %w", v.SubjectID, err)
	}
	out := map[string]json.RawMessage{}
	for name, val := range prof {
		if !want(name) {
			continue
		}
		if o.Masked {
			val = maskJSON(name, val)
		}
		out[name] = val
		fields = append(fields, name)
	}
	b, err := json.Marshal(out)
	if err != nil {
		return nil, nil, err
	}
	view.Profile = b
	sort.Strings(fields)
	return view, fields, nil
}

// maskJSON masks a profile value: strings by Mask, anything else entirely.
func maskJSON(name string, val json.RawMessage) json.RawMessage {
	var str string
	if json.Unmarshal(val, &str) == nil {
		b, _ := json.Marshal(Mask(name, str))
		return b
	}
	return json.RawMessage(`"***"`)
}

// UpdateSubject implements lethe.Vault. The change is applied to the latest
// version and stored as the next one; if another change won the race for
// that version number, it is applied again on top of the winner, so no
// update is lost.
func (s *Service) UpdateSubject(ctx context.Context, a lethe.Actor, tenant, id string, c lethe.ProfileChange) (*lethe.SubjectView, error) {
	tenant, err := tenantOrDefault(tenant)
	if err != nil {
		return nil, err
	}
	set, err := normalizeIdentifiers(c.SetIdentifiers)
	if err != nil {
		return nil, err
	}
	for _, kind := range c.RemoveIdentifiers {
		if err := lethe.ValidIdentifierKind(kind); err != nil {
			return nil, err
		}
		if _, both := set[kind]; both {
			return nil, lethe.Errorf(lethe.EINVALID, "identifier %s is both set and removed", kind)
		}
	}
	var patch any
	if len(bytes.TrimSpace(c.Patch)) > 0 {
		if err := json.Unmarshal(c.Patch, &patch); err != nil {
			return nil, lethe.Errorf(lethe.EINVALID, "profile patch must be JSON")
		}
		obj, ok := patch.(map[string]any)
		if !ok {
			return nil, lethe.Errorf(lethe.EINVALID, "profile patch must be a JSON object (RFC 7396 merge patch)")
		}
		for name := range obj {
			if err := lethe.ValidFieldName(name); err != nil {
				return nil, lethe.Errorf(lethe.EINVALID, "profile patch: %s", lethe.ErrorMessage(err))
			}
		}
	}
	if len(c.Reason) > 1000 {
		return nil, lethe.Errorf(lethe.EINVALID, "reason must be at most 1000 bytes")
	}
	lock := &s.writing[fnv32(tenant+"/"+id)%uint32(len(s.writing))]
	lock.Lock()
	defer lock.Unlock()
	for attempt := 0; attempt < maxUpdateAttempts; attempt++ {
		if attempt > 0 {
			// Another instance won the race: back off a little, with
			// jitter, so that the instances do not collide again.
			if err := sleep(ctx, time.Duration(attempt)*time.Millisecond+time.Duration(mathrand.Int64N(int64(time.Millisecond)))); err != nil {
				return nil, err
			}
		}
		v, rec, dek, err := s.current(ctx, tenant, id)
		if err != nil {
			return nil, err
		}
		next := record{Identifiers: map[string]string{}, Reason: c.Reason}
		for k, val := range rec.Identifiers {
			next.Identifiers[k] = val
		}
		changed := map[string]string{}
		for k, val := range set {
			if next.Identifiers[k] != val {
				changed[k] = val
			}
			next.Identifiers[k] = val
		}
		var removed []string
		for _, k := range c.RemoveIdentifiers {
			if _, ok := next.Identifiers[k]; ok {
				removed = append(removed, k)
				delete(next.Identifiers, k)
			}
		}
		if len(next.Identifiers) == 0 {
			return nil, lethe.Errorf(lethe.EINVALID, "a subject must keep at least one identifier")
		}
		next.Profile = rec.Profile
		var fields []string
		if patch != nil {
			var cur any
			if err := json.Unmarshal(rec.Profile, &cur); err != nil {
				return nil, fmt.Errorf("decode profile of %s: %w", id, err)
			}
			merged := mergePatch(cur, patch)
			if next.Profile, err = json.Marshal(merged); err != nil {
				return nil, err
			}
			fields = sortedKeys(patch.(map[string]any))
		}
		payload, err := json.Marshal(next)
		if err != nil {
			return nil, err
		}
		nv := &lethe.SealedVersion{Tenant: tenant, SubjectID: id, Version: v.Version + 1, Principal: a.KeyID, CreatedAt: s.now().UTC()}
		nv.Sealed = Seal(dek, payload, versionAD(tenant, id, nv.Version))
		err = s.store.AppendVersion(ctx, nv, s.sealIdentifiers(dek, tenant, id, changed), removed)
		if errors.Is(err, lethe.ErrStaleVersion) {
			continue
		} else if err != nil {
			return nil, err
		}
		fields = append(fields, append(sortedKeys(changed), removed...)...)
		if err := s.record(ctx, a, "subject.update", tenant, id, fields); err != nil {
			return nil, err
		}
		nv.SubjectCreatedAt = v.SubjectCreatedAt
		view, _, err := project(nv, &next, lethe.ReadOptions{})
		return view, err
	}
	return nil, lethe.Errorf(lethe.ECONFLICT, "subject %s is changing too fast; retry", id)
}

func fnv32(s string) uint32 {
	h := fnv.New32a()
	h.Write([]byte(s))
	return h.Sum32()
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// mergePatch applies an RFC 7396 JSON merge patch to target.
func mergePatch(target, patch any) any {
	p, ok := patch.(map[string]any)
	if !ok {
		return patch
	}
	t, ok := target.(map[string]any)
	if !ok {
		t = map[string]any{}
	}
	for k, v := range p {
		if v == nil {
			delete(t, k)
		} else {
			t[k] = mergePatch(t[k], v)
		}
	}
	return t
}

// History implements lethe.Vault.
func (s *Service) History(ctx context.Context, a lethe.Actor, tenant, id string) ([]lethe.HistoryEntry, error) {
	tenant, err := tenantOrDefault(tenant)
	if err != nil {
		return nil, err
	}
	dek, err := s.subjectKey(ctx, tenant, id)
	if err != nil {
		return nil, err
	}
	versions, err := s.store.Versions(ctx, tenant, id)
	if err != nil {
		return nil, err
	}
	out := make([]lethe.HistoryEntry, 0, len(versions))
	for i := range versions {
		rec, err := openRecord(&dek, &versions[i])
		if err != nil {
			return nil, err
		}
		full, err := json.Marshal(struct {
			Identifiers map[string]string `json:"identifiers"`
			Profile     json.RawMessage   `json:"profile"`
		}{rec.Identifiers, rec.Profile})
		if err != nil {
			return nil, err
		}
		out = append(out, lethe.HistoryEntry{Version: versions[i].Version, Principal: versions[i].Principal, CreatedAt: versions[i].CreatedAt, Reason: rec.Reason, Profile: full})
	}
	if err := s.record(ctx, a, "subject.history", tenant, id, nil); err != nil {
		return nil, err
	}
	return out, nil
}

// EraseSubject implements lethe.Vault. The key is destroyed first: from
// that moment every copy of the subject's sealed data, in this database, its
// WAL or any backup, is unreadable. The rows are deleted after.
func (s *Service) EraseSubject(ctx context.Context, a lethe.Actor, tenant, id string) (*lethe.Forgotten, error) {
	tenant, err := tenantOrDefault(tenant)
	if err != nil {
		return nil, err
	}
	if _, err := s.keys.SubjectKey(ctx, tenant, id); lethe.ErrorCode(err) == lethe.ENOTFOUND {
		return nil, lethe.Errorf(lethe.ENOTFOUND, "subject %s not found", id)
	} else if err != nil && lethe.ErrorCode(err) != lethe.EGONE {
		return nil, err
	}
	if err := s.keys.DestroySubjectKey(ctx, tenant, id, s.now().UTC()); err != nil {
		return nil, err
	}
	s.subjectKeys.Delete(cacheID(tenant, id))
	observed := s.observeErasure(ctx, tenant, id)
	if err := s.store.DeleteSubject(ctx, tenant, id); err != nil {
		return nil, err
	}
	f, err := s.keys.Forgotten(ctx, tenant, id)
	if err != nil {
		return nil, err
	}
	if err := s.record(ctx, a, "subject.erase", tenant, id, nil); err != nil {
		return nil, err
	}
	return f, observed
}

// observeErasure tells the erasure observer, if any, that a subject (or,
// with id "", a tenant) was erased. The erasure stands whatever it
// answers; a failure is returned once the rest is done, and erasing again
// tells it again.
func (s *Service) observeErasure(ctx context.Context, tenant, id string) error {
	if s.erasures == nil {
		return nil
	}
	if err := s.erasures.SubjectErased(ctx, tenant, id); err != nil {
		return lethe.Errorf(lethe.EUNAVAILABLE, "erased, but the processing checks could not be told; erase again to retry")
	}
	return nil
}

// Directory tells whether subjects exist, from the stores alone: the key
// store's forget list and the data store's subject rows. It reads no
// personal data (so it records no audit event). The consent checks use it
// for subjects their ledger does not know.
type Directory struct {
	Store lethe.VaultStore
	Keys  lethe.KeyStore
}

// SubjectStatus reports whether a subject exists and whether it (or its
// tenant) was erased.
func (d Directory) SubjectStatus(ctx context.Context, tenant, id string) (exists, erased bool, err error) {
	if tenant, err = tenantOrDefault(tenant); err != nil {
		return false, false, err
	}
	if _, err := d.Keys.Forgotten(ctx, tenant, id); err == nil {
		return false, true, nil
	} else if lethe.ErrorCode(err) != lethe.ENOTFOUND {
		return false, false, err
	}
	if _, err := d.Store.Subject(ctx, tenant, id); err == nil {
		return true, false, nil
	} else if code := lethe.ErrorCode(err); code == lethe.ENOTFOUND || code == lethe.EGONE {
		return false, code == lethe.EGONE, nil
	} else {
		return false, false, err
	}
}

// EraseTenant implements lethe.Vault. As with a subject, the key goes
// first: once the tenant key and its subject keys are destroyed, every copy
// of every sealed value of the tenant is unreadable. Then the caches forget
// the tenant's keys and its rows are deleted.
func (s *Service) EraseTenant(ctx context.Context, a lethe.Actor, tenant string) (*lethe.Forgotten, error) {
	if err := lethe.ValidTenant(tenant); err != nil {
		return nil, err
	}
	if _, err := s.keys.TenantKey(ctx, tenant); lethe.ErrorCode(err) == lethe.ENOTFOUND {
		return nil, lethe.Errorf(lethe.ENOTFOUND, "tenant %s has no data", tenant)
	} else if err != nil && lethe.ErrorCode(err) != lethe.EGONE {
		return nil, err
	}
	if err := s.keys.DestroyTenantKey(ctx, tenant, s.now().UTC()); err != nil {
		return nil, err
	}
	s.mu.Lock()
	delete(s.tenantKeys, tenant)
	s.mu.Unlock()
	// Erasing a tenant is rare: dropping every cached subject key is
	// simpler than indexing the cache by tenant, and costs a few misses.
	s.subjectKeys.Purge()
	observed := s.observeErasure(ctx, tenant, "")
	if _, err := s.store.DeleteTenant(ctx, tenant); err != nil {
		return nil, err
	}
	f, err := s.keys.Forgotten(ctx, tenant, "")
	if err != nil {
		return nil, err
	}
	if err := s.record(ctx, a, "tenant.erase", tenant, "", nil); err != nil {
		return nil, err
	}
	return f, observed
}

// ReplayForgetList deletes, again, the rows of every subject and tenant on
// the forget list. The forget list lives in the key store, so after a data
// store is restored from a backup older than some erasures, their rows are
// back (unreadable: their keys are gone), holding identifiers that new
// subjects may want. Replaying removes them. It is idempotent; for a
// deployment that restored nothing it deletes nothing. progress, if not nil,
// is called after each page with the number of entries replayed so far.
func (s *Service) ReplayForgetList(ctx context.Context, progress func(done int)) (int, error) {
	const page = 1000
	var after lethe.Forgotten
	done := 0
	for {
		entries, err := s.keys.ForgetList(ctx, after, page)
		if err != nil {
			return done, fmt.Errorf("read forget list: %w", err)
		}
		for _, f := range entries {
			if f.SubjectID == "" {
				_, err = s.store.DeleteTenant(ctx, f.Tenant)
			} else {
				err = s.store.DeleteSubject(ctx, f.Tenant, f.SubjectID)
			}
			if err != nil {
				return done, fmt.Errorf("replay erasure: %w", err)
			}
			done++
		}
		if progress != nil && len(entries) > 0 {
			progress(done)
		}
		if len(entries) < page {
			return done, nil
		}
		after = entries[len(entries)-1]
	}
}
