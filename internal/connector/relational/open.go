package relational

import (
	"context"
	"database/sql"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/lethe-privacy/lethe/internal/datamap"
)

// Open opens the system's database with driver, turning the connection
// reference into the data source name with dsn, and returns the
// connector. Errors never hold the data source name or any part of it a
// driver quotes.
func Open(ctx context.Context, sys *datamap.System, driver string, d Dialect, dsn func(ref string) (string, error)) (*Conn, error) {
	ref, err := sys.Connection.Resolve()
	if err != nil {
		return nil, fmt.Errorf("system %s: connection (%s): %w", sys.Name, sys.Connection, err)
	}
	source, err := dsn(ref)
	if err != nil {
		return nil, fmt.Errorf("system %s: connection (%s): %s", sys.Name, sys.Connection, scrub(err.Error(), ref))
	}
	db, err := sql.Open(driver, source)
	if err != nil {
		return nil, fmt.Errorf("system %s: open: %s", sys.Name, scrub(Redact(err).Error(), ref, source))
	}
	db.SetConnMaxIdleTime(5 * time.Minute)
	pctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	if err := db.PingContext(pctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("system %s: connect (%s): %s", sys.Name, sys.Connection, scrub(Redact(err).Error(), ref, source))
	}
	c, err := New(ctx, sys, db, d)
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("%s", scrub(Redact(err).Error(), ref, source))
	}
	return c, nil
}

// scrub removes the secrets, and any password or user they hold, from a
// message.
func scrub(msg string, secrets ...string) string {
	var parts []string
	for _, s := range secrets {
		parts = append(parts, s)
		if u, err := url.Parse(s); err == nil && u.User != nil {
			if p, ok := u.User.Password(); ok {
				parts = append(parts, p)
			}
		}
		// key=value and user:password@ forms
		for _, f := range strings.FieldsFunc(s, func(r rune) bool { return r == ' ' || r == '&' || r == '?' || r == '@' || r == '(' }) {
			if k, v, ok := strings.Cut(f, "="); ok && strings.Contains(strings.ToLower(k), "password") {
				parts = append(parts, v)
			}
			if _, p, ok := strings.Cut(f, ":"); ok && !strings.Contains(f, "/") {
				parts = append(parts, p)
			}
		}
	}
	for _, p := range parts {
		if len(p) >= 3 {
			msg = strings.ReplaceAll(msg, p, "…")
		}
	}
	return msg
}
