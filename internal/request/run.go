package request

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/riverqueue/river"

	"github.com/lethe-privacy/lethe"
	"github.com/lethe-privacy/lethe/internal/connector"
	"github.com/lethe-privacy/lethe/internal/jobs"
	"github.com/lethe-privacy/lethe/internal/mail"
)

// Vault is what running a request needs of the vault.
type Vault interface {
	ReadSubject(ctx context.Context, a lethe.Actor, tenant, id string, o lethe.ReadOptions) (*lethe.SubjectView, error)
	UpdateSubject(ctx context.Context, a lethe.Actor, tenant, id string, c lethe.ProfileChange) (*lethe.SubjectView, error)
	EraseSubject(ctx context.Context, a lethe.Actor, tenant, id string) (*lethe.Forgotten, error)
}

// Ledger records restrictions and objections (the consent service).
type Ledger interface {
	Record(ctx context.Context, a lethe.Actor, tenant string, recs []lethe.ConsentRecord) ([]lethe.ConsentEvent, error)
	History(ctx context.Context, a lethe.Actor, tenant, subjectID string) ([]lethe.ConsentEvent, error)
}

// RunnerConfig is what a Runner needs.
type RunnerConfig struct {
	Store lethe.RequestStore
	// Systems are the data map's systems, in its order; Open opens one.
	Systems []string
	Open    func(ctx context.Context, system string) (connector.Connector, error)
	Vault   Vault
	// PseudonymKey returns the key a subject's erasure pseudonymises under,
	// derived from the subject's own key (destroyed at the end).
	PseudonymKey func(ctx context.Context, tenant, id string) ([]byte, error)
	Audit        lethe.Auditor
	// Trail, when set, gives an access archive the subject's events in the
	// audit log, each with its proof (who read or changed their data).
	Trail lethe.AuditTrail
	// Ledger records a restriction or an objection once the systems are
	// done; a request of either type fails without it.
	Ledger Ledger
	// Seal and Open seal the archive parts and open the contact and the
	// details, as the Service's.
	Seal     func(plaintext, ad []byte) []byte
	OpenSeal func(sealed, ad []byte) ([]byte, error)
	// Sign signs an erasure receipt.
	Sign func(msg []byte) []byte
	// Mail, BaseURL and Summary deliver an access archive: a one-time link
	// to BaseURL's /v1/self/downloads, mailed to the person, to a zip
	// whose README is the Summary. Without Mail the archive is kept but
	// nobody is told.
	Mail    mail.Sender
	BaseURL func() string
	Summary Summary
	// Callback checks a third party's signed acknowledgement for a system
	// and says which request it acknowledges and how much the third party
	// held: EUNAUTHORIZED for a bad signature, EINVALID for a bad body,
	// ENOTFOUND for a system that takes no callbacks. Nil takes none.
	Callback func(system, signature string, body []byte) (tenant, requestID string, count int64, err error)
	// AckReminder is how often a system that answered "later" (a third
	// party, a person with a checklist) is reminded: its part is sent
	// again and the DPO (Summary.Contact) is mailed. AckTimeout is how
	// long it may wait in all: then its task fails, the request shows as
	// partially completed, and staff step in (a late acknowledgement is
	// still taken). Defaults: DefaultAckReminder, DefaultAckTimeout.
	AckReminder, AckTimeout time.Duration
	Now                     func() time.Time
	Logger                  *slog.Logger
}

// Defaults of waiting for an acknowledgement: a reminder every three days,
// for two weeks, which leaves half of the month a request is due in.
const (
	DefaultAckReminder = 72 * time.Hour
	DefaultAckTimeout  = 14 * 24 * time.Hour
)

// Runner carries out approved requests: one durable job per system of the
// data map, retried with backoff, then one that finishes the request —
// for an erasure, destroying the subject's key and signing the receipt.
// Every job is idempotent: a task already done is not run again, and a
// connector's erasure run twice does nothing the second time.
type Runner struct {
	c     RunnerConfig
	mu    sync.Mutex
	queue *jobs.Queue
	// conns are the systems opened so far, kept for the next jobs
	// (connectors are safe for concurrent use).
	conns map[string]connector.Connector
}

// NewRunner returns a Runner; give its Workers to the job queue, then the
// queue to SetQueue.
func NewRunner(c RunnerConfig) (*Runner, error) {
	if c.Store == nil || c.Open == nil || c.Vault == nil || c.PseudonymKey == nil || c.Audit == nil || c.Seal == nil || c.OpenSeal == nil || c.Sign == nil {
		return nil, errors.New("request runner: store, open, vault, pseudonym key, audit, seal, open and sign are required")
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.AckReminder <= 0 {
		c.AckReminder = DefaultAckReminder
	}
	if c.AckTimeout <= 0 {
		c.AckTimeout = DefaultAckTimeout
	}
	return &Runner{c: c, conns: map[string]connector.Connector{}}, nil
}

// conn returns the system's connector, opening it the first time.
func (r *Runner) conn(ctx context.Context, system string) (connector.Connector, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if c, ok := r.conns[system]; ok {
		return c, nil
	}
	c, err := r.c.Open(ctx, system)
	if err != nil {
		return nil, err
	}
	r.conns[system] = c
	return c, nil
}

// Close closes the systems the Runner opened; stop the queue first.
func (r *Runner) Close() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	var errs []error
	for name, c := range r.conns {
		errs = append(errs, c.Close())
		delete(r.conns, name)
	}
	return errors.Join(errs...)
}

// TaskArgs is the job of one system's part of a request.
type TaskArgs struct {
	RequestID string `json:"request_id"`
	Tenant    string `json:"tenant"`
	System    string `json:"system"`
}

// Kind implements river.JobArgs.
func (TaskArgs) Kind() string { return "request_task" }

// FinishArgs is the job that closes a request once its tasks ended.
type FinishArgs struct {
	RequestID string `json:"request_id"`
	Tenant    string `json:"tenant"`
}

// Kind implements river.JobArgs.
func (FinishArgs) Kind() string { return "request_finish" }

// Workers returns the job workers of requests.
func (r *Runner) Workers() *river.Workers {
	w := river.NewWorkers()
	river.AddWorker(w, river.WorkFunc(r.work))
	river.AddWorker(w, river.WorkFunc(r.finish))
	river.AddWorker(w, river.WorkFunc(r.remind))
	return w
}

// SetQueue gives the Runner the queue that runs its workers.
func (r *Runner) SetQueue(q *jobs.Queue) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.queue = q
}

func (r *Runner) q() (*jobs.Queue, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.queue == nil {
		return nil, errors.New("request runner: no job queue")
	}
	return r.queue, nil
}

// unique makes a job with the same arguments, enqueued again (a retry of
// Start), one job.
var unique = &river.InsertOpts{UniqueOpts: river.UniqueOpts{ByArgs: true}}

// Start runs an approved request: a pending task and a job per system.
// It is idempotent: started again, it enqueues nothing new.
func (r *Runner) Start(ctx context.Context, req *lethe.Request) error {
	q, err := r.q()
	if err != nil {
		return err
	}
	now := r.c.Now().UTC()
	existing, err := r.c.Store.Tasks(ctx, req.ID)
	if err != nil {
		return err
	}
	if len(existing) == 0 {
		var tasks []lethe.RequestTask
		for _, s := range r.c.Systems {
			tasks = append(tasks, lethe.RequestTask{RequestID: req.ID, System: s, State: lethe.TaskPending, UpdatedAt: now})
		}
		if err := r.c.Store.PutTasks(ctx, tasks); err != nil {
			return err
		}
	}
	for _, s := range r.c.Systems {
		if err := q.Insert(ctx, TaskArgs{RequestID: req.ID, Tenant: req.Tenant, System: s}, unique); err != nil {
			return fmt.Errorf("request %s: enqueue %s: %w", req.ID, s, err)
		}
	}
	if len(r.c.Systems) == 0 {
		if err := q.Insert(ctx, FinishArgs{RequestID: req.ID, Tenant: req.Tenant}, nil); err != nil {
			return err
		}
	}
	if req.State == lethe.RequestApproved || req.State == lethe.RequestPartial {
		req.State, req.UpdatedAt = lethe.RequestRunning, now
		if err := r.update(ctx, "request.running", req); err != nil && lethe.ErrorCode(err) != lethe.ECONFLICT {
			return err
		}
	}
	return nil
}

// actor is who acts for a request in the audit log.
func actorOf(req *lethe.Request) lethe.Actor {
	return lethe.Actor{KeyID: "request:" + req.ID, Role: lethe.RoleDPO}
}

func (r *Runner) update(ctx context.Context, action string, req *lethe.Request) error {
	if err := record(ctx, r.c.Audit, r.c.Now(), actorOf(req), action, "ok", req); err != nil {
		return err
	}
	return r.c.Store.UpdateRequest(ctx, req)
}

// work runs one system's task.
func (r *Runner) work(ctx context.Context, job *river.Job[TaskArgs]) error {
	a := job.Args
	req, err := r.c.Store.Request(ctx, a.Tenant, a.RequestID)
	if err != nil {
		return err
	}
	if !req.State.Open() {
		return nil
	}
	tasks, err := r.c.Store.Tasks(ctx, a.RequestID)
	if err != nil {
		return err
	}
	task := lethe.RequestTask{RequestID: a.RequestID, System: a.System}
	for _, t := range tasks {
		if t.System == a.System {
			task = t
		}
	}
	if task.State == lethe.TaskWaiting {
		// Run again after its job recorded it waiting: its reminder may
		// not have been enqueued.
		if err := r.enqueueReminder(ctx, r.nextReminder(req, task)); err != nil {
			return err
		}
	}
	if task.State == lethe.TaskDone || task.State == lethe.TaskWaiting {
		return r.enqueueFinish(ctx, req)
	}
	task.State, task.Attempts, task.UpdatedAt = lethe.TaskRunning, job.Attempt, r.c.Now().UTC()
	if err := r.c.Store.PutTasks(ctx, []lethe.RequestTask{task}); err != nil {
		return err
	}
	report, runErr := r.run(ctx, req, &task)
	task.UpdatedAt = r.c.Now().UTC()
	if runErr != nil {
		task.Error = runErr.Error()
		task.State = lethe.TaskPending
		if job.Attempt >= job.MaxAttempts {
			task.State = lethe.TaskFailed
		}
		if err := r.c.Store.PutTasks(ctx, []lethe.RequestTask{task}); err != nil {
			return err
		}
		// The request shows as partially completed while this system is
		// retried, once the others are done; this job's success later
		// completes it.
		r.enqueueFinish(ctx, req)
		r.c.Logger.Warn("request task failed", "request", req.ID, "system", a.System, "attempt", job.Attempt, "max_attempts", job.MaxAttempts, "err", runErr.Error())
		return runErr
	}
	task.Error, task.State = "", lethe.TaskDone
	if report.Pending {
		task.State = lethe.TaskWaiting
	}
	if task.Report, err = json.Marshal(report); err != nil {
		return err
	}
	if err := r.c.Store.PutTasks(ctx, []lethe.RequestTask{task}); err != nil {
		return err
	}
	if task.State == lethe.TaskWaiting {
		if err := r.enqueueReminder(ctx, r.nextReminder(req, task)); err != nil {
			return err
		}
	}
	return r.enqueueFinish(ctx, req)
}

// nextReminder is the reminder a waiting task is due next. Reminders are
// numbered by their slot (the Nth comes N×AckReminder after the waiting
// began), so that the same reminder enqueued again (after a crash, by the
// sweep) is one job.
func (r *Runner) nextReminder(req *lethe.Request, task lethe.RequestTask) RemindArgs {
	n := int(r.c.Now().Sub(task.UpdatedAt)/r.c.AckReminder) + 1
	return RemindArgs{RequestID: req.ID, Tenant: req.Tenant, System: task.System, Since: task.UpdatedAt, N: max(n, 1)}
}

// RemindArgs is the job that reminds a system waited for, or gives up
// waiting. Since is when the waiting began; N counts the reminders.
type RemindArgs struct {
	RequestID string    `json:"request_id"`
	Tenant    string    `json:"tenant"`
	System    string    `json:"system"`
	Since     time.Time `json:"since"`
	N         int       `json:"n"`
}

// Kind implements river.JobArgs.
func (RemindArgs) Kind() string { return "request_remind" }

// enqueueReminder schedules reminder a in its slot, or at the timeout if
// that comes first.
func (r *Runner) enqueueReminder(ctx context.Context, a RemindArgs) error {
	q, err := r.q()
	if err != nil {
		return err
	}
	at := a.Since.Add(time.Duration(a.N) * r.c.AckReminder)
	if end := a.Since.Add(r.c.AckTimeout); end.Before(at) {
		at = end
	}
	return q.Insert(ctx, a, &river.InsertOpts{ScheduledAt: at, UniqueOpts: river.UniqueOpts{ByArgs: true}})
}

// remind runs when a system has waited AckReminder for its
// acknowledgement: past AckTimeout its task fails (the request shows as
// partially completed, for staff); before, the system's part is sent
// again (a third party's notification carries the same idempotency key)
// and the DPO is mailed.
func (r *Runner) remind(ctx context.Context, job *river.Job[RemindArgs]) error {
	a := job.Args
	req, err := r.c.Store.Request(ctx, a.Tenant, a.RequestID)
	if err != nil || !req.State.Open() {
		return err
	}
	tasks, err := r.c.Store.Tasks(ctx, a.RequestID)
	if err != nil {
		return err
	}
	i := slices.IndexFunc(tasks, func(t lethe.RequestTask) bool { return t.System == a.System })
	if i < 0 || tasks[i].State != lethe.TaskWaiting {
		return nil // acknowledged, or run again since
	}
	task := tasks[i]
	now := r.c.Now().UTC()
	if !now.Before(a.Since.Add(r.c.AckTimeout)) {
		task.State, task.UpdatedAt = lethe.TaskFailed, now
		task.Error = fmt.Sprintf("system %s did not acknowledge within %s; ask it, then record its answer (request done) or retry", a.System, r.c.AckTimeout)
		if err := record(ctx, r.c.Audit, now, actorOf(req), "request.ack_timeout", "failed", req); err != nil {
			return err
		}
		if err := r.c.Store.PutTasks(ctx, []lethe.RequestTask{task}); err != nil {
			return err
		}
		return r.enqueueFinish(ctx, req)
	}
	if err := record(ctx, r.c.Audit, now, actorOf(req), "request.remind", "ok", req); err != nil {
		return err
	}
	if err := r.notifyAgain(ctx, req, a.System); err != nil {
		// The reminder is late, not lost: the next one, or the timeout,
		// follows regardless.
		r.c.Logger.Warn("request reminder not sent to the system", "request", req.ID, "system", a.System, "err", err.Error())
	}
	if r.c.Mail != nil && r.c.Summary.Contact != "" {
		msg := mail.Message{To: r.c.Summary.Contact, Subject: fmt.Sprintf("Request %s waits for %s", req.ID, a.System),
			Text: fmt.Sprintf("Request %s (%s, due %s) has waited since %s for system %s to acknowledge its part.\n\n"+
				"It was reminded again. If it has not answered by %s, its part is marked failed, for you to chase.\n"+
				"Once it has done its part: lethe request done %s --system %s --count N\n",
				req.ID, req.Type, req.DueAt.Format(time.DateOnly), a.Since.Format(time.DateTime+" MST"), a.System,
				a.Since.Add(r.c.AckTimeout).Format(time.DateTime+" MST"), req.ID, a.System)}
		if err := r.c.Mail.Send(ctx, msg); err != nil {
			r.c.Logger.Warn("request reminder not mailed to the DPO", "request", req.ID, "system", a.System, "err", err.Error())
		}
	}
	// The next slot from now: after downtime, missed reminders are not
	// sent in a burst.
	next := r.nextReminder(req, task)
	next.N = max(next.N, a.N+1)
	return r.enqueueReminder(ctx, next)
}

// notifyAgain sends a waiting system its part of a request again.
func (r *Runner) notifyAgain(ctx context.Context, req *lethe.Request, system string) error {
	s, err := r.subject(ctx, req)
	if err != nil {
		return err
	}
	conn, err := r.conn(ctx, system)
	if err != nil {
		return err
	}
	switch req.Type {
	case lethe.RequestErasure:
		if er, ok := conn.(connector.Eraser); ok {
			_, err = er.Erase(ctx, s)
		}
	case lethe.RequestRectification:
		if rc, ok := conn.(connector.Rectifier); ok {
			d, derr := r.details(req)
			if derr != nil {
				return derr
			}
			_, err = rc.Rectify(ctx, s, d.Values)
		}
	}
	return err
}

func (r *Runner) enqueueFinish(ctx context.Context, req *lethe.Request) error {
	q, err := r.q()
	if err != nil {
		return err
	}
	return q.Insert(ctx, FinishArgs{RequestID: req.ID, Tenant: req.Tenant}, nil)
}

// subject is whom the connectors look for: the vault's subject with its
// identifiers, or, for a person the vault does not hold, the address the
// request came from.
func (r *Runner) subject(ctx context.Context, req *lethe.Request) (connector.Subject, error) {
	s := connector.Subject{ID: req.SubjectID, Now: r.c.Now(), RequestID: req.ID, Tenant: req.Tenant}
	contact, err := r.c.OpenSeal(req.Contact, ad("request-contact", req.Tenant, req.ID))
	if err != nil {
		return s, fmt.Errorf("request %s: open contact: %w", req.ID, err)
	}
	s.Identifiers = map[string]string{lethe.KindEmail: string(contact)}
	if req.SubjectID == "" {
		key := make([]byte, 32)
		rand.Read(key) // a person Lethe holds no key for: pseudonyms under a key nobody keeps
		s.PseudonymKey = key
		return s, nil
	}
	v, err := r.c.Vault.ReadSubject(ctx, actorOf(req), req.Tenant, req.SubjectID, lethe.ReadOptions{})
	if err != nil {
		return s, fmt.Errorf("request %s: read subject: %w", req.ID, err)
	}
	for k, val := range v.Identifiers {
		s.Identifiers[k] = val
	}
	if s.PseudonymKey, err = r.c.PseudonymKey(ctx, req.Tenant, req.SubjectID); err != nil {
		return s, fmt.Errorf("request %s: pseudonym key: %w", req.ID, err)
	}
	return s, nil
}

// run carries out the request in one system and returns its report.
func (r *Runner) run(ctx context.Context, req *lethe.Request, task *lethe.RequestTask) (connector.Report, error) {
	system := task.System
	rep := connector.Report{System: system, At: r.c.Now().UTC()}
	s, err := r.subject(ctx, req)
	if err != nil {
		return rep, err
	}
	conn, err := r.conn(ctx, system)
	if err != nil {
		return rep, err
	}
	switch req.Type {
	case lethe.RequestErasure:
		er, ok := conn.(connector.Eraser)
		if !ok {
			return rep, fmt.Errorf("system %s cannot erase", system)
		}
		return r.erase(ctx, er, s, task)
	case lethe.RequestAccess, lethe.RequestPortability:
		ex, ok := conn.(connector.Exporter)
		if !ok {
			counts, err := conn.Find(ctx, s)
			rep.Steps = countSteps(counts, "found")
			return rep, err
		}
		sink := &archiveSink{}
		counts, err := ex.Export(ctx, s, sink)
		if err != nil {
			return rep, err
		}
		if err := r.writeArchivePart(ctx, req, system, sink); err != nil {
			return rep, err
		}
		rep.Steps = countSteps(counts, "export")
		return rep, nil
	case lethe.RequestRectification:
		rc, ok := conn.(connector.Rectifier)
		if !ok {
			return rep, nil // nothing to correct in a system that cannot be rewritten; the report says so
		}
		d, err := r.details(req)
		if err != nil {
			return rep, err
		}
		return rc.Rectify(ctx, s, d.Values)
	case lethe.RequestRestriction, lethe.RequestObjection:
		// Recorded in the consent ledger once every system is done; a
		// system whose map marks restricted rows (a flag column) is
		// marked here.
		rs, ok := conn.(connector.Restricter)
		if !ok {
			return rep, nil
		}
		d, err := r.details(req)
		if err != nil {
			return rep, err
		}
		objection := ""
		if req.Type == lethe.RequestObjection {
			objection = d.Purpose
		}
		return rs.Restrict(ctx, s, objection)
	}
	return rep, nil
}

// erase erases the subject in one system so that the receipt tells what
// was done even if Lethe dies between the system's commit and the task's:
// the plan is stored on the task first, and an attempt that then finds
// nothing left to do reports the plan an earlier attempt carried out.
func (r *Runner) erase(ctx context.Context, er connector.Eraser, s connector.Subject, task *lethe.RequestTask) (connector.Report, error) {
	var earlier connector.Report
	if len(task.Report) > 0 {
		json.Unmarshal(task.Report, &earlier) // ours; unreadable means none
	}
	plan, err := er.PlanErase(ctx, s)
	if err != nil {
		return plan, err
	}
	if plan.Total() > 0 {
		if task.Report, err = json.Marshal(plan); err != nil {
			return plan, err
		}
		if err := r.c.Store.PutTasks(ctx, []lethe.RequestTask{*task}); err != nil {
			return plan, err
		}
	}
	rep, err := er.Erase(ctx, s)
	if err != nil {
		return rep, err
	}
	if rep.Total() == 0 && !rep.Pending && earlier.Total() > 0 {
		earlier.Steps = append(earlier.Steps, connector.Step{Location: task.System, Action: "resumed", Note: "carried out by an earlier attempt, interrupted before it was recorded; this attempt found nothing left"})
		return earlier, nil
	}
	return rep, nil
}

func countSteps(counts []connector.Count, action string) []connector.Step {
	var steps []connector.Step
	for _, c := range counts {
		steps = append(steps, connector.Step{Location: c.Location, Action: action, Count: c.Count})
	}
	return steps
}

// archiveSink collects one system's export.
type archiveSink struct {
	Records []archiveRecord `json:"records"`
	Files   []archiveFile   `json:"files,omitempty"`
}

type archiveRecord struct {
	Location string         `json:"location"`
	Fields   map[string]any `json:"fields"`
	Columns  []string       `json:"columns"`
}

type archiveFile struct {
	Location string `json:"location"`
	Name     string `json:"name"`
	Data     []byte `json:"data"`
}

func (a *archiveSink) Record(location string, columns []string, values []any) error {
	f := make(map[string]any, len(columns))
	for i, c := range columns {
		f[c] = values[i]
	}
	a.Records = append(a.Records, archiveRecord{Location: location, Fields: f, Columns: columns})
	return nil
}

func (a *archiveSink) File(location, name string, data []byte) error {
	a.Files = append(a.Files, archiveFile{Location: location, Name: name, Data: data})
	return nil
}

// writeArchivePart seals one system's export into the request's archive
// in the store, where every instance reaches it, replacing a part an
// earlier attempt wrote.
func (r *Runner) writeArchivePart(ctx context.Context, req *lethe.Request, system string, sink *archiveSink) error {
	b, err := json.Marshal(sink)
	if err != nil {
		return fmt.Errorf("request %s: archive %s: %w", req.ID, system, err)
	}
	sealed := r.c.Seal(b, ad("request-archive", req.Tenant, req.ID, system))
	// Kept until the archive is built, at the latest a week past the
	// latest the request may be due: a request stuck for longer leaves no
	// personal data behind.
	return r.c.Store.PutArchive(ctx, req.ID, partName(system), sealed, lethe.RequestLatestDue(req.ReceivedAt).Add(DownloadTTL))
}

// partName is the name a system's part of an archive is stored under.
func partName(system string) string { return "part:" + system }

// readPart opens one system's part of a request's access archive;
// ENOTFOUND if it has none.
func (r *Runner) readPart(ctx context.Context, req *lethe.Request, system string) ([]byte, error) {
	sealed, err := r.c.Store.Archive(ctx, req.ID, partName(system))
	if err != nil {
		return nil, err
	}
	return r.c.OpenSeal(sealed, ad("request-archive", req.Tenant, req.ID, system))
}

// Acknowledge records that a system which answered "later" (a third
// party, a person with a checklist) has done its part of a request, with
// how much it held, and lets the request finish. ENOTFOUND for a request
// or system that does not exist; ECONFLICT unless the task is waiting.
func (r *Runner) Acknowledge(ctx context.Context, tenant, id, system string, count int64, note string) (*lethe.Request, error) {
	req, err := r.c.Store.Request(ctx, tenant, id)
	if err != nil {
		return nil, err
	}
	tasks, err := r.c.Store.Tasks(ctx, id)
	if err != nil {
		return nil, err
	}
	for _, t := range tasks {
		if t.System != system {
			continue
		}
		if t.State == lethe.TaskDone {
			return req, nil // acknowledged already
		}
		var rep connector.Report
		if len(t.Report) > 0 {
			json.Unmarshal(t.Report, &rep) // a report of ours; an unreadable one is replaced
		}
		// Waiting, or given up on after AckTimeout: a late answer counts.
		if t.State != lethe.TaskWaiting && (t.State != lethe.TaskFailed || !rep.Pending) {
			return nil, lethe.Errorf(lethe.ECONFLICT, "request %s: system %s is %s, not waiting for an acknowledgement", id, system, t.State)
		}
		rep.Pending = false
		rep.Steps = append(rep.Steps, connector.Step{Location: system, Action: "acknowledged", Count: count, Note: note})
		t.State, t.UpdatedAt, t.Error = lethe.TaskDone, r.c.Now().UTC(), ""
		if t.Report, err = json.Marshal(rep); err != nil {
			return nil, err
		}
		if err := record(ctx, r.c.Audit, t.UpdatedAt, lethe.Actor{KeyID: "system:" + system}, "request.acknowledge", "ok", req); err != nil {
			return nil, err
		}
		if err := r.c.Store.PutTasks(ctx, []lethe.RequestTask{t}); err != nil {
			return nil, err
		}
		return req, r.enqueueFinish(ctx, req)
	}
	return nil, lethe.Errorf(lethe.ENOTFOUND, "request %s has no system %s", id, system)
}

// Resume picks up every approved, running or partially completed request
// of every tenant: enqueues the jobs of their unfinished systems and a
// finish. Lethe calls it at start and every minute, so that a request
// whose approval or whose last task was recorded just before a crash,
// with its job not yet enqueued, still runs. It is idempotent (jobs are
// unique by their arguments) and returns how many requests it looked at.
// It also deletes the access archives whose link expired undownloaded.
func (r *Runner) Resume(ctx context.Context) (int, error) {
	q, err := r.q()
	if err != nil {
		return 0, err
	}
	if n, err := r.c.Store.PruneArchives(ctx, r.c.Now()); err != nil {
		r.c.Logger.Warn("expired access archives not deleted; the next sweep tries again", "err", err.Error())
	} else if n > 0 {
		r.c.Logger.Info("expired access archive pieces deleted", "pieces", n)
	}
	f := lethe.RequestFilter{AllTenants: true, States: []lethe.RequestState{lethe.RequestApproved, lethe.RequestRunning, lethe.RequestPartial}, Limit: lethe.RequestListLimit}
	n := 0
	for {
		page, err := r.c.Store.ListRequests(ctx, f)
		if err != nil {
			return n, err
		}
		for i := range page {
			req := &page[i]
			n++
			if req.State == lethe.RequestApproved {
				if err := r.Start(ctx, req); err != nil {
					return n, err
				}
				continue
			}
			tasks, err := r.c.Store.Tasks(ctx, req.ID)
			if err != nil {
				return n, err
			}
			for _, t := range tasks {
				switch t.State {
				case lethe.TaskPending, lethe.TaskRunning:
					if err := q.Insert(ctx, TaskArgs{RequestID: req.ID, Tenant: req.Tenant, System: t.System}, unique); err != nil {
						return n, err
					}
				case lethe.TaskWaiting:
					if err := r.enqueueReminder(ctx, r.nextReminder(req, t)); err != nil {
						return n, err
					}
				}
			}
			if err := r.enqueueFinish(ctx, req); err != nil {
				return n, err
			}
		}
		if len(page) < f.Limit {
			return n, nil
		}
		last := page[len(page)-1]
		f.AfterDue, f.AfterID = last.DueAt, last.ID
	}
}

// Callback takes a third party's signed acknowledgement of its part of a
// request (RunnerConfig.Callback checks and reads it).
func (r *Runner) Callback(ctx context.Context, system, signature string, body []byte) error {
	if r.c.Callback == nil {
		return lethe.Errorf(lethe.ENOTFOUND, "no system takes callbacks here")
	}
	tenant, id, count, err := r.c.Callback(system, signature, body)
	if err != nil {
		return err
	}
	_, err = r.Acknowledge(ctx, tenant, id, system, count, "acknowledged by the third party")
	return err
}

// Retry runs again the tasks of a partially completed request that are
// not done: after a system's job gave up, once the system is back. It is
// idempotent.
func (r *Runner) Retry(ctx context.Context, req *lethe.Request) error {
	if req.State != lethe.RequestPartial {
		return lethe.Errorf(lethe.ECONFLICT, "request %s is %s, not partially completed", req.ID, req.State)
	}
	q, err := r.q()
	if err != nil {
		return err
	}
	tasks, err := r.c.Store.Tasks(ctx, req.ID)
	if err != nil {
		return err
	}
	var again []lethe.RequestTask
	for _, t := range tasks {
		if t.State == lethe.TaskFailed || t.State == lethe.TaskPending {
			t.State, t.UpdatedAt = lethe.TaskPending, r.c.Now().UTC()
			again = append(again, t)
		}
	}
	if err := r.c.Store.PutTasks(ctx, again); err != nil {
		return err
	}
	req.State, req.UpdatedAt = lethe.RequestRunning, r.c.Now().UTC()
	if err := r.update(ctx, "request.retry", req); err != nil {
		return err
	}
	for _, t := range again {
		if err := q.Insert(ctx, TaskArgs{RequestID: req.ID, Tenant: req.Tenant, System: t.System}, unique); err != nil {
			return err
		}
	}
	return r.enqueueFinish(ctx, req)
}

// Receipt is the signed record of an erasure.
type Receipt struct {
	RequestID      string          `json:"request_id"`
	Tenant         string          `json:"tenant"`
	SubjectID      string          `json:"subject_id,omitempty"`
	Type           string          `json:"type"`
	ReceivedAt     time.Time       `json:"received_at"`
	Systems        []ReceiptSystem `json:"systems"`
	KeyDestroyedAt *time.Time      `json:"key_destroyed_at,omitempty"`
	CompletedAt    time.Time       `json:"completed_at"`
}

// ReceiptSystem is one system's part of a receipt.
type ReceiptSystem struct {
	System string            `json:"system"`
	State  lethe.TaskState   `json:"state"`
	Report *connector.Report `json:"report,omitempty"`
}

// SignedReceipt is a receipt and its signature over the receipt's JSON.
type SignedReceipt struct {
	Receipt   json.RawMessage `json:"receipt"`
	Signature string          `json:"signature"` // base64
}

// finishLease is how long a finish job holds a request: longer than a
// job may run (jobs.DefaultJobTimeout).
const finishLease = 2 * time.Minute

// finish closes a request once none of its tasks is pending or running:
// completed if every system is done (for an erasure, after destroying the
// subject's key and signing the receipt), else partially completed.
func (r *Runner) finish(ctx context.Context, job *river.Job[FinishArgs]) error {
	req, err := r.c.Store.Request(ctx, job.Args.Tenant, job.Args.RequestID)
	if err != nil {
		return err
	}
	if !req.State.Open() {
		return nil
	}
	tasks, err := r.c.Store.Tasks(ctx, req.ID)
	if err != nil {
		return err
	}
	allDone := true
	for _, t := range tasks {
		switch {
		case t.State == lethe.TaskDone:
		case t.State == lethe.TaskRunning, t.State == lethe.TaskPending && t.Error == "":
			return nil // a later task's end finishes it
		default: // failed, waiting, or pending a retry after an error
			allDone = false
		}
	}
	now := r.c.Now().UTC()
	if req.State == lethe.RequestApproved {
		req.State, req.UpdatedAt = lethe.RequestRunning, now
		if err := r.update(ctx, "request.running", req); err != nil {
			return err
		}
	}
	if !allDone {
		if req.State == lethe.RequestPartial {
			return nil
		}
		req.State, req.UpdatedAt = lethe.RequestPartial, now
		return r.update(ctx, "request.partially_completed", req)
	}
	// Claim the finishing: one finish job at a time carries it out (a
	// finish enqueued by each system's end may start while another is
	// still recording, mailing or destroying the key). If the holder
	// dies, its lease runs out and the sweep's finish takes over.
	if ok, err := r.c.Store.ClaimFinish(ctx, req.Tenant, req.ID, fmt.Sprintf("job:%d", job.ID), now, now.Add(finishLease)); err != nil || !ok {
		return err
	}
	// Each step below may run again (this job retried, or another finish
	// after the lease ran out), and none has effect twice: the archive is
	// built once, the ledger records once, the vault's erasure and
	// correction are idempotent, and the receipt, once stored, is kept.
	note := ""
	switch req.Type {
	case lethe.RequestAccess, lethe.RequestPortability:
		var systems []string
		for _, t := range tasks {
			systems = append(systems, t.System)
		}
		if err := r.deliver(ctx, req, systems); err != nil {
			return err
		}
		if err := r.forgetPassphrase(req); err != nil {
			return err
		}
	case lethe.RequestRestriction, lethe.RequestObjection:
		if req.SubjectID != "" {
			if err := r.record(ctx, req); err != nil {
				return err
			}
		}
	case lethe.RequestRectification:
		if req.SubjectID != "" {
			if note, err = r.rectifyVault(ctx, req); err != nil {
				return err
			}
		}
	case lethe.RequestErasure:
		if len(req.Receipt) == 0 {
			if err := r.receipt(ctx, req, tasks); err != nil {
				return err
			}
		}
	}
	if req.Type != lethe.RequestAccess && req.Type != lethe.RequestPortability { // those were sent their archive
		d, err := r.details(req)
		if err != nil {
			return err
		}
		// Told before the request is marked done: a crash in between tells
		// them twice rather than never.
		if err := tell(ctx, r.c.Mail, r.c.OpenSeal, r.c.Summary.Organisation, req, "Your request is done", doneText(req, r.c.Summary.Organisation, d.Purpose, note)); err != nil {
			return err
		}
	}
	closed := r.c.Now().UTC()
	if err := record(ctx, r.c.Audit, closed, actorOf(req), "request.completed", "ok", req); err != nil {
		return err
	}
	return r.save(ctx, req, func(cur *lethe.Request) {
		cur.State, cur.ClosedAt, cur.UpdatedAt = lethe.RequestCompleted, &closed, closed
		cur.Receipt, cur.Details = req.Receipt, req.Details
	})
}

// receipt destroys an erased subject's key and its other requests'
// archives, then signs the receipt, chains its hash into the audit log
// and stores it on the request, so that a finish run again keeps it.
func (r *Runner) receipt(ctx context.Context, req *lethe.Request, tasks []lethe.RequestTask) error {
	rc := Receipt{RequestID: req.ID, Tenant: req.Tenant, SubjectID: req.SubjectID, Type: string(req.Type), ReceivedAt: req.ReceivedAt}
	for _, t := range tasks {
		s := ReceiptSystem{System: t.System, State: t.State}
		if len(t.Report) > 0 {
			var rep connector.Report
			if json.Unmarshal(t.Report, &rep) == nil {
				s.Report = &rep
			}
		}
		rc.Systems = append(rc.Systems, s)
	}
	if req.SubjectID != "" {
		_, err := r.c.Vault.EraseSubject(ctx, actorOf(req), req.Tenant, req.SubjectID)
		if code := lethe.ErrorCode(err); err != nil && code != lethe.EGONE && code != lethe.ENOTFOUND {
			return fmt.Errorf("request %s: erase subject: %w", req.ID, err)
		}
		destroyed := r.c.Now().UTC()
		rc.KeyDestroyedAt = &destroyed
		// Archives of the subject's other requests are sealed under the
		// deployment's key, not the subject's: delete them too.
		others, err := r.c.Store.ListRequests(ctx, lethe.RequestFilter{Tenant: req.Tenant, SubjectID: req.SubjectID, Limit: lethe.RequestListLimit})
		if err != nil {
			return fmt.Errorf("request %s: the subject's requests: %w", req.ID, err)
		}
		for _, o := range others {
			if err := r.c.Store.DeleteArchive(ctx, o.ID); err != nil {
				return fmt.Errorf("request %s: delete the archive of request %s: %w", req.ID, o.ID, err)
			}
		}
	}
	rc.CompletedAt = r.c.Now().UTC()
	body, err := json.Marshal(rc)
	if err != nil {
		return err
	}
	signed, err := json.Marshal(SignedReceipt{Receipt: body, Signature: base64.StdEncoding.EncodeToString(r.c.Sign(body))})
	if err != nil {
		return err
	}
	// The receipt's hash goes into the tamper-evident log: a receipt shown
	// later is the one Lethe signed, and none went missing.
	sum := sha256.Sum256(signed)
	ev := lethe.AuditEvent{Time: rc.CompletedAt, Action: "request.receipt", Outcome: "ok", KeyID: actorOf(req).KeyID, Role: actorOf(req).Role,
		Tenant: req.Tenant, SubjectID: req.SubjectID, Resource: "request:" + req.ID + "/receipt/sha256:" + hex.EncodeToString(sum[:])}
	if err := r.c.Audit.Record(ctx, ev); err != nil {
		return fmt.Errorf("request %s: audit the receipt: %w", req.ID, err)
	}
	req.Receipt = signed
	return r.save(ctx, req, func(cur *lethe.Request) { cur.Receipt = signed })
}

// save stores a change to a request made by apply, applied to the stored
// request afresh if staff changed it meanwhile (an extension while it
// runs), and leaves the result in req.
func (r *Runner) save(ctx context.Context, req *lethe.Request, apply func(*lethe.Request)) error {
	cur := *req
	for range 5 {
		apply(&cur)
		err := r.c.Store.UpdateRequest(ctx, &cur)
		if err == nil {
			*req = cur
			return nil
		}
		if lethe.ErrorCode(err) != lethe.ECONFLICT {
			return err
		}
		fresh, err := r.c.Store.Request(ctx, req.Tenant, req.ID)
		if err != nil {
			return err
		}
		cur = *fresh
	}
	return lethe.Errorf(lethe.ECONFLICT, "request %s kept changing while it was finished", req.ID)
}

// record writes a restriction or an objection into the consent ledger,
// once: a finish run again finds the request completed and stops before.
func (r *Runner) record(ctx context.Context, req *lethe.Request) error {
	if r.c.Ledger == nil {
		return fmt.Errorf("request %s: no consent ledger to record the %s in", req.ID, req.Type)
	}
	d, err := r.details(req)
	if err != nil {
		return err
	}
	// Recorded already by an earlier run of this finish (a retry after a
	// crash, or a racing job)? The events name the request as recorder.
	hist, err := r.c.Ledger.History(ctx, actorOf(req), req.Tenant, req.SubjectID)
	if err != nil {
		return fmt.Errorf("request %s: consent history: %w", req.ID, err)
	}
	for _, ev := range hist {
		if ev.KeyID == actorOf(req).KeyID {
			return nil
		}
	}
	rec := lethe.ConsentRecord{SubjectID: req.SubjectID, Kind: lethe.ConsentRestrict, Channel: "request", Reason: d.Reason}
	if req.Type == lethe.RequestObjection {
		rec.Kind, rec.Purpose = lethe.ConsentObject, d.Purpose
	}
	if _, err := r.c.Ledger.Record(ctx, actorOf(req), req.Tenant, []lethe.ConsentRecord{rec}); err != nil {
		return fmt.Errorf("request %s: record the %s: %w", req.ID, req.Type, err)
	}
	return nil
}

// details opens what a request asks beyond its type: the purpose objected
// to, the corrected values, the reason.
func (r *Runner) details(req *lethe.Request) (details, error) {
	var d details
	if len(req.Details) == 0 {
		return d, nil
	}
	raw, err := r.c.OpenSeal(req.Details, ad("request-details", req.Tenant, req.ID))
	if err != nil {
		return d, fmt.Errorf("request %s: open details: %w", req.ID, err)
	}
	if err := json.Unmarshal(raw, &d); err != nil {
		return d, fmt.Errorf("request %s: details: %w", req.ID, err)
	}
	return d, nil
}

// identifierKinds are the data categories a vault identifier holds.
var identifierKinds = map[string]string{
	"user.contact.email":        lethe.KindEmail,
	"user.contact.phone_number": lethe.KindPhone,
	"user.account.username":     lethe.KindLogin,
}

// rectifyVault writes a rectification's corrected identifiers into the
// vault. It runs once every system is done, because until then the
// systems find the person by the identifiers as they were. Writing the
// same value again changes nothing, so a finish run twice is harmless. A
// corrected identifier another subject holds is left as it was, audited,
// and the returned note tells the person.
func (r *Runner) rectifyVault(ctx context.Context, req *lethe.Request) (string, error) {
	d, err := r.details(req)
	if err != nil {
		return "", err
	}
	set := map[string]string{}
	for category, v := range d.Values {
		if kind, ok := identifierKinds[category]; ok {
			set[kind] = v
		}
	}
	if len(set) == 0 {
		return "", nil
	}
	_, err = r.c.Vault.UpdateSubject(ctx, actorOf(req), req.Tenant, req.SubjectID, lethe.ProfileChange{SetIdentifiers: set, Reason: "rectification request " + req.ID})
	if lethe.ErrorCode(err) == lethe.ECONFLICT {
		if err := record(ctx, r.c.Audit, r.c.Now(), actorOf(req), "request.rectify_vault", "conflict", req); err != nil {
			return "", err
		}
		return "The address or number we know you by was not changed in our records: another account uses it. Write to us if it is yours.", nil
	}
	if err != nil {
		return "", fmt.Errorf("request %s: rectify the vault: %w", req.ID, err)
	}
	return "", nil
}

// forgetPassphrase drops the passphrase an archive was encrypted to from
// the request's details, stored with the request's completion.
func (r *Runner) forgetPassphrase(req *lethe.Request) error {
	d, err := r.details(req)
	if err != nil || d.Passphrase == "" {
		return err
	}
	d.Passphrase = ""
	b, err := json.Marshal(d)
	if err != nil {
		return err
	}
	req.Details = r.c.Seal(b, ad("request-details", req.Tenant, req.ID))
	return nil
}
