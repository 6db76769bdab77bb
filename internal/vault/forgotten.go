package vault

import (
	"context"
	"strings"

	"github.com/lethe-privacy/lethe"
)

// CheckForgotten implements lethe.Vault. It answers a third party that holds
// a subject ID or a token, and must erase its own copy once the subject is
// erased, from IDs alone: a token is opened with the tenant's token key,
// which gives its subject's ID and nothing else, then the forget list (in
// the key store) is asked, then the data store whether the subject, or the
// token, exists. No subject key is used and no sealed value is opened, so an
// erased subject is answered as readily as a live one.
//
// A ref in an erased tenant is forgotten whatever subject it names: nothing
// of the tenant is left to tell subjects that existed from ones that did
// not.
//
// The answer is audited (action forgotten.check, fields by:subject_id or
// by:token and answer:forgotten or answer:live), so that the audit trail
// shows which recipient was told that a subject was forgotten, and when. A
// ref the tenant does not know is not audited: there is no subject to
// record it under.
func (s *Service) CheckForgotten(ctx context.Context, a lethe.Actor, tenant, ref string) (*lethe.Forgotten, error) {
	tenant, err := tenantOrDefault(tenant)
	if err != nil {
		return nil, err
	}
	id, by := ref, "by:subject_id"
	if strings.HasPrefix(ref, subjectPrefix) {
		if _, ok := subjectIDBytesOf(ref); !ok {
			return nil, lethe.Errorf(lethe.EINVALID, "malformed subject ID: expected sub_ and 26 characters")
		}
	} else {
		if _, _, ok := tokenBlob(ref); !ok {
			return nil, lethe.Errorf(lethe.EINVALID, "malformed reference: expected a subject ID (sub_…) or a token (tok_… or tokd_…)")
		}
		sub, _, ok := s.tenantTokenKeys(tenant).SubjectOf(tenant, ref)
		if !ok {
			// Shaped like a token but not one of this tenant's: another
			// tenant's, a forgery or a typo. Which, is not said.
			return nil, lethe.Errorf(lethe.ENOTFOUND, "no such token")
		}
		id, by = sub, "by:token"
	}
	answer := "answer:forgotten"
	f, err := s.keys.Forgotten(ctx, tenant, id)
	switch lethe.ErrorCode(err) {
	case "":
	case lethe.ENOTFOUND:
		f, answer = nil, "answer:live"
		if err := s.known(ctx, tenant, id, ref, by == "by:token"); err != nil {
			return nil, err
		}
	default:
		return nil, err
	}
	if err := s.record(ctx, a, "forgotten.check", tenant, id, []string{by, answer}); err != nil {
		return nil, err
	}
	return f, nil
}

// known returns nil if the subject id exists, or, for a token ref, if the
// token is stored for that subject; ENOTFOUND otherwise. A token made under
// the tenant's keys but not stored (its creation failed, or the data store
// was restored from an older backup) is unknown: it cannot be detokenized.
func (s *Service) known(ctx context.Context, tenant, id, ref string, token bool) error {
	if token {
		rows, err := s.store.Tokens(ctx, tenant, []string{ref})
		if err != nil {
			return err
		}
		for _, r := range rows {
			if r.Token == ref && r.SubjectID == id {
				return nil
			}
		}
		return lethe.Errorf(lethe.ENOTFOUND, "no such token")
	}
	_, err := s.store.Subject(ctx, tenant, id)
	if lethe.ErrorCode(err) == lethe.ENOTFOUND {
		return lethe.Errorf(lethe.ENOTFOUND, "subject %s not found", id)
	}
	return err
}
