package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/lethe-privacy/lethe"
	"github.com/lethe-privacy/lethe/client"
)

// demo starts a server on the embedded default and narrates, step by step,
// what it does. Later issues add steps (vault, consent, requests).
func (m *Main) demo(ctx context.Context, args []string) error {
	fs := m.newFlagSet("demo")
	dataDir := fs.String("data-dir", "", "data directory to use (default: a temporary one, removed afterwards)")
	if err := parse(fs, args); err != nil {
		return err
	}
	out := m.Stdout
	step := 0
	say := func(format string, a ...any) {
		step++
		fmt.Fprintf(out, "\n%d. %s\n", step, fmt.Sprintf(format, a...))
	}
	detail := func(format string, a ...any) { fmt.Fprintf(out, "   %s\n", fmt.Sprintf(format, a...)) }

	dir := *dataDir
	if dir == "" {
		tmp, err := os.MkdirTemp("", "lethe-demo-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(tmp)
		dir = filepath.Join(tmp, "data")
	}
	cfg := DefaultConfig()
	cfg.DataDir, cfg.Addr = dir, "127.0.0.1:0"
	if err := cfg.Validate(nil); err != nil {
		return err
	}
	say("Starting Lethe on its embedded default: SQLite in %s, HTTPS on a free loopback port.", dir)
	log, err := m.logger("warn")
	if err != nil {
		return err
	}
	sctx, stop := context.WithCancel(ctx)
	defer stop()
	srv, err := start(sctx, cfg, log, &indent{w: out})
	if err != nil {
		return err
	}
	detail("Two databases: data.db holds the data, keys.db the keys, so data backups never carry keys.")
	detail("The local CA in %s signed the server certificate; the client trusts only it.", srv.CAFile)

	say("The first start made an admin API key and wrote it to %s (mode 0600).", srv.AdminKeyFile)
	secret, err := os.ReadFile(srv.AdminKeyFile)
	if err != nil {
		return err
	}
	detail("Lethe stores only the key's SHA-256 hash; the secret exists in that file alone.")

	say("Calling GET /v1/whoami without credentials.")
	anon, err := client.New(client.Config{URL: srv.URL, CAFile: srv.CAFile})
	if err != nil {
		return err
	}
	_, err = anon.WhoAmI(ctx)
	var ce *client.Error
	if !errors.As(err, &ce) || ce.Status != 401 {
		return fmt.Errorf("demo: an anonymous call was not refused with 401: %v", err)
	}
	detail("Refused: %d %s, %q (request %s).", ce.Status, ce.Code, ce.Detail, ce.RequestID)

	say("Calling it again with the admin key, over TLS.")
	admin, err := client.New(client.Config{URL: srv.URL, CAFile: srv.CAFile, APIKey: strings.TrimSpace(string(secret))})
	if err != nil {
		return err
	}
	me, err := admin.WhoAmI(ctx)
	if err != nil {
		return err
	}
	detail("Answered: key %s, role %s, permissions %s.", me.KeyID, me.Role, strings.Join(me.Permissions, ", "))

	say("Making a least-privilege key for an application (role service) and using it.")
	svcKey, err := admin.CreateKey(ctx, client.KeySpec{Name: "demo shop backend", Role: string(lethe.RoleService)})
	if err != nil {
		return err
	}
	svc, err := client.New(client.Config{URL: srv.URL, CAFile: srv.CAFile, APIKey: svcKey.Secret})
	if err != nil {
		return err
	}
	if _, err := svc.Keys(ctx); !errors.As(err, &ce) || ce.Status != 403 {
		return fmt.Errorf("demo: a service key was allowed to list keys: %v", err)
	}
	detail("Key %s may call whoami, but listing keys is refused: %d %s.", svcKey.ID, ce.Status, ce.Code)

	say("The shop backend stores a customer. Lethe seals the data under the customer's own key.")
	sub, err := svc.CreateSubject(ctx, map[string]string{"email": "Jane.Doe@Example.com", "phone": "+44 20 7946 0958"},
		map[string]any{"name": "Jane Doe", "city": "Leeds"})
	if err != nil {
		return err
	}
	detail("Subject %s created; the app keeps only this ID.", sub.ID)
	detail("Identifiers are normalised (%s, %s) and indexed by a keyed HMAC, not stored in the clear.", sub.Identifiers["email"], sub.Identifiers["phone"])

	say("Support looks the customer up by email, in the request body (never in a URL), and sees masked values.")
	supKey, err := admin.CreateKey(ctx, client.KeySpec{Name: "demo support desk", Role: string(lethe.RoleSupport)})
	if err != nil {
		return err
	}
	sup, err := client.New(client.Config{URL: srv.URL, CAFile: srv.CAFile, APIKey: supKey.Secret})
	if err != nil {
		return err
	}
	seen, err := sup.LookupSubject(ctx, "email", "  JANE.DOE@example.com", client.ReadOptions{})
	if err != nil {
		return err
	}
	detail("Found %s: email %s, profile %s.", seen.ID, seen.Identifiers["email"], seen.Profile)

	say("The customer moves and changes email: a rectification with a reason, kept as a new version.")
	newEmail := "jane@new.example"
	upd, err := svc.UpdateSubject(ctx, sub.ID, client.Change{Profile: map[string]any{"city": "York"}, Identifiers: map[string]*string{"email": &newEmail}, Reason: "customer moved"})
	if err != nil {
		return err
	}
	detail("Now version %d: email %s, profile %s.", upd.Version, upd.Identifiers["email"], upd.Profile)
	if _, err := svc.LookupSubject(ctx, "email", "jane.doe@example.com", client.ReadOptions{}); !errors.As(err, &ce) || ce.Status != 404 {
		return fmt.Errorf("demo: the old email still finds the subject: %v", err)
	}
	detail("The old email finds nobody any more: %d %s.", ce.Status, ce.Code)
	dpoKey, err := admin.CreateKey(ctx, client.KeySpec{Name: "demo data-protection officer", Role: string(lethe.RoleDPO)})
	if err != nil {
		return err
	}
	dpo, err := client.New(client.Config{URL: srv.URL, CAFile: srv.CAFile, APIKey: dpoKey.Secret})
	if err != nil {
		return err
	}
	hist, err := dpo.History(ctx, sub.ID)
	if err != nil {
		return err
	}
	for _, h := range hist {
		detail("History v%d by %s at %s: %s", h.Version, h.Principal, h.CreatedAt.Format("15:04:05"), h.Reason)
	}

	say("The shop keeps a token instead of the card number, and detokenizes it for billing.")
	card := "4111 1111 1111 1111"
	toks, err := svc.Tokenize(ctx, sub.ID, []lethe.TokenRequest{{Field: "card", Value: &card}, {Field: "email", Value: &newEmail, Deterministic: true}})
	if err != nil {
		return err
	}
	detail("Card token %s…; email token %s… (the same email always gives the same token).", toks[0].Token[:16], toks[1].Token[:16])
	vals, err := svc.Detokenize(ctx, "billing", []string{toks[0].Token})
	if err != nil {
		return err
	}
	detail("Detokenized for purpose billing: %s.", vals[0].Value)

	say("The customer asks to be forgotten: erasure destroys the subject's key first, then deletes the rows.")
	er, err := dpo.EraseSubject(ctx, sub.ID)
	if err != nil {
		return err
	}
	detail("Erased at %s; every copy of the sealed data, backups included, is now unreadable.", er.ErasedAt.Format("15:04:05"))
	if _, err := svc.ReadSubject(ctx, sub.ID, client.ReadOptions{}); !errors.As(err, &ce) || ce.Status != 410 {
		return fmt.Errorf("demo: reading an erased subject did not answer 410: %v", err)
	}
	detail("Reading it now answers %d %s: %q.", ce.Status, ce.Code, ce.Detail)
	if _, err := svc.Detokenize(ctx, "billing", []string{toks[0].Token}); !errors.As(err, &ce) || ce.Status != 410 {
		return fmt.Errorf("demo: detokenizing an erased subject's token did not answer 410: %v", err)
	}
	detail("Its card token answers %d %s too, although the token row was deleted: the token names its subject, sealed.", ce.Status, ce.Code)

	say("Stopping: in-flight requests finish, then both stores close.")
	stop()
	if err := srv.Wait(); err != nil {
		return err
	}
	detail("Stopped cleanly.")
	if *dataDir == "" {
		detail("The temporary data directory is removed; run 'lethe serve' to keep one in ./lethe-data.")
	}
	return nil
}

// indent prefixes every line written through it, so the server's own start
// messages sit under the demo's step.
type indent struct{ w io.Writer }

func (i *indent) Write(p []byte) (int, error) {
	s := strings.TrimRight(string(p), "\n")
	_, err := fmt.Fprintf(i.w, "   %s\n", strings.ReplaceAll(s, "\n", "\n   "))
	return len(p), err
}
