package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/lethe-privacy/lethe/client"
	"github.com/lethe-privacy/lethe/internal/connector"
	"github.com/lethe-privacy/lethe/internal/datamap"
)

const planHelp = `Usage:
  lethe plan erase --subject ID [--manifest PATH] [--json]

A dry run of erasing a subject from every system of the data map: per system, the
statements or operations in the order they would run and the rows, keys or files
they would touch. It changes nothing. The subject's identifiers (email, your app's
IDs) are read from the Lethe server (--url, LETHE_URL, with an API key of a role
that may read subjects), so that no personal value is typed on the command line.
`

// systemPlan is one system's part of a plan.
type systemPlan struct {
	System string            `json:"system"`
	Kind   string            `json:"kind"`
	Error  string            `json:"error,omitempty"`
	Report *connector.Report `json:"report,omitempty"`
}

func (m *Main) plan(ctx context.Context, args []string) error {
	if len(args) == 0 || args[0] != "erase" {
		return usageErrorf("plan needs a subcommand: erase\n\n%s", planHelp)
	}
	fset := m.commandFlags("plan erase", planHelp)
	var cf clientFlags
	cf.bind(fset, m.Getenv)
	subject := fset.String("subject", "", "the subject's ID (sub_…)")
	path := manifestFlag(fset)
	asJSON := fset.Bool("json", false, "print the plan as JSON")
	if err := parse(fset, args[1:]); err != nil {
		return err
	}
	if *subject == "" {
		return usageErrorf("plan erase needs --subject")
	}
	man, err := datamap.Load(m.manifestPath(*path))
	if err != nil {
		return m.manifestError(err)
	}
	c, err := cf.client(m.Getenv)
	if err != nil {
		return err
	}
	view, err := c.ReadSubject(ctx, *subject, client.ReadOptions{})
	if err != nil {
		return fmt.Errorf("read subject %s: %w", *subject, err)
	}
	s := connector.Subject{ID: view.ID, Identifiers: view.Identifiers, Now: time.Now()}
	plans := planErasure(ctx, man, s)
	if *asJSON {
		enc := json.NewEncoder(m.Stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(plans)
	}
	printPlans(m.Stdout, s.ID, plans)
	for _, p := range plans {
		if p.Error != "" {
			return errSilentFailure
		}
	}
	return nil
}

// planErasure asks every system of the map for its plan.
func planErasure(ctx context.Context, man *datamap.Manifest, s connector.Subject) []systemPlan {
	var out []systemPlan
	for i := range man.Systems {
		sys := &man.Systems[i]
		p := systemPlan{System: sys.Name, Kind: sys.Kind}
		err := func() error {
			conn, err := openConnector(ctx, sys)
			if err != nil {
				return err
			}
			defer conn.Close()
			er, ok := conn.(connector.Eraser)
			if !ok {
				return errNoEraser
			}
			r, err := er.PlanErase(ctx, s)
			if err != nil {
				return err
			}
			p.Report = &r
			return nil
		}()
		if err != nil {
			p.Error = err.Error()
		}
		out = append(out, p)
	}
	return out
}

func printPlans(w io.Writer, subject string, plans []systemPlan) {
	fmt.Fprintf(w, "Erasure plan for %s (a dry run: nothing was changed)\n", subject)
	for _, p := range plans {
		fmt.Fprintf(w, "\n%s (%s)\n", p.System, p.Kind)
		if p.Error != "" {
			fmt.Fprintf(w, "  cannot plan: %s\n", p.Error)
			continue
		}
		if len(p.Report.Steps) == 0 {
			fmt.Fprintln(w, "  nothing of the subject here")
		}
		for i, st := range p.Report.Steps {
			cols := ""
			if len(st.Columns) > 0 {
				cols = " [" + strings.Join(st.Columns, ", ") + "]"
			}
			fmt.Fprintf(w, "  %d. %s %s%s: %d\n", i+1, st.Action, st.Location, cols, st.Count)
			if st.Statement != "" {
				fmt.Fprintf(w, "     %s\n", st.Statement)
			}
			if len(st.Keys) > 0 {
				fmt.Fprintf(w, "     rows: %s\n", keyList(st.Keys, 20))
			}
			if st.Note != "" {
				fmt.Fprintf(w, "     note: %s\n", st.Note)
			}
		}
		if p.Report.Pending {
			fmt.Fprintln(w, "  (completes later: the system acknowledges or a person closes the task)")
		}
	}
}

// keyList shows up to max row keys, and how many more there are.
func keyList(keys []string, max int) string {
	if len(keys) <= max {
		return strings.Join(keys, ", ")
	}
	return fmt.Sprintf("%s and %d more (--json lists all)", strings.Join(keys[:max], ", "), len(keys)-max)
}
