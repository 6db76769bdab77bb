package vault

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"

	"github.com/lethe-privacy/lethe"
)

// Limits on one call, so that one request cannot hold the store for long.
const (
	MaxTokenize   = 1000
	MaxDetokenize = 10000
	maxTokenValue = 64 << 10
)

// tenantTokenKeys returns the token keys of a tenant.
func (s *Service) tenantTokenKeys(tenant string) *TokenKeys {
	s.mu.RLock()
	k, ok := s.tokenKeys[tenant]
	s.mu.RUnlock()
	if !ok {
		tk := NewTokenKeys(&s.tokenRoot, tenant)
		k = &tk
		s.mu.Lock()
		s.tokenKeys[tenant] = k
		s.mu.Unlock()
	}
	return k
}

func tokenAD(tenant, subjectID, field, token string) []byte {
	return AD("token", tenant, subjectID, field, token)
}

// Tokenize implements lethe.Vault. Value tokens seal the value under the
// subject's key; reference tokens store nothing but the field name.
func (s *Service) Tokenize(ctx context.Context, a lethe.Actor, tenant, subjectID string, reqs []lethe.TokenRequest) ([]lethe.Token, error) {
	tenant, err := tenantOrDefault(tenant)
	if err != nil {
		return nil, err
	}
	if len(reqs) == 0 || len(reqs) > MaxTokenize {
		return nil, lethe.Errorf(lethe.EINVALID, "ask for 1 to %d tokens at a time", MaxTokenize)
	}
	if _, ok := subjectIDBytesOf(subjectID); !ok {
		return nil, lethe.Errorf(lethe.EINVALID, "malformed subject ID")
	}
	dek, err := s.subjectKey(ctx, tenant, subjectID)
	if err != nil {
		return nil, err
	}
	keys := s.tenantTokenKeys(tenant)
	now := s.now().UTC()
	var current *record // read once if a reference token asks for it
	out := make([]lethe.Token, len(reqs))
	var rows []lethe.SealedToken
	var detTokens []string
	fields := map[string]bool{}
	for i, r := range reqs {
		if err := lethe.ValidFieldName(r.Field); err != nil {
			return nil, lethe.Errorf(lethe.EINVALID, "token %d: %s", i, lethe.ErrorMessage(err))
		}
		fields[r.Field] = true
		row := lethe.SealedToken{Tenant: tenant, SubjectID: subjectID, Field: r.Field, CreatedAt: now}
		switch {
		case r.Value == nil && r.Deterministic:
			return nil, lethe.Errorf(lethe.EINVALID, "token %d: a deterministic token needs a value", i)
		case r.Value == nil:
			if current == nil {
				if _, current, _, err = s.current(ctx, tenant, subjectID); err != nil {
					return nil, err
				}
			}
			if v, err := fieldValue(current, r.Field); err != nil {
				return nil, err
			} else if v == nil {
				return nil, lethe.Errorf(lethe.EINVALID, "token %d: the subject has no field %q to refer to", i, r.Field)
			}
			row.Token, _ = keys.RandomToken(tenant, subjectID)
			row.Sealed = []byte{} // a reference seals nothing: the value is read when used
			out[i] = lethe.Token{Token: row.Token, Field: r.Field, Kind: "reference"}
		default:
			if *r.Value == "" || len(*r.Value) > maxTokenValue {
				return nil, lethe.Errorf(lethe.EINVALID, "token %d: value must be 1 byte to 64 KiB", i)
			}
			value := *r.Value
			if r.Deterministic {
				// Normalise identifier kinds, so that Jane@Example.com and
				// jane@example.com give one token.
				if r.Field == lethe.KindEmail || r.Field == lethe.KindPhone || r.Field == lethe.KindLogin {
					if value, err = Normalize(r.Field, value); err != nil {
						return nil, fmt.Errorf("token %d: %w", i, err)
					}
				}
				row.Token, _ = keys.DeterministicToken(tenant, subjectID, r.Field, value)
				detTokens = append(detTokens, row.Token)
				out[i] = lethe.Token{Token: row.Token, Field: r.Field, Kind: "deterministic"}
			} else {
				row.Token, _ = keys.RandomToken(tenant, subjectID)
				out[i] = lethe.Token{Token: row.Token, Field: r.Field, Kind: "random"}
			}
			row.Sealed = Seal(&dek, []byte(value), tokenAD(tenant, subjectID, r.Field, row.Token))
		}
		rows = append(rows, row)
	}
	// A deterministic token asked for before exists already: keep it.
	if len(detTokens) > 0 {
		existing, err := s.store.Tokens(ctx, tenant, detTokens)
		if err != nil {
			return nil, err
		}
		have := map[string]bool{}
		for _, t := range existing {
			have[t.Token] = true
		}
		kept := rows[:0]
		for _, r := range rows {
			if !have[r.Token] {
				have[r.Token] = true // the same value twice in one call
				kept = append(kept, r)
			}
		}
		rows = kept
	}
	if err := s.store.CreateTokens(ctx, rows); err != nil {
		return nil, err
	}
	if err := s.record(ctx, a, "token.create", tenant, subjectID, sortedKeys(fields)); err != nil {
		return nil, err
	}
	return out, nil
}

// Detokenize implements lethe.Vault. Tokens are grouped by subject: each
// subject's key is fetched once, its purpose checked once, and one audit
// event per subject is written, all events of a call in one write.
func (s *Service) Detokenize(ctx context.Context, a lethe.Actor, tenant string, tokens []string) ([]lethe.Detokenized, error) {
	tenant, err := tenantOrDefault(tenant)
	if err != nil {
		return nil, err
	}
	if a.Purpose == "" {
		return nil, lethe.Errorf(lethe.EINVALID, "detokenizing needs a purpose")
	}
	if len(tokens) == 0 || len(tokens) > MaxDetokenize {
		return nil, lethe.Errorf(lethe.EINVALID, "send 1 to %d tokens at a time", MaxDetokenize)
	}
	keys := s.tenantTokenKeys(tenant)
	out := make([]lethe.Detokenized, len(tokens))
	subjects := map[string][]int{} // subject → indexes into tokens
	var lookup []string
	for i, t := range tokens {
		out[i] = lethe.Detokenized{Token: t, Status: lethe.TokenNotFound}
		sub, _, ok := keys.SubjectOf(tenant, t)
		if !ok {
			continue
		}
		if _, seen := subjects[sub]; !seen {
			lookup = append(lookup, sub)
		}
		subjects[sub] = append(subjects[sub], i)
	}
	rows, err := s.store.Tokens(ctx, tenant, uniq(tokens))
	if err != nil {
		return nil, err
	}
	byToken := make(map[string]*lethe.SealedToken, len(rows))
	for i := range rows {
		byToken[rows[i].Token] = &rows[i]
	}
	sort.Strings(lookup)
	var events []lethe.AuditEvent
	for _, sub := range lookup {
		idx := subjects[sub]
		dek, err := s.subjectKey(ctx, tenant, sub)
		switch lethe.ErrorCode(err) {
		case "":
		case lethe.EGONE:
			for _, i := range idx {
				out[i].Status = lethe.TokenGone
			}
			continue
		case lethe.ENOTFOUND:
			continue
		default:
			return nil, err
		}
		if s.purposes != nil {
			ok, err := s.purposes.Allowed(ctx, tenant, sub, a.Purpose)
			if err != nil {
				return nil, err
			}
			if !ok {
				for _, i := range idx {
					out[i].Status = lethe.TokenDenied
				}
				continue
			}
		}
		var current *record
		opener := NewOpener(&dek)
		fields := map[string]bool{}
		for _, i := range idx {
			row := byToken[tokens[i]]
			if row == nil || row.SubjectID != sub {
				continue // made under these keys but never stored, or deleted
			}
			var value json.RawMessage
			if len(row.Sealed) > 0 {
				plain, err := opener.Open(row.Sealed, tokenAD(tenant, sub, row.Field, row.Token))
				if err != nil {
					return nil, fmt.Errorf("open token value of subject %s: %w", sub, err)
				}
				if value, err = json.Marshal(string(plain)); err != nil {
					return nil, err
				}
			} else {
				if current == nil {
					if _, current, _, err = s.current(ctx, tenant, sub); err != nil {
						return nil, err
					}
				}
				if value, err = fieldValue(current, row.Field); err != nil {
					return nil, err
				}
				if value == nil {
					out[i].Field = row.Field
					continue // the field was removed since: not found
				}
			}
			out[i] = lethe.Detokenized{Token: row.Token, Status: lethe.TokenOK, Field: row.Field, Value: value}
			fields[row.Field] = true
		}
		if len(fields) > 0 {
			events = append(events, s.event(a, "token.detokenize", tenant, sub, sortedKeys(fields)))
		}
	}
	if len(events) > 0 {
		if err := s.audit.Record(ctx, events...); err != nil {
			return nil, lethe.Errorf(lethe.EUNAVAILABLE, "audit log unavailable: token.detokenize refused")
		}
	}
	return out, nil
}

// fieldValue returns the current value of an identifier kind or top-level
// profile field as JSON, or nil if the subject has no such field.
func fieldValue(rec *record, field string) (json.RawMessage, error) {
	if v, ok := rec.Identifiers[field]; ok {
		return json.Marshal(v)
	}
	var prof map[string]json.RawMessage
	if err := json.Unmarshal(rec.Profile, &prof); err != nil {
		return nil, fmt.Errorf("decode profile: %w", err)
	}
	return prof[field], nil
}

func uniq(ss []string) []string {
	seen := make(map[string]bool, len(ss))
	out := make([]string, 0, len(ss))
	for _, s := range ss {
		if !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	return out
}
