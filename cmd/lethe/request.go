package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"text/tabwriter"
	"time"
	"unicode/utf8"

	"github.com/lethe-privacy/lethe"
	"github.com/lethe-privacy/lethe/client"
	"golang.org/x/term"
)

const requestHelp = `Usage:
  lethe request create --type T (--subject ID | --contact-file F) [--contact-file F] [--verified]
                       [--purpose P] [--ground G] [--values-file F] [--passphrase-file F] [--wait]
  lethe request list [--overdue | --due-within 72h] [--state S]... [--subject ID]
  lethe request show ID
  lethe request approve ID [--wait]
  lethe request retry ID [--wait]        run again the systems a partially completed request has not finished
  lethe request done ID --system S --count N [--note "…"] [--wait]
                                         a person did a manual system's checklist (or a third party confirmed)
  lethe request wait ID [--timeout 10m]  follow a request until it is completed, partially completed or closed
  lethe request extend ID --by 30d|--until 2026-09-01 --reason "…"
  lethe request cancel ID --reason "…"
  lethe request reject ID --reason "…"

Types: access, portability, rectification, erasure, restriction, objection. The
person's address (where the code and the results go) is read from a file, or from
standard input with --contact-file -, so that it does not show in the process list or
the shell history; so are rectification values (a JSON object, data category → value)
and the passphrase an access or portability archive is encrypted to (age), if the
person chose one.
Every command takes --json to print JSON for scripts, and the client flags (--url,
--key-file, …; the key needs the requests.* permissions: a dpo or support key).

wait (also: watch), and --wait after create, approve, retry or done, poll the request
every 250ms until it is completed, rejected, cancelled or partially completed with
nothing left running, for at most --timeout. On a terminal they redraw a bar of the
systems done and each system's state; otherwise they print a line per change. Then they
print the request (with --json, only the request's JSON) and exit:
  0  completed
  3  partially completed: a system failed, waits for a person or a third party
     (lethe request done), or is retrying; lethe request retry runs it again
  4  rejected
  5  cancelled
  6  --timeout passed (the request goes on in the server: wait again to follow it)
  130 interrupted (Ctrl-C)
and, as every command, 1 on an error and 2 on bad usage.
`

type stateFlags []lethe.RequestState

func (f *stateFlags) String() string { return fmt.Sprint(*f) }
func (f *stateFlags) Set(v string) error {
	*f = append(*f, lethe.RequestState(v))
	return nil
}

func (m *Main) request(ctx context.Context, args []string) error {
	if len(args) == 0 {
		return usageErrorf("request needs a subcommand: create, list, show, approve, retry, done, wait, extend, cancel or reject\n\n%s", requestHelp)
	}
	sub := args[0]
	fset := m.commandFlags("request "+sub, requestHelp)
	var cf clientFlags
	cf.bind(fset, m.Getenv)
	asJSON := fset.Bool("json", false, "print JSON")
	typ := fset.String("type", "", "request type (create)")
	subject := fset.String("subject", "", "the subject's ID (create, list)")
	contactFile := fset.String("contact-file", "", "file holding the person's email address, - for standard input (create)")
	verified := fset.Bool("verified", false, "you verified the person's identity yourself: send no code (create)")
	purpose := fset.String("purpose", "", "the purpose objected to (create, objection)")
	ground := fset.String("ground", "", "the ground of a restriction or objection: "+strings.Join(lethe.ConsentReasons, ", ")+" (create)")
	valuesFile := fset.String("values-file", "", "JSON object of corrected values by data category, - for standard input (create, rectification)")
	passphraseFile := fset.String("passphrase-file", "", "file holding the passphrase the person chose to encrypt their archive to (age), - for standard input (create, access and portability)")
	overdue := fset.Bool("overdue", false, "only open requests past their due date (list)")
	dueWithin := fset.Duration("due-within", 0, "only open requests due within this time (list)")
	var states stateFlags
	fset.Var(&states, "state", "only requests in this state; repeatable (list)")
	by := fset.String("by", "", "extend by this long: 30d, 6w, 2mo (extend)")
	until := fset.String("until", "", "extend until this date, YYYY-MM-DD (extend)")
	reason := fset.String("reason", "", "why (extend, cancel, reject)")
	system := fset.String("system", "", "the system whose part is done (done)")
	count := fset.Int64("count", 0, "records the system held, erased or corrected (done)")
	note := fset.String("note", "", "what was done (done)")
	wait := fset.Bool("wait", false, "then follow the request until it is completed, partially completed or closed (create, approve, retry, done)")
	timeout := fset.Duration("timeout", 10*time.Minute, "how long to follow the request before giving up with exit status 6 (wait, --wait)")
	// The request ID may come before, among or after the flags.
	var id string
	for rest := args[1:]; ; {
		if err := parse(fset, rest); err != nil {
			return err
		}
		if fset.NArg() == 0 {
			break
		}
		if id != "" {
			return usageErrorf("request %s takes one request ID, not also %q", sub, fset.Arg(0))
		}
		id, rest = fset.Arg(0), fset.Args()[1:]
	}
	if sub == "watch" {
		sub = "wait"
	}
	if *wait && !slices.Contains([]string{"create", "approve", "retry", "done"}, sub) {
		return usageErrorf("--wait goes with create, approve, retry or done; to follow a request, lethe request wait ID")
	}
	if *timeout <= 0 {
		return usageErrorf("--timeout must be positive, like 10m")
	}
	c, err := cf.client(m.Getenv)
	if err != nil {
		return err
	}
	needID := func() error {
		if !lethe.ValidRequestID(id) {
			return usageErrorf("request %s needs a request ID (req_…)", sub)
		}
		return nil
	}
	var view *client.RequestView
	switch sub {
	case "create":
		in := lethe.RequestAsk{Type: lethe.RequestType(*typ), SubjectID: *subject, Purpose: *purpose, Reason: *ground, Verified: *verified}
		// Standard input can be read once: a second flag reading it would
		// get nothing, and an empty passphrase would send the archive
		// unencrypted.
		var fromStdin []string
		for _, f := range []struct{ name, value string }{{"--contact-file", *contactFile}, {"--values-file", *valuesFile}, {"--passphrase-file", *passphraseFile}} {
			if f.value == "-" {
				fromStdin = append(fromStdin, f.name)
			}
		}
		if len(fromStdin) > 1 {
			return usageErrorf("only one of %s can read standard input (-); give the others a file", strings.Join(fromStdin, ", "))
		}
		if *contactFile != "" {
			b, err := m.readArgFile(*contactFile)
			if err != nil {
				return err
			}
			in.Contact = strings.TrimSpace(string(b))
		}
		if *passphraseFile != "" {
			b, err := m.readArgFile(*passphraseFile)
			if err != nil {
				return err
			}
			in.Passphrase = strings.TrimRight(string(b), "\r\n")
			if in.Passphrase == "" {
				// Without a passphrase the archive would go out
				// unencrypted: never so because a file was empty.
				return usageErrorf("--passphrase-file holds no passphrase; leave the flag out for an archive that is not encrypted")
			}
		}
		if *valuesFile != "" {
			b, err := m.readArgFile(*valuesFile)
			if err != nil {
				return err
			}
			if err := json.Unmarshal(b, &in.Values); err != nil {
				return usageErrorf("--values-file must hold a JSON object of data category → value")
			}
		}
		if view, err = c.CreateRequest(ctx, in); err != nil {
			return err
		}
	case "list":
		f := lethe.RequestFilter{States: states, SubjectID: *subject, Limit: lethe.RequestListLimit}
		if *overdue || *dueWithin > 0 {
			if len(f.States) == 0 {
				f.States = []lethe.RequestState{lethe.RequestReceived, lethe.RequestVerified, lethe.RequestAwaitingApproval, lethe.RequestApproved, lethe.RequestRunning, lethe.RequestPartial}
			}
			f.DueBefore = time.Now().Add(*dueWithin)
		}
		list, err := c.ListRequests(ctx, f)
		if err != nil {
			return err
		}
		if *asJSON {
			return writeJSONTo(m.Stdout, list)
		}
		printRequests(m.Stdout, list)
		return nil
	case "show":
		if err := needID(); err != nil {
			return err
		}
		if view, err = c.Request(ctx, id); err != nil {
			return err
		}
	case "approve":
		if err := needID(); err != nil {
			return err
		}
		if view, err = c.ApproveRequest(ctx, id); err != nil {
			return err
		}
	case "done":
		if err := needID(); err != nil {
			return err
		}
		if *system == "" {
			return usageErrorf("done needs --system")
		}
		if view, err = c.AcknowledgeSystem(ctx, id, *system, *count, *note); err != nil {
			return err
		}
	case "retry":
		if err := needID(); err != nil {
			return err
		}
		if view, err = c.RetryRequest(ctx, id); err != nil {
			return err
		}
	case "wait":
		if err := needID(); err != nil {
			return err
		}
		return m.followRequest(ctx, c, id, *timeout, *asJSON)
	case "extend":
		if err := needID(); err != nil {
			return err
		}
		cur, err := c.Request(ctx, id)
		if err != nil {
			return err
		}
		var to time.Time
		switch {
		case *until != "" && *by == "":
			if to, err = time.Parse(time.DateOnly, *until); err != nil {
				return usageErrorf("--until must be a date, YYYY-MM-DD")
			}
			to = to.Add(24*time.Hour - time.Second) // the end of that day
		case *by != "" && *until == "":
			p, err := parsePeriodFlag(*by)
			if err != nil {
				return err
			}
			to = p(cur.DueAt)
		default:
			return usageErrorf("extend needs --by or --until")
		}
		if view, err = c.ExtendRequest(ctx, id, to, *reason); err != nil {
			return err
		}
	case "cancel", "reject":
		if err := needID(); err != nil {
			return err
		}
		state := lethe.RequestCancelled
		if sub == "reject" {
			state = lethe.RequestRejected
		}
		if view, err = c.CloseRequest(ctx, id, state, *reason); err != nil {
			return err
		}
	default:
		return usageErrorf("unknown request subcommand %q\n\n%s", sub, requestHelp)
	}
	if *wait {
		return m.followRequest(ctx, c, view.ID, *timeout, *asJSON)
	}
	if *asJSON {
		return writeJSONTo(m.Stdout, view)
	}
	printRequest(m.Stdout, view)
	return nil
}

// readArgFile reads a file a flag names, or standard input for "-".
func (m *Main) readArgFile(name string) ([]byte, error) {
	if name == "-" {
		return io.ReadAll(io.LimitReader(os.Stdin, 1<<20))
	}
	return os.ReadFile(name)
}

// parsePeriodFlag reads 30d, 6w or 2mo as a function moving a time.
func parsePeriodFlag(s string) (func(time.Time) time.Time, error) {
	var n int
	var unit string
	if _, err := fmt.Sscanf(s, "%d%s", &n, &unit); err != nil || n <= 0 {
		return nil, usageErrorf("--by must be like 30d, 6w or 2mo")
	}
	switch unit {
	case "d":
		return func(t time.Time) time.Time { return t.AddDate(0, 0, n) }, nil
	case "w":
		return func(t time.Time) time.Time { return t.AddDate(0, 0, 7*n) }, nil
	case "mo":
		return func(t time.Time) time.Time { return t.AddDate(0, n, 0) }, nil
	}
	return nil, usageErrorf("--by must be like 30d, 6w or 2mo")
}

func writeJSONTo(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func printRequests(w io.Writer, list []lethe.Request) {
	if len(list) == 0 {
		fmt.Fprintln(w, "no requests")
		return
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tTYPE\tSTATE\tSUBJECT\tRECEIVED\tDUE")
	now := time.Now()
	for _, r := range list {
		due := r.DueAt.Format(time.DateOnly)
		if r.State.Open() && r.DueAt.Before(now) {
			due += " OVERDUE"
		}
		subject := r.SubjectID
		if subject == "" {
			subject = "-"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", r.ID, r.Type, r.State, subject, r.ReceivedAt.Format(time.DateOnly), due)
	}
	tw.Flush()
}

func printRequest(w io.Writer, v *client.RequestView) {
	r := v.Request
	fmt.Fprintf(w, "%s: %s request, %s\n", r.ID, r.Type, r.State)
	if r.SubjectID != "" {
		fmt.Fprintf(w, "  subject:  %s\n", r.SubjectID)
	}
	fmt.Fprintf(w, "  received: %s (%s, by %s)\n", r.ReceivedAt.Format(time.RFC3339), r.Channel, r.CreatedBy)
	fmt.Fprintf(w, "  due:      %s", r.DueAt.Format(time.RFC3339))
	if r.ExtendedReason != "" {
		fmt.Fprintf(w, " (extended: %s)", r.ExtendedReason)
	}
	fmt.Fprintln(w)
	if r.VerifiedAt != nil {
		fmt.Fprintf(w, "  verified: %s\n", r.VerifiedAt.Format(time.RFC3339))
	}
	if r.ApprovedBy != "" {
		fmt.Fprintf(w, "  approved: by %s\n", r.ApprovedBy)
	}
	if r.ClosedAt != nil {
		fmt.Fprintf(w, "  closed:   %s", r.ClosedAt.Format(time.RFC3339))
		if r.Reason != "" {
			fmt.Fprintf(w, ": %s", r.Reason)
		}
		fmt.Fprintln(w)
	}
	if len(r.Receipt) > 0 {
		fmt.Fprintf(w, "  receipt:  signed erasure receipt, %d bytes (--json shows it)\n", len(r.Receipt))
	}
	for _, t := range v.Tasks {
		fmt.Fprintf(w, "  %s\n", taskLine(t))
	}
}

// taskLine says where one system's part of a request is. The task's error
// is the runner's, which names systems, IDs and what failed, never a
// personal value.
func taskLine(t lethe.RequestTask) string {
	s := fmt.Sprintf("system %s: %s (%d attempts)", t.System, t.State, t.Attempts)
	if t.Error != "" {
		s += ": " + t.Error
	}
	return s
}

// The exit statuses of request wait and --wait, besides 0 (completed), 1
// (an error) and 2 (bad usage); requestHelp and docs/requests.md list them.
const (
	exitPartial     = 3
	exitRejected    = 4
	exitCancelled   = 5
	exitTimeout     = 6
	exitInterrupted = 130 // as a shell reports a command ended by SIGINT
)

// requestPollInterval is how often a followed request is read: often enough
// for the bar to move smoothly, one small GET each time.
const requestPollInterval = 250 * time.Millisecond

// exitError ends a command with its own exit status; Run prints it as any
// error. Its message names the request and its state, nothing personal.
type exitError struct {
	code int
	msg  string
}

func (e *exitError) Error() string { return e.msg }

// ExitCode is the process's exit status.
func (e *exitError) ExitCode() int { return e.code }

// followRequest polls request id until it settles (see requestSettled), the
// timeout passes or ctx is cancelled, showing its progress on m.Stdout
// (nothing but the final JSON with asJSON), then prints the request and
// returns nil if it completed, or an *exitError saying how it ended.
func (m *Main) followRequest(ctx context.Context, c *client.Client, id string, timeout time.Duration, asJSON bool) error {
	pctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var p *requestProgress
	if !asJSON {
		p = newRequestProgress(m.Stdout, m.Getenv, time.Now())
	}
	tick := time.NewTicker(requestPollInterval)
	defer tick.Stop()
	var v *client.RequestView
poll:
	for {
		cur, err := c.Request(pctx, id)
		switch {
		case err == nil:
			v = cur
			p.show(v)
			if requestSettled(v) {
				break poll
			}
		case pctx.Err() == nil: // not the timeout or Ctrl-C cutting the read short
			p.end()
			return err
		}
		select {
		case <-tick.C:
		case <-pctx.Done():
			break poll
		}
	}
	p.end()
	if v != nil {
		if asJSON {
			if err := writeJSONTo(m.Stdout, v); err != nil {
				return err
			}
		} else {
			printRequest(m.Stdout, v)
		}
	}
	where := "not yet read"
	k, n := 0, 0
	if v != nil {
		where = string(v.State)
		if k, n = systemsDone(v.Tasks); n > 0 {
			where += fmt.Sprintf(", systems done %d/%d", k, n)
		}
	}
	switch {
	case ctx.Err() != nil:
		return &exitError{exitInterrupted, fmt.Sprintf("interrupted; request %s is %s and goes on in the server", id, where)}
	case pctx.Err() != nil:
		return &exitError{exitTimeout, fmt.Sprintf("timed out after %s; request %s is %s and goes on in the server (lethe request wait %s to follow it again)", timeout, id, where, id)}
	}
	switch v.State {
	case lethe.RequestCompleted:
		return nil
	case lethe.RequestRejected:
		return &exitError{exitRejected, fmt.Sprintf("request %s was rejected", id)}
	case lethe.RequestCancelled:
		return &exitError{exitCancelled, fmt.Sprintf("request %s was cancelled", id)}
	}
	return &exitError{exitPartial, fmt.Sprintf("request %s is partially completed, systems done %d/%d: lethe request retry %s runs a failed system again, lethe request done %s --system S records a waiting one", id, k, n, id, id)}
}

// requestSettled reports whether nothing more happens to a request without
// someone acting: it is closed, or partially completed with no system
// running or about to run. This mirrors the runner's finish: a request
// partially completed whose last waiting system was just acknowledged stays
// so until the finish job runs, and is not settled; one whose system is
// pending a retry after an error is (the retry may be hours away).
func requestSettled(v *client.RequestView) bool {
	if !v.State.Open() {
		return true
	}
	if v.State != lethe.RequestPartial {
		return false
	}
	unfinished := false
	for _, t := range v.Tasks {
		switch {
		case t.State == lethe.TaskDone:
		case t.State == lethe.TaskRunning, t.State == lethe.TaskPending && t.Error == "":
			return false
		default:
			unfinished = true
		}
	}
	return unfinished
}

// systemsDone counts the tasks done, of all.
func systemsDone(tasks []lethe.RequestTask) (done, all int) {
	for _, t := range tasks {
		if t.State == lethe.TaskDone {
			done++
		}
	}
	return done, len(tasks)
}

// requestProgress shows a followed request as it changes: on a terminal, a
// block (a bar of the systems done, then each system's state) redrawn in
// place; elsewhere (a pipe, a file, a test), one line per change, so that
// logs stay readable. A nil *requestProgress shows nothing.
type requestProgress struct {
	w     io.Writer
	fd    int // the terminal's, or -1
	start time.Time
	drawn int               // lines of the block on the terminal
	last  map[string]string // the last line printed, by system ("" for the request)
}

func newRequestProgress(w io.Writer, getenv func(string) string, start time.Time) *requestProgress {
	p := &requestProgress{w: w, fd: -1, start: start, last: map[string]string{}}
	if f, ok := w.(*os.File); ok && term.IsTerminal(int(f.Fd())) && getenv("TERM") != "dumb" {
		p.fd = int(f.Fd())
	}
	return p
}

func (p *requestProgress) show(v *client.RequestView) {
	if p == nil {
		return
	}
	if p.fd >= 0 {
		width, _, err := term.GetSize(p.fd)
		if err != nil || width <= 0 {
			width = 80
		}
		p.redraw(v, width, time.Since(p.start))
		return
	}
	k, n := systemsDone(v.Tasks)
	head := fmt.Sprintf("request %s: %s", v.ID, v.State)
	if n > 0 {
		head += fmt.Sprintf(", systems done %d/%d", k, n)
	}
	p.line("", head)
	for _, t := range v.Tasks {
		p.line(t.System, taskLine(t))
	}
}

// line prints s unless it is what was last printed for key.
func (p *requestProgress) line(key, s string) {
	if p.last[key] == s {
		return
	}
	p.last[key] = s
	fmt.Fprintln(p.w, s)
}

// redraw replaces the block on the terminal with v's, each line cut to
// the terminal's width so that none wraps and the cursor moves back over
// exactly the lines drawn.
func (p *requestProgress) redraw(v *client.RequestView, width int, elapsed time.Duration) {
	k, n := systemsDone(v.Tasks)
	head := fmt.Sprintf("%s  %s", v.ID, v.State)
	if n > 0 {
		const cells = 24
		filled := cells * k / n
		head += fmt.Sprintf("  [%s%s] systems done %d/%d", strings.Repeat("#", filled), strings.Repeat(".", cells-filled), k, n)
	}
	head += "  " + elapsed.Truncate(time.Second).String()
	lines := []string{head}
	pad := 0
	for _, t := range v.Tasks {
		pad = max(pad, len(t.System))
	}
	for _, t := range v.Tasks {
		s := fmt.Sprintf("  %-*s  %s", pad, t.System, t.State)
		if t.Attempts > 1 {
			s += fmt.Sprintf(" (%d attempts)", t.Attempts)
		}
		if t.Error != "" {
			s += ": " + t.Error
		}
		lines = append(lines, s)
	}
	var b strings.Builder
	p.erase(&b)
	for _, l := range lines {
		b.WriteString(cut(l, width-1))
		b.WriteByte('\n')
	}
	p.drawn = len(lines)
	io.WriteString(p.w, b.String())
}

// erase moves the cursor back to the start of the block and clears from
// there to the end of the screen.
func (p *requestProgress) erase(b *strings.Builder) {
	if p.drawn > 0 {
		fmt.Fprintf(b, "\x1b[%dA\r\x1b[J", p.drawn)
	}
	p.drawn = 0
}

// end removes the block from the terminal, or ends the lines with a blank
// one, before the request is printed in full.
func (p *requestProgress) end() {
	switch {
	case p == nil:
		return
	case p.fd < 0:
		if len(p.last) > 0 {
			fmt.Fprintln(p.w)
		}
		return
	}
	var b strings.Builder
	p.erase(&b)
	io.WriteString(p.w, b.String())
}

// cut shortens s to at most n runes.
func cut(s string, n int) string {
	if n < 1 {
		n = 1
	}
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	r := []rune(s)
	return string(r[:n-1]) + "…"
}
