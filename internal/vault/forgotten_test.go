package vault_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/lethe-privacy/lethe"
)

func TestCheckForgotten(t *testing.T) {
	forEachEngine(t, func(t *testing.T, e engine) {
		f := newFixture(t, e)
		ctx := context.Background()
		subject := func(tenant, email string) (string, []string) {
			t.Helper()
			s, err := f.v.CreateSubject(ctx, actor, lethe.NewSubject{Tenant: tenant, Identifiers: map[string]string{"email": email}, Profile: []byte(`{"name":"Dee"}`)})
			if err != nil {
				t.Fatal(err)
			}
			card := "4111 1111 1111 1111"
			toks, err := f.v.Tokenize(ctx, actor, tenant, s.ID, []lethe.TokenRequest{{Field: "card", Value: &card}, {Field: "email", Value: &email, Deterministic: true}, {Field: "name"}})
			if err != nil {
				t.Fatal(err)
			}
			return s.ID, []string{toks[0].Token, toks[1].Token, toks[2].Token}
		}
		live, liveToks := subject("", "dee@example.com")
		erased, erasedToks := subject("", "eve@example.com")
		erasure, err := f.v.EraseSubject(ctx, actor, "", erased)
		if err != nil {
			t.Fatal(err)
		}
		// Erased, but stopped before its rows were deleted (or its rows
		// came back with a restored data store): the forget list decides.
		halfErased, halfToks := subject("", "fay@example.com")
		if err := f.keys.DestroySubjectKey(ctx, lethe.DefaultTenant, halfErased, time.Now().UTC()); err != nil {
			t.Fatal(err)
		}
		acme, acmeToks := subject("acme", "dee@example.com")
		gone, goneToks := subject("gone-co", "dee@example.com")
		tenantErasure, err := f.v.EraseTenant(ctx, actor, "gone-co")
		if err != nil {
			t.Fatal(err)
		}

		tests := []struct {
			name, tenant, ref string
			want              string // "live", "forgotten" or an error code
			subject           string // the forget-list entry's subject ID
			erasedAt          time.Time
		}{
			{"live subject", "", live, "live", "", time.Time{}},
			{"live random token", "", liveToks[0], "live", "", time.Time{}},
			{"live deterministic token", "", liveToks[1], "live", "", time.Time{}},
			{"live reference token", "default", liveToks[2], "live", "", time.Time{}},
			{"erased subject", "", erased, "forgotten", erased, erasure.ErasedAt},
			{"erased subject's random token", "", erasedToks[0], "forgotten", erased, erasure.ErasedAt},
			{"erased subject's deterministic token", "", erasedToks[1], "forgotten", erased, erasure.ErasedAt},
			{"erased subject's reference token", "", erasedToks[2], "forgotten", erased, erasure.ErasedAt},
			{"rows left after the key", "", halfErased, "forgotten", halfErased, time.Time{}},
			{"token left after the key", "", halfToks[0], "forgotten", halfErased, time.Time{}},
			{"subject of an erased tenant", "gone-co", gone, "forgotten", "", tenantErasure.ErasedAt},
			{"token of an erased tenant", "gone-co", goneToks[1], "forgotten", "", tenantErasure.ErasedAt},
			{"any subject ID in an erased tenant", "gone-co", live, "forgotten", "", tenantErasure.ErasedAt},
			{"subject in its tenant", "acme", acme, "live", "", time.Time{}},
			{"token in its tenant", "acme", acmeToks[0], "live", "", time.Time{}},
			{"another tenant's subject", "", acme, lethe.ENOTFOUND, "", time.Time{}},
			{"another tenant's token", "", acmeToks[0], lethe.ENOTFOUND, "", time.Time{}},
			{"a token asked in the wrong tenant", "acme", liveToks[1], lethe.ENOTFOUND, "", time.Time{}},
			{"unknown subject", "", "sub_" + strings.Repeat("b", 26), lethe.ENOTFOUND, "", time.Time{}},
			{"forged token", "", "tok_" + strings.Repeat("A", 60), lethe.ENOTFOUND, "", time.Time{}},
			{"tampered token", "", tamper(liveToks[0]), lethe.ENOTFOUND, "", time.Time{}},
			{"short subject ID", "", "sub_abc", lethe.EINVALID, "", time.Time{}},
			{"subject ID outside base32", "", "sub_" + strings.Repeat("1", 26), lethe.EINVALID, "", time.Time{}},
			{"short token", "", liveToks[0][:40], lethe.EINVALID, "", time.Time{}},
			{"token with a bad character", "", liveToks[0][:10] + "!" + liveToks[0][11:], lethe.EINVALID, "", time.Time{}},
			{"an email address", "", "dee@example.com", lethe.EINVALID, "", time.Time{}},
			{"empty", "", "", lethe.EINVALID, "", time.Time{}},
			{"bad tenant", "Bad Tenant", live, lethe.EINVALID, "", time.Time{}},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				before := len(f.audit.actions())
				fg, err := f.v.CheckForgotten(ctx, actor, tt.tenant, tt.ref)
				switch tt.want {
				case "live":
					if err != nil || fg != nil {
						t.Fatalf("got %+v, %v; want nil, nil", fg, err)
					}
				case "forgotten":
					if err != nil || fg == nil {
						t.Fatalf("got %+v, %v; want a forget-list entry", fg, err)
					}
					if fg.SubjectID != tt.subject || fg.ErasedAt.IsZero() || (!tt.erasedAt.IsZero() && !fg.ErasedAt.Equal(tt.erasedAt)) {
						t.Errorf("got %+v, want subject %q erased at %v", fg, tt.subject, tt.erasedAt)
					}
				default:
					if code(err) != tt.want || fg != nil {
						t.Fatalf("got %+v, %v; want %s", fg, err, tt.want)
					}
					if strings.Contains(lethe.ErrorMessage(err), "@") {
						t.Errorf("the message echoes the malformed ref")
					}
					if n := len(f.audit.actions()); n != before {
						t.Errorf("audit events: got %d new, want none for an unanswered check", n-before)
					}
					return
				}
				f.audit.mu.Lock()
				ev := f.audit.events[len(f.audit.events)-1]
				f.audit.mu.Unlock()
				by := "by:subject_id"
				if strings.HasPrefix(tt.ref, "tok") {
					by = "by:token"
				}
				wantEv := fmt.Sprint("forgotten.check ", actor.KeyID, " ", []string{by, "answer:" + tt.want})
				if got := fmt.Sprint(ev.Action, " ", ev.KeyID, " ", ev.Fields); got != wantEv || ev.SubjectID == "" {
					t.Errorf("audit event: got %q of subject %q, want %q", got, ev.SubjectID, wantEv)
				}
			})
		}

		// The audit log is required: without it, no answer.
		f.audit.mu.Lock()
		f.audit.fail = true
		f.audit.mu.Unlock()
		if _, err := f.v.CheckForgotten(ctx, actor, "", erasedToks[0]); code(err) != lethe.EUNAVAILABLE {
			t.Errorf("audit down: got %v, want unavailable", err)
		}
	})
}

// tamper changes one character of the sealed part of a token.
func tamper(token string) string {
	b := []byte(token)
	i := len(b) - 5
	if b[i] == 'A' {
		b[i] = 'B'
	} else {
		b[i] = 'A'
	}
	return string(b)
}
