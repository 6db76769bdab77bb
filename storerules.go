package lethe

import (
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"
)

// The checks below are preconditions of VaultStore that every store
// implementation applies, so that the engines answer bad calls alike.

// CheckNewSubject checks the arguments of VaultStore.CreateSubject: the
// identifiers and first version must belong to sub, the version must be 1,
// and no identifier kind may appear twice (EINVALID). Any other failure is
// a bug in the caller and carries no code (EINTERNAL).
func CheckNewSubject(sub *Subject, ids []SealedIdentifier, first *SealedVersion) error {
	switch {
	case first == nil:
		return errors.New("no first profile version")
	case first.Tenant != sub.Tenant || first.SubjectID != sub.ID:
		return fmt.Errorf("the first profile version names subject %s of tenant %s", first.SubjectID, first.Tenant)
	case first.Version != 1:
		return fmt.Errorf("the first profile version is %d, not 1", first.Version)
	}
	return CheckIdentifierChange(sub.Tenant, sub.ID, ids, nil)
}

// CheckIdentifierChange checks that the identifiers in set belong to
// subjectID of tenant, and returns EINVALID if a kind appears twice in set,
// or in both set and remove: which one should win is not clear.
func CheckIdentifierChange(tenant, subjectID string, set []SealedIdentifier, remove []string) error {
	kinds := make(map[string]bool, len(set))
	for _, id := range set {
		if id.Tenant != tenant || id.SubjectID != subjectID {
			return fmt.Errorf("identifier %s names subject %s of tenant %s", id.Kind, id.SubjectID, id.Tenant)
		}
		if kinds[id.Kind] {
			return Errorf(EINVALID, "more than one identifier of kind %s", id.Kind)
		}
		kinds[id.Kind] = true
	}
	for _, kind := range remove {
		if kinds[kind] {
			return Errorf(EINVALID, "identifier kind %s is both set and removed", kind)
		}
	}
	return nil
}

// StorableToken reports whether t is a token every store can keep:
// PostgreSQL text holds only valid UTF-8 without NUL.
func StorableToken(t string) bool {
	return utf8.ValidString(t) && !strings.ContainsRune(t, 0)
}

// consentKinds are the kinds of consent event.
var consentKinds = map[string]bool{
	ConsentGrant: true, ConsentWithdraw: true,
	ConsentRestrict: true, ConsentUnrestrict: true,
	ConsentObject: true, ConsentLiftObject: true,
	ConsentErased: true,
}

// CheckConsentEvents is the rule every ConsentStore applies before an
// append (EINVALID): 1 to ConsentEventsLimit events, each of a known kind,
// for a valid tenant and a subject (none only for the erasure of a whole
// tenant), every text valid UTF-8 without NUL (which PostgreSQL cannot
// store). Purposes and reasons are the consent service's to check.
// Messages name the event's position and the field, never a value: the
// hashes are keyed hashes of personal data.
func CheckConsentEvents(events []ConsentEvent) error {
	if len(events) == 0 || len(events) > ConsentEventsLimit {
		return Errorf(EINVALID, "an append holds 1 to %d consent events, not %d", ConsentEventsLimit, len(events))
	}
	for i := range events {
		e := &events[i]
		if err := ValidTenant(e.Tenant); err != nil {
			return Errorf(EINVALID, "consent event %d: %s", i, ErrorMessage(err))
		}
		if !consentKinds[e.Kind] {
			return Errorf(EINVALID, "consent event %d has an unknown kind", i)
		}
		if e.SubjectID == "" && e.Kind != ConsentErased {
			return Errorf(EINVALID, "consent event %d has no subject ID", i)
		}
		for _, f := range [...]struct{ name, value string }{
			{"subject_id", e.SubjectID}, {"purpose", e.Purpose}, {"policy_version", e.PolicyVersion},
			{"text_sha256", e.TextHash}, {"channel", e.Channel}, {"ip_hmac", e.IPHMAC},
			{"user_agent_hmac", e.AgentHMAC}, {"reason", e.Reason}, {"recorded_by", e.KeyID},
		} {
			if !StorableToken(f.value) {
				return Errorf(EINVALID, "consent event %d: %s is not valid UTF-8 without NUL", i, f.name)
			}
		}
	}
	return nil
}
