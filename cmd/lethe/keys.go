package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/lethe-privacy/lethe/client"
	"github.com/lethe-privacy/lethe/internal/certs"
)

// clientFlags are the flags every command that talks to a server shares.
type clientFlags struct {
	url, dataDir, caFile, keyFile string
}

func (c *clientFlags) bind(fs *flag.FlagSet, getenv func(string) string) {
	def := func(env, fallback string) string {
		if v := getenv(env); v != "" {
			return v
		}
		return fallback
	}
	fs.StringVar(&c.url, "url", def("LETHE_URL", "https://127.0.0.1:8443"), "server URL (env LETHE_URL)")
	fs.StringVar(&c.dataDir, "data-dir", def("LETHE_DATA_DIR", "lethe-data"), "data directory whose ca.crt and admin.key to use by default")
	fs.StringVar(&c.caFile, "ca-file", getenv("LETHE_CA_FILE"), "CA certificate to trust (default: ca.crt in the data directory if present, else the system roots)")
	fs.StringVar(&c.keyFile, "key-file", "", "file holding the API key (default: env LETHE_API_KEY, else admin.key in the data directory)")
}

// client builds an API client from the flags. The API key comes from
// --key-file, LETHE_API_KEY or the data directory's admin.key, never from a
// flag value, so it does not show in the process list.
func (c *clientFlags) client(getenv func(string) string) (*client.Client, error) {
	ca := c.caFile
	if ca == "" {
		p := filepath.Join(c.dataDir, certs.CAFile)
		if _, err := os.Stat(p); err == nil {
			ca = p
		}
	}
	key := ""
	switch {
	case c.keyFile != "":
		b, err := os.ReadFile(c.keyFile)
		if err != nil {
			return nil, fmt.Errorf("read API key: %w", err)
		}
		key = strings.TrimSpace(string(b))
	case getenv("LETHE_API_KEY") != "":
		key = strings.TrimSpace(getenv("LETHE_API_KEY"))
	default:
		b, err := os.ReadFile(filepath.Join(c.dataDir, adminKeyFile))
		if errors.Is(err, fs.ErrNotExist) {
			return nil, usageErrorf("no API key: set LETHE_API_KEY, pass --key-file, or point --data-dir at a data directory with %s", adminKeyFile)
		} else if err != nil {
			return nil, fmt.Errorf("read API key: %w", err)
		}
		key = strings.TrimSpace(string(b))
	}
	return client.New(client.Config{URL: c.url, APIKey: key, CAFile: ca})
}

func (m *Main) keys(ctx context.Context, args []string) error {
	if len(args) == 0 {
		return usageErrorf("keys needs a subcommand: create, list, revoke, rotate-master or rotate-tenant")
	}
	var cf clientFlags
	fs := m.newFlagSet("keys " + args[0])
	cf.bind(fs, m.Getenv)
	switch args[0] {
	case "rotate-master":
		return m.rotateMaster(ctx, args[1:])
	case "rotate-tenant":
		return m.rotateTenant(ctx, args[1:])
	case "create":
		name := fs.String("name", "", "what the key is for (required)")
		role := fs.String("role", "", "role: admin, dpo, support, service, auditor or recipient (required)")
		expires := fs.String("expires", "", "expiry: a duration such as 720h, or an RFC 3339 time; default never")
		tenant := fs.String("tenant", "", "bind the key to this tenant (not for admin keys); default: any tenant")
		if err := parse(fs, args[1:]); err != nil {
			return err
		}
		if *name == "" || *role == "" {
			return usageErrorf("keys create needs --name and --role")
		}
		var exp *time.Time
		if *expires != "" {
			t, err := parseExpiry(*expires, time.Now())
			if err != nil {
				return err
			}
			exp = &t
		}
		c, err := cf.client(m.Getenv)
		if err != nil {
			return err
		}
		k, err := c.CreateKey(ctx, client.KeySpec{Name: *name, Role: *role, Tenant: *tenant, ExpiresAt: exp})
		if err != nil {
			return err
		}
		fmt.Fprintf(m.Stderr, "Created key %s (role %s). Its secret, on the next line, is shown only now:\n", k.ID, k.Role)
		fmt.Fprintln(m.Stdout, k.Secret)
		return nil
	case "list":
		if err := parse(fs, args[1:]); err != nil {
			return err
		}
		c, err := cf.client(m.Getenv)
		if err != nil {
			return err
		}
		keys, err := c.Keys(ctx)
		if err != nil {
			return err
		}
		tw := tabwriter.NewWriter(m.Stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "ID\tROLE\tTENANT\tSTATUS\tCREATED\tEXPIRES\tNAME")
		for _, k := range keys {
			status := "active"
			switch {
			case k.RevokedAt != nil:
				status = "revoked"
			case !k.Active:
				status = "expired"
			}
			expiry := "never"
			if k.ExpiresAt != nil {
				expiry = k.ExpiresAt.Format(time.RFC3339)
			}
			tenant := k.Tenant
			if tenant == "" {
				tenant = "*"
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", k.ID, k.Role, tenant, status, k.CreatedAt.Format(time.RFC3339), expiry, k.Name)
		}
		return tw.Flush()
	case "revoke":
		if err := parse(fs, args[1:]); err != nil {
			return err
		}
		if fs.NArg() != 1 {
			return usageErrorf("keys revoke needs exactly one key ID")
		}
		c, err := cf.client(m.Getenv)
		if err != nil {
			return err
		}
		if err := c.RevokeKey(ctx, fs.Arg(0)); err != nil {
			return err
		}
		fmt.Fprintf(m.Stderr, "Revoked key %s.\n", fs.Arg(0))
		return nil
	default:
		return usageErrorf("unknown keys subcommand %q: use create, list, revoke, rotate-master or rotate-tenant", args[0])
	}
}

// parseExpiry reads a duration from now (720h) or an RFC 3339 time.
func parseExpiry(s string, now time.Time) (time.Time, error) {
	if d, err := time.ParseDuration(s); err == nil {
		if d <= 0 {
			return time.Time{}, usageErrorf("--expires must be in the future")
		}
		return now.Add(d), nil
	}
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		return time.Time{}, usageErrorf("--expires %q is neither a duration (720h) nor an RFC 3339 time", s)
	}
	return t, nil
}
