package main

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"golang.org/x/mod/sumdb/note"

	"github.com/lethe-privacy/lethe"
	"github.com/lethe-privacy/lethe/client"
	"github.com/lethe-privacy/lethe/examples/shop"
	"github.com/lethe-privacy/lethe/internal/audit"
	"github.com/lethe-privacy/lethe/internal/connector"
	"github.com/lethe-privacy/lethe/internal/request"
)

// demoPurposes are the purposes the demo declares, if its data directory
// has none.
const demoPurposes = `purposes:
  - key: billing
    description: Invoices and payment of orders
    legal_basis: contract
    data_categories: [user.financial, user.contact.email]
    data_use: essential.service.payment_processing
    policy: {version: "2026-01", text_file: privacy-2026-01.txt}
  - key: newsletter
    description: Monthly newsletter by email
    legal_basis: consent
    direct_marketing: true
    data_categories: [user.contact.email]
    data_use: marketing.communications
    policy: {version: "2026-01", text_file: privacy-2026-01.txt}
`

// writeDemoPurposes declares the demo's purposes in dir, unless it has
// purposes already.
func writeDemoPurposes(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	path := filepath.Join(dir, "purposes.yaml")
	if _, err := os.Stat(path); err == nil {
		return nil
	}
	text := "Demo shop privacy notice, January 2026: we bill your orders, and send a newsletter if you ask for it.\n"
	if err := os.WriteFile(filepath.Join(dir, "privacy-2026-01.txt"), []byte(text), 0o600); err != nil {
		return err
	}
	return os.WriteFile(path, []byte(demoPurposes), 0o600)
}

// demo starts a server on the embedded default and narrates, step by step,
// what it does: keys, the vault, consent, erasure and the audit log.
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
	if err := writeDemoPurposes(dir); err != nil {
		return err
	}
	shopDir := filepath.Join(dir, "shop")
	shopDB, customers, err := demoShop(ctx, shopDir)
	if err != nil {
		return err
	}
	defer shopDB.Close()
	cfg := DefaultConfig()
	cfg.DataDir, cfg.Addr = dir, "127.0.0.1:0"
	cfg.Datamap = filepath.Join(shopDir, "lethe.yaml")
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

	say("Jane subscribes to the newsletter: her consent is recorded with proof, and audited.")
	evs, err := svc.RecordConsent(ctx, []lethe.ConsentRecord{{SubjectID: sub.ID, Purpose: "newsletter", Kind: lethe.ConsentGrant,
		Channel: "web_form", IP: "203.0.113.7", UserAgent: "Mozilla/5.0 (demo)"}})
	if err != nil {
		return err
	}
	detail("Ledger revision %d: %s to %s, policy %s (text SHA-256 %s…), IP and browser kept only as keyed hashes.",
		evs[0].Revision, evs[0].Kind, evs[0].Purpose, evs[0].PolicyVersion, evs[0].TextHash[:12])
	cache, err := svc.NewConsentCache(ctx, client.ConsentCacheConfig{})
	if err != nil {
		return err
	}
	defer cache.Close()
	ok, err := cache.Allowed(ctx, sub.ID, "newsletter")
	if err != nil || !ok {
		return fmt.Errorf("demo: the newsletter check did not allow after consent: %v, %v", ok, err)
	}
	detail("The newsletter job asks its in-process cache before sending: allowed (consent).")

	say("Jane unsubscribes. The withdrawal reaches the job's cache through the ledger's stream.")
	if _, err := svc.RecordConsent(ctx, []lethe.ConsentRecord{{SubjectID: sub.ID, Purpose: "newsletter", Kind: lethe.ConsentWithdraw, Channel: "web_form"}}); err != nil {
		return err
	}
	withdrawn := time.Now()
	for {
		d, err := cache.Check(ctx, sub.ID, "newsletter")
		if err != nil {
			return err
		}
		if !d.Allowed {
			detail("The cache denies %v later: %s.", time.Since(withdrawn).Round(time.Millisecond), d.Reason)
			break
		}
		if time.Since(withdrawn) > 5*time.Second {
			return errors.New("demo: the cache still allowed the newsletter 5 s after the withdrawal")
		}
	}
	if _, err := svc.Detokenize(ctx, "newsletter", []string{toks[1].Token}); !errors.As(err, &ce) || ce.Status != 403 {
		return fmt.Errorf("demo: detokenizing for the newsletter after the withdrawal was not refused: %v", err)
	}
	detail("Detokenizing her email for the newsletter is refused as well: %d %s.", ce.Status, ce.Code)

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
	if d, err := cache.Check(ctx, sub.ID, "billing"); err != nil || d.Allowed {
		return fmt.Errorf("demo: billing was still allowed after the erasure: %+v, %v", d, err)
	} else {
		detail("Every processing check for her now denies: %s.", d.Reason)
	}
	cache.Close()

	if err := m.demoRequests(ctx, say, detail, svc, dpo, shopDB, customers, dir); err != nil {
		return err
	}

	say("Stopping: in-flight requests finish, then both stores close.")
	stop()
	if err := srv.Wait(); err != nil {
		return err
	}
	detail("Stopped cleanly.")

	say("An auditor checks the audit log against its signed checkpoints (with a copy of the verifier key kept elsewhere, this needs no trust in this machine).")
	key, err := os.ReadFile(filepath.Join(auditDir(dir), verifierKeyFile))
	if err != nil {
		return err
	}
	v, err := note.NewVerifier(strings.TrimSpace(string(key)))
	if err != nil {
		return err
	}
	r, err := audit.Verify(auditDir(dir), audit.VerifyOptions{Origin: v.Name(), Verifier: v})
	if err != nil {
		return err
	}
	if !r.OK() {
		return fmt.Errorf("demo: the audit log does not verify: %+v", r.Problems)
	}
	detail("lethe audit verify: OK, %d events (every access above, never a value) under %d signed checkpoint(s).", r.Entries, r.Checkpoints)
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

// demoShop makes the sample shop on SQLite, with its uploads and its data
// map, in dir.
func demoShop(ctx context.Context, dir string) (*sql.DB, []shop.Customer, error) {
	if err := shop.WriteManifest(dir, shop.SQLiteOnly); err != nil {
		return nil, nil, err
	}
	db, err := sql.Open("sqlite", "file:"+filepath.Join(dir, "shop.db")+"?_pragma=foreign_keys(1)&_pragma=busy_timeout(5000)")
	if err != nil {
		return nil, nil, err
	}
	if err := shop.Create(ctx, db, shop.SQLite); err != nil {
		db.Close()
		return nil, nil, err
	}
	cs, err := shop.Seed(ctx, db, shop.SQLite, 3, 1)
	if err != nil {
		db.Close()
		return nil, nil, err
	}
	if err := shop.SeedFiles(filepath.Join(dir, "uploads"), cs); err != nil {
		db.Close()
		return nil, nil, err
	}
	return db, cs, nil
}

// demoRequests runs one data-subject request of each type for a customer
// of the sample shop, through the job queue, and shows the erasure's
// receipt.
func (m *Main) demoRequests(ctx context.Context, say func(string, ...any), detail func(string, ...any), svc, dpo *client.Client, db *sql.DB, cs []shop.Customer, dir string) error {
	c := cs[0]
	say("The data map (shop/lethe.yaml): the sample shop's database (SQLite here) and its avatar uploads. A customer, %s in the shop, becomes a Lethe subject.", strconv.FormatInt(c.ID, 10))
	s, err := svc.CreateSubject(ctx, shop.Identifiers(c), nil)
	if err != nil {
		return err
	}
	if _, err := db.ExecContext(ctx, "UPDATE customers SET lethe_id = ? WHERE id = ?", s.ID, c.ID); err != nil {
		return err
	}
	detail("Subject %s; the shop keeps that ID in customers.lethe_id.", s.ID)
	asks := []lethe.RequestAsk{
		{Type: lethe.RequestAccess},
		{Type: lethe.RequestPortability},
		{Type: lethe.RequestRectification, Values: map[string]string{"user.contact.phone_number": "+44 20 7946 0000"}},
		{Type: lethe.RequestRestriction, Reason: "accuracy_contested"},
		{Type: lethe.RequestObjection, Purpose: "newsletter", Reason: "direct_marketing"},
		{Type: lethe.RequestErasure},
	}
	say("The customer makes one request of each kind; the DPO verified who they are, so no code is sent.")
	for _, ask := range asks {
		ask.SubjectID, ask.Contact, ask.Verified = s.ID, c.Email, true
		start := time.Now()
		r, err := dpo.CreateRequest(ctx, ask)
		if err != nil {
			return err
		}
		if r.State == lethe.RequestAwaitingApproval {
			detail("%s waits for the DPO's approval (erasures do); approving it.", r.ID)
			if _, err := dpo.ApproveRequest(ctx, r.ID); err != nil {
				return err
			}
		}
		var v *client.RequestView
		for {
			if v, err = dpo.Request(ctx, r.ID); err != nil {
				return err
			}
			if !v.State.Open() {
				break
			}
			if time.Since(start) > time.Minute {
				return fmt.Errorf("demo: request %s stayed %s", r.ID, v.State)
			}
			time.Sleep(50 * time.Millisecond)
		}
		var done []string
		for _, t := range v.Tasks {
			var rep connector.Report
			json.Unmarshal(t.Report, &rep)
			done = append(done, fmt.Sprintf("%s %d", t.System, rep.Total()))
		}
		detail("%-13s %s %s in %d ms (%s)", ask.Type, r.ID, v.State, time.Since(start).Milliseconds(), strings.Join(done, ", "))
		switch ask.Type {
		case lethe.RequestAccess:
			detail("              the customer got a one-time link to a zip of their data and what is done with it: see %s", filepath.Join(dir, "outbox"))
		case lethe.RequestErasure:
			var signed request.SignedReceipt
			if err := json.Unmarshal(v.Receipt, &signed); err != nil {
				return err
			}
			var rc request.Receipt
			if err := json.Unmarshal(signed.Receipt, &rc); err != nil {
				return err
			}
			detail("The erasure receipt, signed (Ed25519, %s…):", signed.Signature[:16])
			for _, sys := range rc.Systems {
				var steps []string
				for _, st := range sys.Report.Steps {
					steps = append(steps, fmt.Sprintf("%s %s %d", st.Action, st.Location, st.Count))
				}
				detail("   %s: %s", sys.System, strings.Join(steps, ", "))
			}
			detail("   subject key destroyed at %s, after every system was done", rc.KeyDestroyedAt.Format(time.RFC3339))
		}
	}
	var email string
	db.QueryRowContext(ctx, "SELECT email FROM customers WHERE id = ?", c.ID).Scan(&email)
	detail("In the shop the customer row is kept (invoices must be, for 10 years) but no longer names them: email is now %s.", email)
	return nil
}
