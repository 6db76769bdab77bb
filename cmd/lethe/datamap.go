package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/lethe-privacy/lethe/internal/connector"
	"github.com/lethe-privacy/lethe/internal/connector/files"
	"github.com/lethe-privacy/lethe/internal/connector/manual"
	"github.com/lethe-privacy/lethe/internal/connector/mysql"
	"github.com/lethe-privacy/lethe/internal/connector/postgres"
	"github.com/lethe-privacy/lethe/internal/connector/redis"
	"github.com/lethe-privacy/lethe/internal/connector/sqlite"
	"github.com/lethe-privacy/lethe/internal/connector/webhook"
	"github.com/lethe-privacy/lethe/internal/datamap"
)

const datamapHelp = `Usage:
  lethe datamap validate [--manifest PATH]   check the data map; errors give file:line:col and a hint
  lethe datamap check [--manifest PATH] [--json]
                                            connect to every system and report what differs from
                                            the map: missing tables and columns, actions a column
                                            cannot take, personal-looking columns it does not
                                            mention; exits 1 if anything differs
  lethe datamap import-fides FILE...         print the systems of Fides datasets as lethe.yaml
  lethe datamap schema                       print the JSON Schema of lethe.yaml

The manifest is --manifest, else $LETHE_DATAMAP, else ./lethe.yaml (a file, or a
directory of .yaml files). Connection strings and secrets come from the environment
variables and files the manifest names.
`

// openConnector opens the connector for a system of the data map: the one
// place that maps a kind to its package.
func openConnector(ctx context.Context, sys *datamap.System) (connector.Connector, error) {
	switch sys.Kind {
	case datamap.KindPostgres:
		return postgres.Open(ctx, sys)
	case datamap.KindMySQL:
		return mysql.Open(ctx, sys)
	case datamap.KindSQLite:
		return sqlite.Open(ctx, sys)
	case datamap.KindRedis:
		return redis.Open(ctx, sys)
	case datamap.KindFiles:
		return files.Open(ctx, sys)
	case datamap.KindWebhook:
		return webhook.Open(ctx, sys, webhook.Options{})
	case datamap.KindManual:
		return manual.Open(ctx, sys)
	}
	return nil, fmt.Errorf("system %s: no connector for kind %q", sys.Name, sys.Kind)
}

// manifestPath returns the manifest the flag, the environment or the
// working directory names.
func (m *Main) manifestPath(flagValue string) string {
	if flagValue != "" {
		return flagValue
	}
	if v := m.Getenv("LETHE_DATAMAP"); v != "" {
		return v
	}
	return "lethe.yaml"
}

func (m *Main) datamap(ctx context.Context, args []string) error {
	if len(args) == 0 {
		return usageErrorf("datamap needs a subcommand: validate, check, import-fides or schema\n\n%s", datamapHelp)
	}
	fset := m.commandFlags("datamap "+args[0], datamapHelp)
	path := manifestFlag(fset)
	asJSON := fset.Bool("json", false, "print the report as JSON")
	if err := parse(fset, args[1:]); err != nil {
		return err
	}
	switch args[0] {
	case "validate":
		man, err := datamap.Load(m.manifestPath(*path))
		if err != nil {
			return m.manifestError(err)
		}
		fmt.Fprintf(m.Stdout, "%s: valid: %d purposes, %d systems, %d recipients, %d flows\n", strings.Join(man.Files, ", "), len(man.Purposes), len(man.Systems), len(man.Recipients), len(man.Flows))
		return nil
	case "check":
		man, err := datamap.Load(m.manifestPath(*path))
		if err != nil {
			return m.manifestError(err)
		}
		return m.datamapCheck(ctx, man, *asJSON)
	case "import-fides":
		if fset.NArg() == 0 {
			return usageErrorf("import-fides needs one or more Fides dataset files")
		}
		var all []datamap.System
		for _, f := range fset.Args() {
			data, err := os.ReadFile(f)
			if err != nil {
				return err
			}
			systems, err := datamap.ImportFides(f, data)
			if err != nil {
				return err
			}
			all = append(all, systems...)
		}
		out, err := datamap.MarshalSystems(all)
		if err != nil {
			return err
		}
		fmt.Fprintf(m.Stdout, "# Imported from %s. Set each system's kind and connection, and each\n# table's erase action, then run: lethe datamap validate\n", strings.Join(fset.Args(), ", "))
		_, err = m.Stdout.Write(out)
		return err
	case "schema":
		_, err := m.Stdout.Write(datamap.Schema())
		return err
	}
	return usageErrorf("unknown datamap subcommand %q\n\n%s", args[0], datamapHelp)
}

// manifestError prints every problem of a manifest, one per line, and
// fails without repeating them.
func (m *Main) manifestError(err error) error {
	if ps, ok := datamap.AsProblems(err); ok {
		for _, p := range ps {
			fmt.Fprintln(m.Stderr, p.Error())
		}
		fmt.Fprintf(m.Stderr, "%d problems in the data map\n", len(ps))
		return errSilentFailure
	}
	return err
}

// systemCheck is what `datamap check` found for one system.
type systemCheck struct {
	System string            `json:"system"`
	Kind   string            `json:"kind"`
	Error  string            `json:"error,omitempty"`
	Drift  []connector.Drift `json:"drift,omitempty"`
}

func (m *Main) datamapCheck(ctx context.Context, man *datamap.Manifest, asJSON bool) error {
	var results []systemCheck
	failed := false
	for i := range man.Systems {
		sys := &man.Systems[i]
		r := systemCheck{System: sys.Name, Kind: sys.Kind}
		cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		conn, err := openConnector(cctx, sys)
		if err == nil {
			if ch, ok := conn.(connector.Checker); ok {
				r.Drift, err = ch.Check(cctx)
			}
			conn.Close()
		}
		cancel()
		if err != nil {
			r.Error = err.Error()
		}
		failed = failed || err != nil || len(r.Drift) > 0
		results = append(results, r)
	}
	if asJSON {
		enc := json.NewEncoder(m.Stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(results); err != nil {
			return err
		}
	} else {
		printChecks(m.Stdout, results)
	}
	if failed {
		return errSilentFailure
	}
	return nil
}

func printChecks(w io.Writer, results []systemCheck) {
	for _, r := range results {
		switch {
		case r.Error != "":
			fmt.Fprintf(w, "%s (%s): FAILED: %s\n", r.System, r.Kind, r.Error)
		case len(r.Drift) == 0:
			fmt.Fprintf(w, "%s (%s): matches the map\n", r.System, r.Kind)
		default:
			fmt.Fprintf(w, "%s (%s): %d differences\n", r.System, r.Kind, len(r.Drift))
			tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
			for _, d := range r.Drift {
				where := d.Location
				if d.Column != "" {
					where += "." + d.Column
				}
				fmt.Fprintf(tw, "  %s\t%s\t%s\n", d.Problem, where, d.Hint)
			}
			tw.Flush()
		}
	}
}

// errNoEraser marks a system whose connector cannot plan an erasure.
var errNoEraser = errors.New("this kind of system cannot erase")
