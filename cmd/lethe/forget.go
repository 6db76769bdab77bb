package main

import (
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/lethe-privacy/lethe"
	"github.com/lethe-privacy/lethe/internal/connector"
	"github.com/lethe-privacy/lethe/internal/datamap"
)

const forgetHelp = `Usage:
  lethe forget replay --manifest PATH [--data-dir DIR] [--key-store DSN] [--json]

After restoring any system of the data map from a backup, erase again, in every
system, every subject on the forget list (kept in the key store, which backups of the
systems do not roll back). It is idempotent: run again it finds nothing. Erasure
destroyed the subjects' identifiers, so a replay reaches the rows, keys and files that
hold the Lethe subject ID; the report names the places linked by an identifier (an
email, an app's ID) that it cannot reach: restore those systems with care, or keep
their own deletion logs.
`

// replayReport is what a forget replay did in one system.
type replayReport struct {
	System   string   `json:"system"`
	Subjects int      `json:"subjects"` // forgotten subjects found there again
	Count    int64    `json:"count"`    // rows, keys or files erased again
	Error    string   `json:"error,omitempty"`
	Beyond   []string `json:"unreachable,omitempty"` // places linked by identifiers alone
}

// forgetList is what the replay needs of the key store.
type forgetList interface {
	ForgetList(ctx context.Context, after lethe.Forgotten, limit int) ([]lethe.Forgotten, error)
}

func (m *Main) forget(ctx context.Context, args []string) error {
	if len(args) == 0 || args[0] != "replay" {
		return usageErrorf("forget needs a subcommand: replay\n\n%s", forgetHelp)
	}
	fset := m.commandFlags("forget replay", forgetHelp)
	where := m.bindKeyAdminFlags(fset)
	path := manifestFlag(fset)
	asJSON := fset.Bool("json", false, "print the report as JSON")
	if err := parse(fset, args[1:]); err != nil {
		return err
	}
	cfg, err := m.keyAdminConfig(fset, where)
	if err != nil {
		return err
	}
	man, err := datamap.Load(m.manifestPath(*path))
	if err != nil {
		return m.manifestError(err)
	}
	keys, closeKeys, err := openKeyStore(ctx, cfg.KeyStore)
	if err != nil {
		return err
	}
	defer closeKeys()
	list, ok := keys.(forgetList)
	if !ok {
		return fmt.Errorf("the key store cannot list the forgotten")
	}
	var forgotten []lethe.Forgotten
	for after := (lethe.Forgotten{}); ; {
		page, err := list.ForgetList(ctx, after, 1000)
		if err != nil {
			return fmt.Errorf("read the forget list: %w", err)
		}
		for _, f := range page {
			if f.SubjectID != "" { // a tenant's erasure leaves no subject to look for
				forgotten = append(forgotten, f)
			}
		}
		if len(page) < 1000 {
			break
		}
		after = page[len(page)-1]
	}
	var reports []replayReport
	failed := false
	for i := range man.Systems {
		sys := &man.Systems[i]
		rep := replayReport{System: sys.Name, Beyond: unreachable(sys)}
		err := func() error {
			if sys.Kind == datamap.KindManual || sys.Kind == datamap.KindWebhook {
				// A person or a third party is not asked about every
				// forgotten subject by a replay: their own records apply.
				rep.Beyond = append(rep.Beyond, "the whole system ("+sys.Kind+"): tell it which subjects to forget yourself")
				return nil
			}
			conn, err := openConnector(ctx, sys)
			if err != nil {
				return err
			}
			defer conn.Close()
			er, ok := conn.(connector.Eraser)
			if !ok {
				return nil
			}
			for _, f := range forgotten {
				key := make([]byte, 32)
				rand.Read(key) // the subject's own key is destroyed: pseudonyms for nobody
				r, err := er.Erase(ctx, connector.Subject{ID: f.SubjectID, Tenant: f.Tenant, PseudonymKey: key, Now: time.Now()})
				if err != nil {
					return err
				}
				if n := r.Total(); n > 0 {
					rep.Subjects++
					rep.Count += n
				}
			}
			return nil
		}()
		if err != nil {
			rep.Error = err.Error()
			failed = true
		}
		reports = append(reports, rep)
	}
	if *asJSON {
		if err := writeJSONTo(m.Stdout, reports); err != nil {
			return err
		}
	} else {
		printReplay(m.Stdout, len(forgotten), reports)
	}
	if failed {
		return errSilentFailure
	}
	return nil
}

// unreachable lists a system's places that link to a person by an
// identifier alone, which a replay cannot look for.
func unreachable(sys *datamap.System) []string {
	var out []string
	for _, t := range sys.Tables {
		root := &t
		for root.Via != nil {
			p, ok := sys.Table(root.Via.Parent)
			if !ok || p == root {
				break
			}
			root = p
		}
		if l := root.Subject; l != nil && l.Identifier != "" && l.Identifier != connector.LinkSubject {
			out = append(out, fmt.Sprintf("table %s (by %s)", t.Name, l.Identifier))
		}
	}
	for _, k := range sys.Keys {
		if !strings.Contains(k.Pattern+k.Member, "{"+connector.LinkSubject+"}") {
			out = append(out, "keys "+k.Pattern+" "+k.Member)
		}
	}
	for _, f := range sys.Files {
		if !strings.Contains(f.Pattern, "{"+connector.LinkSubject+"}") {
			out = append(out, "files "+f.Pattern)
		}
	}
	return out
}

func printReplay(w io.Writer, n int, reports []replayReport) {
	fmt.Fprintf(w, "%d subjects on the forget list\n", n)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "SYSTEM\tFOUND AGAIN\tERASED AGAIN\tNOTE")
	for _, r := range reports {
		note := ""
		if r.Error != "" {
			note = "FAILED: " + r.Error
		}
		fmt.Fprintf(tw, "%s\t%d subjects\t%d\t%s\n", r.System, r.Subjects, r.Count, note)
	}
	tw.Flush()
	for _, r := range reports {
		if len(r.Beyond) > 0 {
			fmt.Fprintf(w, "not reachable by subject ID in %s: %s\n", r.System, strings.Join(r.Beyond, "; "))
		}
	}
}
