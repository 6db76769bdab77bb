package request

import (
	"context"
	"fmt"

	"github.com/lethe-privacy/lethe"
	"github.com/lethe-privacy/lethe/internal/mail"
)

// tell mails the person behind a request what became of it (Art. 12(3)
// and (4)): that it was done, extended, rejected or cancelled, and why.
// Only a verified request is answered, at the address that was verified,
// so that nobody can make Lethe write to someone else; an unverified one
// was only ever sent its code. The text is the same whether or not Lethe
// found anything on the person (no enumeration).
func tell(ctx context.Context, m mail.Sender, open func(sealed, ad []byte) ([]byte, error), org string, r *lethe.Request, subject, text string) error {
	if m == nil || r.VerifiedAt == nil {
		return nil
	}
	contact, err := open(r.Contact, ad("request-contact", r.Tenant, r.ID))
	if err != nil {
		return fmt.Errorf("request %s: open contact: %w", r.ID, err)
	}
	msg := mail.Message{To: string(contact), Subject: subject + " (" + org + ")", Text: text}
	if err := m.Send(ctx, msg); err != nil {
		return fmt.Errorf("request %s: tell the person: %w", r.ID, err)
	}
	return nil
}

// doneText says what a completed request did, for the person, with a
// note on what could not be done, if any.
func doneText(r *lethe.Request, org, purpose, note string) string {
	what := ""
	switch r.Type {
	case lethe.RequestErasure:
		what = "We erased your personal data in every system that holds it. Records the law obliges us to keep (such as invoices) were separated from you and are deleted when that period ends; nothing else of you is kept."
	case lethe.RequestRectification:
		what = "We corrected your personal data in every system that holds it."
	case lethe.RequestRestriction:
		what = "We restricted the processing of your personal data: we keep it, but use it for nothing else without your consent, until you or we lift the restriction, and we will tell you before we do."
	case lethe.RequestObjection:
		what = fmt.Sprintf("We stopped processing your personal data for this purpose: %s.", purpose)
	default:
		what = "Your data has been sent to you in a separate message."
	}
	if note != "" {
		what += "\n\n" + note
	}
	return fmt.Sprintf("Your request %s for %s is done.\n\n%s\n\nQuestions: write to %s and name the request.\n", r.ID, describe(r.Type), what, org)
}

// closedText says why a request was rejected or cancelled.
func closedText(r *lethe.Request) string {
	if r.State == lethe.RequestCancelled {
		return fmt.Sprintf("Your request %s for %s was cancelled.\n\nWhy: %s\n", r.ID, describe(r.Type), r.Reason)
	}
	return fmt.Sprintf("We did not carry out your request %s for %s.\n\nWhy: %s\n\n"+
		"You may complain to a data-protection supervisory authority, or seek a judicial remedy.\n", r.ID, describe(r.Type), r.Reason)
}

// extendedText tells the person their request takes longer, and why.
func extendedText(r *lethe.Request) string {
	return fmt.Sprintf("Your request %s for %s will take longer than a month. We will answer by %s.\n\nWhy: %s\n",
		r.ID, describe(r.Type), r.DueAt.Format("2 January 2006"), r.ExtendedReason)
}
