package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/lethe-privacy/lethe"
	"github.com/lethe-privacy/lethe/client"
)

const requestHelp = `Usage:
  lethe request create --type T (--subject ID | --contact-file F) [--contact-file F] [--verified]
                       [--purpose P] [--ground G] [--values-file F]
  lethe request list [--overdue | --due-within 72h] [--state S]... [--subject ID]
  lethe request show ID
  lethe request approve ID
  lethe request retry ID                 run again the systems a partially completed request has not finished
  lethe request done ID --system S --count N [--note "…"]
                                         a person did a manual system's checklist (or a third party confirmed)
  lethe request extend ID --by 30d|--until 2026-09-01 --reason "…"
  lethe request cancel ID --reason "…"
  lethe request reject ID --reason "…"

Types: access, portability, rectification, erasure, restriction, objection. The
person's address (where the code and the results go) is read from a file, or from
standard input with --contact-file -, so that it does not show in the process list or
the shell history; so are rectification values (a JSON object, data category → value).
Every command takes --json to print JSON for scripts, and the client flags (--url,
--key-file, …; the key needs the requests.* permissions: a dpo or support key).
`

type stateFlags []lethe.RequestState

func (f *stateFlags) String() string { return fmt.Sprint(*f) }
func (f *stateFlags) Set(v string) error {
	*f = append(*f, lethe.RequestState(v))
	return nil
}

func (m *Main) request(ctx context.Context, args []string) error {
	if len(args) == 0 {
		return usageErrorf("request needs a subcommand: create, list, show, approve, retry, done, extend, cancel or reject\n\n%s", requestHelp)
	}
	sub := args[0]
	fset := m.newFlagSet("request " + sub)
	fset.Usage = func() {
		fmt.Fprint(fset.Output(), requestHelp)
		fset.PrintDefaults()
	}
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
		if *contactFile != "" {
			b, err := m.readArgFile(*contactFile)
			if err != nil {
				return err
			}
			in.Contact = strings.TrimSpace(string(b))
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
		fmt.Fprintf(w, "  system %s: %s (%d attempts)", t.System, t.State, t.Attempts)
		if t.Error != "" {
			fmt.Fprintf(w, ": %s", t.Error)
		}
		fmt.Fprintln(w)
	}
}
