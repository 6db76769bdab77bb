package lethe

import (
	"context"
	"crypto/rand"
	"encoding/base32"
	"slices"
	"strings"
	"time"
)

// RequestType is what a data subject asks for.
type RequestType string

// The request types, one per right of the GDPR.
const (
	RequestAccess        RequestType = "access"        // Art. 15: a copy of the data and what is done with it
	RequestPortability   RequestType = "portability"   // Art. 20: the data provided, machine-readable
	RequestRectification RequestType = "rectification" // Art. 16: correct what is wrong
	RequestErasure       RequestType = "erasure"       // Art. 17: erase, everywhere
	RequestRestriction   RequestType = "restriction"   // Art. 18: stop all processing but storage
	RequestObjection     RequestType = "objection"     // Art. 21: stop processing for a purpose
)

// RequestTypes lists the request types.
var RequestTypes = []RequestType{RequestAccess, RequestPortability, RequestRectification, RequestErasure, RequestRestriction, RequestObjection}

// RequestState is where a request is in its workflow:
//
//	received → verified → [awaiting_approval → approved] → running → completed
//	                                                              ↘ partially_completed → running …
//
// and from any state before completion: rejected (with a reason) or
// cancelled. A partially completed request has systems still pending; it
// runs again when they can be reached.
type RequestState string

// The request states.
const (
	RequestReceived         RequestState = "received"            // created; the person's identity not yet verified
	RequestVerified         RequestState = "verified"            // identity verified
	RequestAwaitingApproval RequestState = "awaiting_approval"   // policy asks a person to approve
	RequestApproved         RequestState = "approved"            // approved, about to run
	RequestRunning          RequestState = "running"             // tasks under way
	RequestPartial          RequestState = "partially_completed" // some systems done, some pending
	RequestCompleted        RequestState = "completed"           // every system done
	RequestRejected         RequestState = "rejected"            // refused, with a reason (Art. 12(4))
	RequestCancelled        RequestState = "cancelled"           // withdrawn by the person or staff
)

// requestMoves lists the states each state may move to.
var requestMoves = map[RequestState][]RequestState{
	RequestReceived:         {RequestVerified, RequestRejected, RequestCancelled},
	RequestVerified:         {RequestAwaitingApproval, RequestApproved, RequestRunning, RequestRejected, RequestCancelled},
	RequestAwaitingApproval: {RequestApproved, RequestRejected, RequestCancelled},
	RequestApproved:         {RequestRunning, RequestCancelled},
	RequestRunning:          {RequestCompleted, RequestPartial},
	RequestPartial:          {RequestRunning, RequestCompleted},
}

// CanMove reports whether a request in state from may move to state to.
func (from RequestState) CanMove(to RequestState) bool {
	return slices.Contains(requestMoves[from], to)
}

// Open reports whether the request is still to be carried out.
func (s RequestState) Open() bool {
	return s != RequestCompleted && s != RequestRejected && s != RequestCancelled
}

// Request is a data-subject request. Nothing in it is personal but the
// subject ID: the person's contact address and any values to rectify are
// sealed by the service before they reach the store.
type Request struct {
	ID        string       `json:"id"` // "req_…"
	Tenant    string       `json:"tenant"`
	Type      RequestType  `json:"type"`
	State     RequestState `json:"state"`
	SubjectID string       `json:"subject_id,omitempty"` // empty until known (never known for a person Lethe holds nothing on)
	// Channel is how it came: "staff" (through the API by a principal) or
	// "self" (by the person, through the self-service API).
	Channel   string `json:"channel"`
	CreatedBy string `json:"created_by"` // the principal's key ID, or "self"
	// ContactIndex is a keyed hash of the address results go to, to merge
	// duplicates and limit attempts without holding the address in clear;
	// Contact is the address, sealed.
	ContactIndex []byte `json:"-"`
	Contact      []byte `json:"-"`
	// Details are the type's parameters (the purpose objected to, the
	// sealed values to rectify), as the service encodes them.
	Details []byte `json:"-"`

	ReceivedAt time.Time `json:"received_at"`
	// DueAt is one month after receipt (Art. 12(3)), or later once
	// extended, by at most two more months, with a reason.
	DueAt          time.Time  `json:"due_at"`
	ExtendedReason string     `json:"extended_reason,omitempty"`
	VerifiedAt     *time.Time `json:"verified_at,omitempty"`
	ApprovedBy     string     `json:"approved_by,omitempty"`
	ClosedAt       *time.Time `json:"closed_at,omitempty"` // completed, rejected or cancelled
	Reason         string     `json:"reason,omitempty"`    // why rejected or cancelled
	UpdatedAt      time.Time  `json:"updated_at"`
	// Receipt is the signed erasure receipt, once the erasure completed.
	Receipt []byte `json:"receipt,omitempty"`
	// Version increases with every change; an update names the version it
	// read, so two changes cannot overwrite each other.
	Version int `json:"version"`
}

// RequestDue returns when a request received at t is due: one month
// later (Art. 12(3)); AddDate normalises 31 January + 1 month to 3 March,
// so the month is counted as the calendar does, never shorter.
func RequestDue(received time.Time) time.Time { return received.AddDate(0, 1, 0) }

// RequestLatestDue returns the latest a request received at t may be
// extended to: two further months (Art. 12(3)).
func RequestLatestDue(received time.Time) time.Time { return received.AddDate(0, 3, 0) }

// NewRequestID returns a random request ID: "req_" and 16 random bytes in
// lower-case base32 (26 characters).
func NewRequestID() string {
	var b [16]byte
	rand.Read(b[:]) // never returns an error
	return "req_" + strings.ToLower(base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(b[:]))
}

// ValidRequestID reports whether id has the form NewRequestID gives.
func ValidRequestID(id string) bool {
	if len(id) != 30 || !strings.HasPrefix(id, "req_") {
		return false
	}
	for _, c := range id[4:] {
		if (c < 'a' || c > 'z') && (c < '2' || c > '7') {
			return false
		}
	}
	return true
}

// TaskState is where one system's part of a request is.
type TaskState string

// The task states.
const (
	TaskPending TaskState = "pending" // not yet run, or to be retried
	TaskRunning TaskState = "running"
	TaskWaiting TaskState = "waiting" // the system acknowledges later (a third party, a person)
	TaskDone    TaskState = "done"
	TaskFailed  TaskState = "failed" // gave up for now; the request is partially completed
)

// RequestTask is one system's part of a request: its state, attempts, the
// report of what was done (JSON, no personal values) and the last error.
type RequestTask struct {
	RequestID string    `json:"request_id"`
	System    string    `json:"system"`
	Step      int       `json:"step"` // order in the plan; tasks of one step may run together
	State     TaskState `json:"state"`
	Attempts  int       `json:"attempts"`
	Report    []byte    `json:"report,omitempty"`
	Error     string    `json:"error,omitempty"`
	UpdatedAt time.Time `json:"updated_at"`
}

// RequestAsk is a request as staff or the person make it.
type RequestAsk struct {
	Type RequestType `json:"type"`
	// SubjectID names the subject (staff only); else the contact finds
	// it.
	SubjectID string `json:"subject_id,omitempty"`
	// Contact is the email address the code and the results go to.
	Contact string `json:"contact"`
	// Purpose is what an objection is to.
	Purpose string `json:"purpose,omitempty"`
	// Values are a rectification's corrections, by data category.
	Values map[string]string `json:"values,omitempty"`
	// Reason is the ground of a restriction or an objection, a code of
	// ConsentReasons (other, or particular_situation, if empty).
	Reason string `json:"reason,omitempty"`
	// Verified says staff verified the person's identity themselves (in
	// person, by a signed letter): no code is sent.
	Verified bool `json:"verified,omitempty"`
	// Passphrase, for access and portability, encrypts the archive to it
	// (age, scrypt): whoever gets hold of the link gets nothing without
	// it. Lethe keeps it sealed until the archive is built, then forgets
	// it.
	Passphrase string `json:"passphrase,omitempty"`
}

// Passphrase limits, in bytes.
const (
	MinPassphrase = 12
	MaxPassphrase = 1024
)

// RequestSelf is the actor of a request the person makes themselves.
var RequestSelf = Actor{KeyID: "self"}

// RequestFilter selects requests to list, oldest due first.
type RequestFilter struct {
	Tenant string // required, unless AllTenants
	// AllTenants lists every tenant's requests, for Lethe's own sweeps;
	// the API never sets it.
	AllTenants bool
	States     []RequestState // nil: any
	DueBefore  time.Time      // zero: any
	SubjectID  string         // empty: any
	// AfterDue and AfterID are the due date and ID of the last request of
	// the previous page; zero for the first page.
	AfterDue time.Time
	AfterID  string
	Limit    int // at most RequestListLimit; 0 means 100
}

// RequestListLimit is the most requests one list returns.
const RequestListLimit = 1000

// RequestStore keeps requests and their tasks in the data store.
type RequestStore interface {
	// CreateRequest stores a new request, unless an open request of the
	// same tenant and type exists for the same subject (or, without a
	// subject, the same contact index): then it stores nothing and returns
	// that one with merged true (duplicates are merged).
	CreateRequest(ctx context.Context, r *Request) (existing *Request, merged bool, err error)
	// Request returns one request; ENOTFOUND if the tenant has none with
	// that ID.
	Request(ctx context.Context, tenant, id string) (*Request, error)
	// UpdateRequest writes r's state and times if the stored version is
	// r.Version, and increments r.Version; ECONFLICT if another change came
	// first, EINVALID if the state cannot move from the stored one to r's
	// (staying in a state is allowed). It writes the state, the times,
	// the subject, the details and the receipt; the type, channel and
	// contact never change.
	UpdateRequest(ctx context.Context, r *Request) error
	// ListRequests returns requests matching f, by due date then ID.
	ListRequests(ctx context.Context, f RequestFilter) ([]Request, error)
	// PutTasks stores or replaces the tasks of a request, in one
	// transaction.
	PutTasks(ctx context.Context, tasks []RequestTask) error
	// Tasks returns a request's tasks by step and system.
	Tasks(ctx context.Context, requestID string) ([]RequestTask, error)
	// PutCode stores a new verification code for a request, replacing any
	// earlier one and counting it in Issued; attempts start at 0.
	PutCode(ctx context.Context, c *RequestCode) error
	// AttemptCode counts one attempt at a request's code and returns the
	// code as it stands after counting, so that every guess is counted
	// before it is compared; ENOTFOUND if the request has no code.
	AttemptCode(ctx context.Context, requestID string) (*RequestCode, error)
	// DeleteCode removes a request's code once it is used.
	DeleteCode(ctx context.Context, requestID string) error

	// ClaimFinish makes claimant the one that finishes a request until
	// until, if no other claimant holds it at now: a claimant may claim
	// again (a retry of the same job), another only once the lease has
	// run out (its holder died). It reports whether claimant holds it;
	// ENOTFOUND for an unknown request.
	ClaimFinish(ctx context.Context, tenant, id, claimant string, now, until time.Time) (bool, error)

	// PutArchive stores one sealed piece of a request's access archive
	// under name, replacing one of that name, until expires. ENOTFOUND
	// for an unknown request.
	PutArchive(ctx context.Context, requestID, name string, data []byte, expires time.Time) error
	// Archive returns a piece; ENOTFOUND if there is none.
	Archive(ctx context.Context, requestID, name string) ([]byte, error)
	// TakeArchive returns a piece and deletes it, at once: of callers
	// racing for it, one gets it and the others ENOTFOUND.
	TakeArchive(ctx context.Context, requestID, name string) ([]byte, error)
	// DeleteArchive deletes every piece of a request's archive.
	DeleteArchive(ctx context.Context, requestID string) error
	// PruneArchives deletes every piece expired at now, and returns how
	// many it deleted.
	PruneArchives(ctx context.Context, now time.Time) (int, error)
}

// RequestCode is the one-time code that verifies a request: only its keyed
// hash is stored.
type RequestCode struct {
	RequestID string
	Hash      []byte
	ExpiresAt time.Time
	Attempts  int // guesses counted so far
	Issued    int // codes issued for the request so far, this one included
}

// CheckNewRequest returns EINVALID unless r can be stored as a new
// request: a request ID, a valid tenant, a known type, state received,
// version 0, channel staff or self, a subject ID of the right form or
// none, and a due date after receipt no later than RequestLatestDue.
func CheckNewRequest(r *Request) error {
	switch {
	case !ValidRequestID(r.ID):
		return Errorf(EINVALID, "a request ID is req_ and 26 characters")
	case ValidTenant(r.Tenant) != nil:
		return ValidTenant(r.Tenant)
	case !slices.Contains(RequestTypes, r.Type):
		return Errorf(EINVALID, "request type must be one of access, portability, rectification, erasure, restriction, objection")
	case r.State != RequestReceived || r.Version != 0:
		return Errorf(EINVALID, "a new request is in state received, at version 0")
	case r.Channel != "staff" && r.Channel != "self":
		return Errorf(EINVALID, "request channel must be staff or self")
	case r.SubjectID != "" && (len(r.SubjectID) > 64 || !strings.HasPrefix(r.SubjectID, "sub_")):
		return Errorf(EINVALID, "subject_id is not a subject ID")
	case r.ReceivedAt.IsZero() || !r.DueAt.After(r.ReceivedAt) || r.DueAt.After(RequestLatestDue(r.ReceivedAt)):
		return Errorf(EINVALID, "a request is due after its receipt and at most three months later")
	}
	return checkRequestText(r)
}

// CheckRequestUpdate returns ECONFLICT unless r.Version is the stored
// version, and EINVALID unless r's state may follow the stored one and its
// due date respects Art. 12(3) (an extension, with a reason, by at most
// two months).
func CheckRequestUpdate(stored RequestState, version int, r *Request) error {
	switch {
	case r.Version != version:
		return Errorf(ECONFLICT, "request %s changed since it was read (version %d, now %d)", r.ID, r.Version, version)
	case stored != r.State && !stored.CanMove(r.State):
		return Errorf(EINVALID, "request %s cannot move from %s to %s", r.ID, stored, r.State)
	case r.DueAt.After(RequestLatestDue(r.ReceivedAt)):
		return Errorf(EINVALID, "request %s: a request may be extended by at most two months (Art. 12(3))", r.ID)
	case r.DueAt.After(RequestDue(r.ReceivedAt)) && strings.TrimSpace(r.ExtendedReason) == "":
		return Errorf(EINVALID, "request %s: an extension needs a reason, which the person is told", r.ID)
	}
	return checkRequestText(r)
}

func checkRequestText(r *Request) error {
	for _, s := range []string{r.CreatedBy, r.ExtendedReason, r.ApprovedBy, r.Reason, r.SubjectID} {
		if !StorableToken(s) || len(s) > 2000 {
			return Errorf(EINVALID, "request %s: a text field is not valid UTF-8 of at most 2000 bytes without NUL", r.ID)
		}
	}
	return nil
}

// CheckRequestFilter returns the page size f asks for, or EINVALID.
func CheckRequestFilter(f RequestFilter) (int, error) {
	switch {
	case f.Tenant == "" && !f.AllTenants:
		return 0, Errorf(EINVALID, "a request list needs a tenant")
	case f.Tenant != "" && f.AllTenants:
		return 0, Errorf(EINVALID, "a request list names a tenant or all tenants, not both")
	case f.Limit < 0 || f.Limit > RequestListLimit:
		return 0, Errorf(EINVALID, "a request list returns 1 to %d requests", RequestListLimit)
	case f.Limit == 0:
		return 100, nil
	}
	return f.Limit, nil
}
