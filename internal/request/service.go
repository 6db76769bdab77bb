// Package request carries out data-subject requests: access, portability,
// rectification, erasure, restriction and objection (GDPR Art. 15–21).
//
// A request is received (from staff through the API, or from the person
// through the self-service API), verified (a one-time code sent to the
// person's address: nothing is revealed or destroyed before), approved
// where policy asks for a person, then run, one task per system of the data
// map, and completed or, while a system is unreachable, partially
// completed. It is due one month after receipt (Art. 12(3)); staff may
// extend it by at most two months, with a reason the person is told.
//
// No enumeration: what the self-service API answers, and what it sends to
// whom, is the same whether or not Lethe holds anything on the person; the
// subject is looked up by the address, and a request for nobody runs and
// finds nothing. Codes are eight random digits, stored only as a keyed
// hash, valid for CodeTTL, with MaxAttempts guesses each (every guess is
// counted before it is compared) and at most MaxCodes codes per request.
// Contacts are stored sealed and found by a keyed hash.
package request

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/lethe-privacy/lethe"
	"github.com/lethe-privacy/lethe/internal/mail"
	"github.com/lethe-privacy/lethe/internal/vault"
)

// Subjects finds a tenant's subject by an identifier, for requests that
// name the person by their address. It returns "" for nobody.
type Subjects interface {
	FindSubject(ctx context.Context, tenant, kind, value string) (string, error)
}

// Config is what a Service needs.
type Config struct {
	Store    lethe.RequestStore
	Subjects Subjects
	Mail     mail.Sender
	Audit    lethe.Auditor
	// Key keys the contact index and the codes' hashes (a deployment
	// secret of at least 32 bytes).
	Key []byte
	// Seal and Open encrypt a contact and the details under the
	// deployment's key, bound to ad.
	Seal func(plaintext, ad []byte) []byte
	Open func(sealed, ad []byte) ([]byte, error)
	// Approval lists the request types that wait for a person's approval
	// after verification; nil means erasure only.
	Approval []lethe.RequestType
	// Organisation names the controller in messages to people.
	Organisation string
	// Runner carries approved requests out; nil leaves them approved.
	Runner *Runner
	Now    func() time.Time
	Logger *slog.Logger
}

// Defaults of the verification.
const (
	CodeTTL     = 15 * time.Minute
	MaxAttempts = 5
	MaxCodes    = 3
)

// Service handles requests. It is safe for concurrent use.
type Service struct {
	c Config
}

// New returns a Service.
func New(c Config) (*Service, error) {
	switch {
	case c.Store == nil || c.Subjects == nil || c.Mail == nil || c.Audit == nil || c.Seal == nil || c.Open == nil:
		return nil, fmt.Errorf("request service: store, subjects, mail, audit, seal and open are required")
	case len(c.Key) < 32:
		return nil, fmt.Errorf("request service: the key must be at least 32 bytes")
	}
	if c.Approval == nil {
		c.Approval = []lethe.RequestType{lethe.RequestErasure}
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Organisation == "" {
		c.Organisation = "the organisation"
	}
	return &Service{c: c}, nil
}

// details is what a request's Details hold, sealed.
type details struct {
	Purpose string            `json:"purpose,omitempty"`
	Values  map[string]string `json:"values,omitempty"`
	Reason  string            `json:"reason,omitempty"`
	// Passphrase encrypts an access archive; cleared once it is built.
	Passphrase string `json:"passphrase,omitempty"`
}

// Create records a request and, unless staff verified the person, sends a
// code to the contact. A duplicate (same tenant, type and subject or
// contact, still open) is merged into the open request, which Create
// returns; for the person it sends a fresh code for it. EINVALID for a
// request that is malformed.
func (s *Service) Create(ctx context.Context, a lethe.Actor, tenant string, in lethe.RequestAsk) (*lethe.Request, error) {
	self := a.KeyID == lethe.RequestSelf.KeyID
	if err := s.checkNew(tenant, in, self); err != nil {
		return nil, err
	}
	contact := strings.ToLower(strings.TrimSpace(in.Contact))
	subject := in.SubjectID
	if subject == "" {
		var err error
		if subject, err = s.c.Subjects.FindSubject(ctx, tenant, lethe.KindEmail, contact); err != nil {
			return nil, fmt.Errorf("create request: %w", err)
		}
	}
	now := s.c.Now().UTC()
	r := &lethe.Request{ID: lethe.NewRequestID(), Tenant: tenant, Type: in.Type, State: lethe.RequestReceived, SubjectID: subject,
		Channel: "staff", CreatedBy: a.KeyID, ContactIndex: s.contactIndex(tenant, contact),
		ReceivedAt: now, DueAt: lethe.RequestDue(now), UpdatedAt: now}
	if self {
		r.Channel = "self"
	}
	r.Contact = s.c.Seal([]byte(contact), ad("request-contact", tenant, r.ID))
	reason := in.Reason
	switch {
	case reason != "":
	case in.Type == lethe.RequestRestriction:
		reason = "other"
	case in.Type == lethe.RequestObjection:
		reason = "particular_situation"
	}
	d, _ := json.Marshal(details{Purpose: in.Purpose, Values: in.Values, Reason: reason, Passphrase: in.Passphrase}) // maps of strings always marshal
	r.Details = s.c.Seal(d, ad("request-details", tenant, r.ID))
	got, merged, err := s.c.Store.CreateRequest(ctx, r)
	if err != nil {
		return nil, fmt.Errorf("create request: %w", err)
	}
	if err := s.audit(ctx, a, "request.create", got); err != nil {
		return nil, err
	}
	if merged {
		s.c.Logger.Info("request merged into an open one", "request", got.ID, "type", got.Type)
		// The passphrase of the newest ask counts while the request awaits
		// its code: whoever verifies it has the address, and asked last.
		if in.Passphrase != "" && got.State == lethe.RequestReceived {
			if err := s.setPassphrase(ctx, got, in.Passphrase); err != nil {
				return nil, err
			}
		}
	}
	if in.Verified && !self {
		if got.State == lethe.RequestReceived {
			return s.verified(ctx, a, got)
		}
		return got, nil
	}
	if got.State == lethe.RequestReceived {
		if err := s.sendCode(ctx, got, contact); err != nil {
			return nil, err
		}
	}
	return got, nil
}

// setPassphrase replaces the passphrase a request's archive is encrypted
// to.
func (s *Service) setPassphrase(ctx context.Context, r *lethe.Request, passphrase string) error {
	raw, err := s.c.Open(r.Details, ad("request-details", r.Tenant, r.ID))
	if err != nil {
		return fmt.Errorf("request %s: open details: %w", r.ID, err)
	}
	var d details
	if err := json.Unmarshal(raw, &d); err != nil {
		return fmt.Errorf("request %s: details: %w", r.ID, err)
	}
	d.Passphrase = passphrase
	b, _ := json.Marshal(d) // maps of strings always marshal
	r.Details = s.c.Seal(b, ad("request-details", r.Tenant, r.ID))
	return s.c.Store.UpdateRequest(ctx, r)
}

func (s *Service) checkNew(tenant string, in lethe.RequestAsk, self bool) error {
	switch {
	case lethe.ValidTenant(tenant) != nil:
		return lethe.ValidTenant(tenant)
	case !slices.Contains(lethe.RequestTypes, in.Type):
		return lethe.Errorf(lethe.EINVALID, "type must be one of access, portability, rectification, erasure, restriction, objection")
	case self && in.SubjectID != "":
		return lethe.Errorf(lethe.EINVALID, "a person names themselves by their address, not a subject ID")
	case self && in.Verified:
		return lethe.Errorf(lethe.EINVALID, "only staff may verify a person themselves")
	case in.SubjectID != "" && !strings.HasPrefix(in.SubjectID, "sub_"):
		return lethe.Errorf(lethe.EINVALID, "subject_id is not a subject ID")
	case in.Type == lethe.RequestObjection && !lethe.ValidPurposeKey(in.Purpose):
		return lethe.Errorf(lethe.EINVALID, "an objection names the purpose it objects to")
	case in.Type != lethe.RequestObjection && in.Purpose != "":
		return lethe.Errorf(lethe.EINVALID, "only an objection names a purpose")
	case in.Type == lethe.RequestRectification && len(in.Values) == 0:
		return lethe.Errorf(lethe.EINVALID, "a rectification gives the corrected values, by data category")
	case in.Type != lethe.RequestRectification && len(in.Values) > 0:
		return lethe.Errorf(lethe.EINVALID, "only a rectification gives values")
	case in.Reason != "" && in.Type != lethe.RequestRestriction && in.Type != lethe.RequestObjection:
		return lethe.Errorf(lethe.EINVALID, "only a restriction or an objection gives a reason")
	case in.Passphrase != "" && in.Type != lethe.RequestAccess && in.Type != lethe.RequestPortability:
		return lethe.Errorf(lethe.EINVALID, "only an access or portability request's archive is encrypted to a passphrase")
	case in.Passphrase != "" && (len(in.Passphrase) < lethe.MinPassphrase || len(in.Passphrase) > lethe.MaxPassphrase || !utf8.ValidString(in.Passphrase)):
		return lethe.Errorf(lethe.EINVALID, "a passphrase is %d to %d bytes of UTF-8 text", lethe.MinPassphrase, lethe.MaxPassphrase)
	case in.Reason != "" && !slices.Contains(lethe.ConsentReasons, in.Reason):
		return lethe.Errorf(lethe.EINVALID, "reason must be one of %s", strings.Join(lethe.ConsentReasons, ", "))
	}
	for k, v := range in.Values {
		if !lethe.ValidPurposeKey(k) || len(v) > 4096 || !lethe.StorableToken(v) {
			return lethe.Errorf(lethe.EINVALID, "values are data categories (like user.contact.email) and texts of at most 4096 bytes")
		}
		if kind, ok := identifierKinds[k]; ok {
			if _, err := vault.Normalize(kind, v); err != nil {
				return lethe.Errorf(lethe.EINVALID, "the corrected %s is not a valid %s", k, kind)
			}
		}
	}
	if in.Contact == "" && in.SubjectID == "" {
		return lethe.Errorf(lethe.EINVALID, "give the contact address the code and results go to")
	}
	if in.Contact == "" {
		return lethe.Errorf(lethe.EINVALID, "give the contact address the results go to")
	}
	return mail.Validate(strings.TrimSpace(in.Contact))
}

// contactIndex is the keyed hash a contact is found by.
func (s *Service) contactIndex(tenant, contact string) []byte {
	m := hmac.New(sha256.New, s.c.Key)
	m.Write(ad("request-contact-index", tenant, contact))
	return m.Sum(nil)
}

// codeHash is the keyed hash a code is stored as, bound to its request.
func (s *Service) codeHash(requestID, code string) []byte {
	m := hmac.New(sha256.New, s.c.Key)
	m.Write(ad("request-code", requestID, code))
	return m.Sum(nil)
}

// newCode returns eight random decimal digits.
func newCode() string {
	var b [8]byte
	rand.Read(b[:]) // never returns an error
	return fmt.Sprintf("%08d", binary.BigEndian.Uint64(b[:])%100_000_000)
}

// sendCode issues a code for r and mails it to contact.
func (s *Service) sendCode(ctx context.Context, r *lethe.Request, contact string) error {
	code := newCode()
	c := &lethe.RequestCode{RequestID: r.ID, Hash: s.codeHash(r.ID, code), ExpiresAt: s.c.Now().Add(CodeTTL)}
	if err := s.c.Store.PutCode(ctx, c); err != nil {
		return fmt.Errorf("request %s: store code: %w", r.ID, err)
	}
	if c.Issued > MaxCodes {
		if err := s.c.Store.DeleteCode(ctx, r.ID); err != nil {
			return fmt.Errorf("request %s: delete code: %w", r.ID, err)
		}
		return lethe.Errorf(lethe.ERATELIMIT, "request %s had %d codes; ask the organisation", r.ID, MaxCodes)
	}
	msg := mail.Message{To: contact, Subject: "Your code for your request to " + s.c.Organisation,
		Text: fmt.Sprintf("Someone asked %s, giving this address, for %s (request %s).\n\n"+
			"If it was you, your code is: %s\n\nIt is valid for %d minutes. If it was not you, ignore this message: nothing happens without the code.\n",
			s.c.Organisation, describe(r.Type), r.ID, code, int(CodeTTL.Minutes()))}
	if err := s.c.Mail.Send(ctx, msg); err != nil {
		return fmt.Errorf("request %s: send code: %w", r.ID, err)
	}
	return nil
}

// describe says what a request type asks, for messages to people.
func describe(t lethe.RequestType) string {
	switch t {
	case lethe.RequestAccess:
		return "a copy of the personal data it holds about you"
	case lethe.RequestPortability:
		return "your personal data in a machine-readable form"
	case lethe.RequestRectification:
		return "a correction of your personal data"
	case lethe.RequestErasure:
		return "the erasure of your personal data"
	case lethe.RequestRestriction:
		return "restricting the processing of your personal data"
	}
	return "stopping the processing of your personal data for a purpose"
}

// ResendCode sends a fresh code for a request still awaiting verification;
// ERATELIMIT after MaxCodes codes.
func (s *Service) ResendCode(ctx context.Context, tenant, id string) error {
	r, err := s.c.Store.Request(ctx, tenant, id)
	if err != nil {
		return err
	}
	if r.State != lethe.RequestReceived {
		return nil // nothing to verify; say nothing more
	}
	contact, err := s.c.Open(r.Contact, ad("request-contact", tenant, r.ID))
	if err != nil {
		return fmt.Errorf("request %s: open contact: %w", r.ID, err)
	}
	return s.sendCode(ctx, r, string(contact))
}

// Verify checks the person's code. EFORBIDDEN for a wrong or expired code
// (with how many guesses are left), or once MaxAttempts guesses were
// made; the request then needs a new code.
func (s *Service) Verify(ctx context.Context, tenant, id, code string) (*lethe.Request, error) {
	r, err := s.c.Store.Request(ctx, tenant, id)
	if err != nil {
		return nil, err
	}
	if r.State != lethe.RequestReceived {
		return nil, lethe.Errorf(lethe.ECONFLICT, "request %s is not awaiting verification", id)
	}
	c, err := s.c.Store.AttemptCode(ctx, id)
	if lethe.ErrorCode(err) == lethe.ENOTFOUND {
		return nil, lethe.Errorf(lethe.EFORBIDDEN, "request %s has no valid code; ask for a new one", id)
	} else if err != nil {
		return nil, fmt.Errorf("verify request %s: %w", id, err)
	}
	ok := subtle.ConstantTimeCompare(c.Hash, s.codeHash(id, strings.TrimSpace(code))) == 1
	switch {
	case c.Attempts > MaxAttempts:
		s.auditOutcome(ctx, lethe.RequestSelf, "request.verify", r, "denied")
		return nil, lethe.Errorf(lethe.EFORBIDDEN, "request %s: too many wrong codes; ask for a new one", id)
	case s.c.Now().After(c.ExpiresAt):
		s.auditOutcome(ctx, lethe.RequestSelf, "request.verify", r, "denied")
		return nil, lethe.Errorf(lethe.EFORBIDDEN, "request %s: the code has expired; ask for a new one", id)
	case !ok:
		s.auditOutcome(ctx, lethe.RequestSelf, "request.verify", r, "denied")
		return nil, lethe.Errorf(lethe.EFORBIDDEN, "request %s: wrong code; %d tries left", id, MaxAttempts-c.Attempts)
	}
	if err := s.c.Store.DeleteCode(ctx, id); err != nil {
		return nil, fmt.Errorf("verify request %s: %w", id, err)
	}
	return s.verified(ctx, lethe.RequestSelf, r)
}

// verified moves a request on once the person's identity is verified: to
// awaiting approval where policy asks for it, else approved.
func (s *Service) verified(ctx context.Context, a lethe.Actor, r *lethe.Request) (*lethe.Request, error) {
	now := s.c.Now().UTC()
	r.State, r.VerifiedAt, r.UpdatedAt = lethe.RequestVerified, &now, now
	if err := s.update(ctx, a, "request.verify", r); err != nil {
		return nil, err
	}
	next := lethe.RequestApproved
	if slices.Contains(s.c.Approval, r.Type) {
		next = lethe.RequestAwaitingApproval
	}
	r.State, r.UpdatedAt = next, now
	if next == lethe.RequestApproved {
		r.ApprovedBy = "policy"
	}
	if err := s.update(ctx, a, "request."+string(next), r); err != nil {
		return nil, err
	}
	if next == lethe.RequestApproved {
		return r, s.start(ctx, r)
	}
	return r, nil
}

// start hands an approved request to the runner.
func (s *Service) start(ctx context.Context, r *lethe.Request) error {
	if s.c.Runner == nil {
		return nil
	}
	if err := s.c.Runner.Start(ctx, r); err != nil {
		return fmt.Errorf("start request %s: %w", r.ID, err)
	}
	return nil
}

// Approve approves a request awaiting approval. ECONFLICT in any other
// state.
func (s *Service) Approve(ctx context.Context, a lethe.Actor, tenant, id string) (*lethe.Request, error) {
	r, err := s.c.Store.Request(ctx, tenant, id)
	if err != nil {
		return nil, err
	}
	if r.State != lethe.RequestAwaitingApproval {
		return nil, lethe.Errorf(lethe.ECONFLICT, "request %s is %s, not awaiting approval", id, r.State)
	}
	now := s.c.Now().UTC()
	r.State, r.ApprovedBy, r.UpdatedAt = lethe.RequestApproved, a.KeyID, now
	if err := s.update(ctx, a, "request.approve", r); err != nil {
		return nil, err
	}
	return r, s.start(ctx, r)
}

// Retry runs again the systems a partially completed request has not
// finished, after a system's job gave up (the system was unreachable for
// days). ECONFLICT unless the request is partially completed.
func (s *Service) Retry(ctx context.Context, a lethe.Actor, tenant, id string) (*lethe.Request, error) {
	r, err := s.c.Store.Request(ctx, tenant, id)
	if err != nil {
		return nil, err
	}
	if s.c.Runner == nil {
		return nil, lethe.Errorf(lethe.EUNAVAILABLE, "requests do not run here")
	}
	if err := s.audit(ctx, a, "request.retry", r); err != nil {
		return nil, err
	}
	if err := s.c.Runner.Retry(ctx, r); err != nil {
		return nil, err
	}
	return r, nil
}

// Acknowledge closes a system's part of a request that waits for a person
// (a manual system's checklist) or a third party, with how much it held.
func (s *Service) Acknowledge(ctx context.Context, a lethe.Actor, tenant, id, system string, count int64, note string) (*lethe.Request, error) {
	if s.c.Runner == nil {
		return nil, lethe.Errorf(lethe.EUNAVAILABLE, "requests do not run here")
	}
	if count < 0 || len(note) > 2000 || !lethe.StorableToken(note) {
		return nil, lethe.Errorf(lethe.EINVALID, "count must not be negative, and the note at most 2000 bytes of text")
	}
	return s.c.Runner.Acknowledge(ctx, tenant, id, system, count, note)
}

// Download returns the access archive a one-time link names (see
// Runner.Download).
func (s *Service) Download(ctx context.Context, link string) ([]byte, error) {
	if s.c.Runner == nil {
		return nil, lethe.Errorf(lethe.ENOTFOUND, "this link is not valid, or was used or expired; ask for your data again")
	}
	return s.c.Runner.Download(ctx, link)
}

// Callback takes a third party's signed acknowledgement of its part of a
// request. EUNAUTHORIZED unless the signature is the system's.
func (s *Service) Callback(ctx context.Context, system, signature string, body []byte) error {
	if s.c.Runner == nil {
		return lethe.Errorf(lethe.ENOTFOUND, "no system takes callbacks here")
	}
	return s.c.Runner.Callback(ctx, system, signature, body)
}

// Extend moves a request's due date, by at most two months past the first
// one, with the reason the person is told. EINVALID past that or without a
// reason.
func (s *Service) Extend(ctx context.Context, a lethe.Actor, tenant, id string, until time.Time, reason string) (*lethe.Request, error) {
	r, err := s.c.Store.Request(ctx, tenant, id)
	if err != nil {
		return nil, err
	}
	if !r.State.Open() {
		return nil, lethe.Errorf(lethe.ECONFLICT, "request %s is %s", id, r.State)
	}
	if !until.After(r.DueAt) {
		return nil, lethe.Errorf(lethe.EINVALID, "request %s: an extension moves the due date later", id)
	}
	r.DueAt, r.ExtendedReason, r.UpdatedAt = until.UTC(), strings.TrimSpace(reason), s.c.Now().UTC()
	if err := s.update(ctx, a, "request.extend", r); err != nil {
		return nil, err
	}
	s.tell(ctx, r, "Your request takes longer", extendedText(r))
	return r, nil
}

// tell mails the person what became of their request. The change is
// stored already, so a failure to send does not fail it: it is logged and
// audited (request.notify, outcome failed), for staff to tell the person
// another way.
func (s *Service) tell(ctx context.Context, r *lethe.Request, subject, text string) {
	if err := tell(ctx, s.c.Mail, s.c.Open, s.c.Organisation, r, subject, text); err != nil {
		s.c.Logger.Warn("the person could not be told of their request", "request", r.ID, "state", r.State, "err", err.Error())
		s.auditOutcome(ctx, actorOf(r), "request.notify", r, "failed")
	}
}

// Close rejects or cancels an open request, with a reason.
func (s *Service) Close(ctx context.Context, a lethe.Actor, tenant, id string, state lethe.RequestState, reason string) (*lethe.Request, error) {
	if state != lethe.RequestRejected && state != lethe.RequestCancelled {
		return nil, lethe.Errorf(lethe.EINVALID, "a request is closed as rejected or cancelled")
	}
	if strings.TrimSpace(reason) == "" {
		return nil, lethe.Errorf(lethe.EINVALID, "closing a request needs a reason (Art. 12(4): the person is told why)")
	}
	r, err := s.c.Store.Request(ctx, tenant, id)
	if err != nil {
		return nil, err
	}
	if !r.State.CanMove(state) {
		return nil, lethe.Errorf(lethe.ECONFLICT, "request %s is %s and cannot be %s", id, r.State, state)
	}
	now := s.c.Now().UTC()
	r.State, r.Reason, r.ClosedAt, r.UpdatedAt = state, strings.TrimSpace(reason), &now, now
	if err := s.update(ctx, a, "request."+string(state), r); err != nil {
		return nil, err
	}
	s.c.Store.DeleteCode(ctx, id) // a closed request needs none; a failure leaves an unusable code
	s.tell(ctx, r, "Your request was "+string(state), closedText(r))
	return r, nil
}

// Request returns one request.
func (s *Service) Request(ctx context.Context, tenant, id string) (*lethe.Request, error) {
	return s.c.Store.Request(ctx, tenant, id)
}

// Tasks returns a request's tasks, one per system.
func (s *Service) Tasks(ctx context.Context, id string) ([]lethe.RequestTask, error) {
	return s.c.Store.Tasks(ctx, id)
}

// List returns requests; Overdue and DueSoon are common filters.
func (s *Service) List(ctx context.Context, f lethe.RequestFilter) ([]lethe.Request, error) {
	return s.c.Store.ListRequests(ctx, f)
}

// OpenStates are the states of requests still to be carried out.
var OpenStates = []lethe.RequestState{lethe.RequestReceived, lethe.RequestVerified, lethe.RequestAwaitingApproval, lethe.RequestApproved, lethe.RequestRunning, lethe.RequestPartial}

// Overdue returns a tenant's open requests past their due date.
func (s *Service) Overdue(ctx context.Context, tenant string) ([]lethe.Request, error) {
	return s.c.Store.ListRequests(ctx, lethe.RequestFilter{Tenant: tenant, States: OpenStates, DueBefore: s.c.Now(), Limit: lethe.RequestListLimit})
}

// DueSoon returns a tenant's open requests due within d.
func (s *Service) DueSoon(ctx context.Context, tenant string, d time.Duration) ([]lethe.Request, error) {
	return s.c.Store.ListRequests(ctx, lethe.RequestFilter{Tenant: tenant, States: OpenStates, DueBefore: s.c.Now().Add(d), Limit: lethe.RequestListLimit})
}

// update audits a change, then stores it (fail closed: no unaudited
// change).
func (s *Service) update(ctx context.Context, a lethe.Actor, action string, r *lethe.Request) error {
	if err := s.audit(ctx, a, action, r); err != nil {
		return err
	}
	if err := s.c.Store.UpdateRequest(ctx, r); err != nil {
		return fmt.Errorf("%s %s: %w", action, r.ID, err)
	}
	return nil
}

func (s *Service) audit(ctx context.Context, a lethe.Actor, action string, r *lethe.Request) error {
	return s.auditOutcome(ctx, a, action, r, "ok")
}

func (s *Service) auditOutcome(ctx context.Context, a lethe.Actor, action string, r *lethe.Request, outcome string) error {
	return record(ctx, s.c.Audit, s.c.Now(), a, action, outcome, r)
}

// record audits one step of a request, by a, naming the request and its
// subject (never the person's address or values).
func record(ctx context.Context, au lethe.Auditor, now time.Time, a lethe.Actor, action, outcome string, r *lethe.Request) error {
	ev := lethe.AuditEvent{Time: now.UTC(), Action: action, Outcome: outcome, KeyID: a.KeyID, Role: a.Role, RequestID: a.RequestID,
		Tenant: r.Tenant, SubjectID: r.SubjectID, Resource: "request:" + r.ID}
	if err := au.Record(ctx, ev); err != nil {
		return fmt.Errorf("%s %s: audit: %w", action, r.ID, err)
	}
	return nil
}

// ad encodes the parts a sealed value or a keyed hash is bound to, each
// prefixed by its length, so that no two lists of parts encode alike.
func ad(parts ...string) []byte {
	var b []byte
	for _, p := range parts {
		b = binary.BigEndian.AppendUint32(b, uint32(len(p)))
		b = append(b, p...)
	}
	return b
}
