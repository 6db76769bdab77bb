package request

import (
	"archive/zip"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"filippo.io/age"

	"github.com/lethe-privacy/lethe"
)

// Summary is what Art. 15(1) says a person is told beside their data:
// the purposes, the categories, the recipients, how long it is kept and
// where it came from. The data map gives it.
type Summary struct {
	Organisation string
	Contact      string // whom to write to (the DPO)
	Purposes     []lethe.Purpose
	// Recipients are "name (country; safeguards)".
	Recipients []string
	// Systems are "name: description".
	Systems []string
}

// DownloadTTL is how long an archive's link works; it works once.
const DownloadTTL = 7 * 24 * time.Hour

// download is an archive's one-time link, as stored beside it.
type download struct {
	Hash      []byte    `json:"hash"` // SHA-256 of the token
	Expires   time.Time `json:"expires"`
	Tenant    string    `json:"tenant"`
	Token     []byte    `json:"token"` // sealed, to mail the same link again
	Encrypted bool      `json:"encrypted,omitempty"`
}

// The names of an archive's pieces besides its parts.
const (
	pieceArchive    = "archive.zip"
	pieceDownload   = "download"   // the link: download, JSON
	pieceDownloaded = "downloaded" // the link was used
)

// deliver gives the person the access archive of a completed access or
// portability request — a zip of their data from every system (JSON, and
// CSV per table), their vault record, consent history and audit events,
// and a summary — as a one-time link mailed to them. It may run again (a
// finish retried after a crash): an archive built already is not built
// again, its link is mailed again, and one downloaded already is done.
func (r *Runner) deliver(ctx context.Context, req *lethe.Request, systems []string) error {
	if _, err := r.c.Store.Archive(ctx, req.ID, pieceDownloaded); err == nil {
		return nil
	} else if lethe.ErrorCode(err) != lethe.ENOTFOUND {
		return err
	}
	var dl download
	raw, err := r.c.Store.Archive(ctx, req.ID, pieceDownload)
	switch {
	case err == nil && json.Unmarshal(raw, &dl) == nil:
	case err == nil || lethe.ErrorCode(err) == lethe.ENOTFOUND:
		if dl, err = r.build(ctx, req, systems); err != nil {
			return err
		}
	default:
		return err
	}
	token, err := r.c.OpenSeal(dl.Token, ad("request-link", req.Tenant, req.ID))
	if err != nil {
		return fmt.Errorf("request %s: open link: %w", req.ID, err)
	}
	base := ""
	if r.c.BaseURL != nil {
		base = strings.TrimRight(r.c.BaseURL(), "/")
	}
	link := base + "/v1/self/downloads/" + req.ID + "." + string(token)
	encrypted := ""
	if dl.Encrypted {
		encrypted = "The archive is encrypted to the passphrase you chose, in the age format (age-encryption.org): open it with\n  age --decrypt -o personal-data.zip personal-data.zip.age\nor any other age tool.\n\n"
	}
	return tell(ctx, r.c.Mail, r.c.OpenSeal, r.c.Summary.Organisation, req, "Your data",
		fmt.Sprintf("Your request %s is done. Your data, and what is done with it, is in one archive:\n\n%s\n\n%s"+
			"The link works once, until %s. Keep the archive safe: it holds your personal data.\n",
			req.ID, link, encrypted, dl.Expires.Format("2 January 2006 15:04 UTC")))
}

// build makes the archive from the parts, seals and stores it with its
// link, then deletes the parts, and returns the link.
func (r *Runner) build(ctx context.Context, req *lethe.Request, systems []string) (download, error) {
	var buf bytes.Buffer
	z := zip.NewWriter(&buf)
	add := func(name string, data []byte) error {
		w, err := z.Create(name)
		if err != nil {
			return err
		}
		_, err = w.Write(data)
		return err
	}
	var counts []string
	for _, system := range systems {
		raw, err := r.readPart(ctx, req, system)
		if lethe.ErrorCode(err) == lethe.ENOTFOUND {
			continue // the system found nothing to export, or cannot export
		} else if err != nil {
			return download{}, fmt.Errorf("request %s: archive part %s: %w", req.ID, system, err)
		}
		var part archiveSink
		if err := json.Unmarshal(raw, &part); err != nil {
			return download{}, fmt.Errorf("request %s: archive part %s: %w", req.ID, system, err)
		}
		if err := add("data/"+system+".json", raw); err != nil {
			return download{}, err
		}
		for loc, table := range tables(part.Records) {
			if err := add("data/"+system+"/"+safeName(loc)+".csv", table); err != nil {
				return download{}, err
			}
		}
		for _, f := range part.Files {
			if err := add("files/"+system+"/"+safeName(f.Location)+"/"+safeName(f.Name), f.Data); err != nil {
				return download{}, err
			}
		}
		counts = append(counts, fmt.Sprintf("%s: %d records, %d files", system, len(part.Records), len(part.Files)))
	}
	if req.SubjectID != "" {
		v, err := r.c.Vault.ReadSubject(ctx, actorOf(req), req.Tenant, req.SubjectID, lethe.ReadOptions{})
		if err != nil {
			return download{}, fmt.Errorf("request %s: read subject: %w", req.ID, err)
		}
		b, _ := json.MarshalIndent(v, "", "  ")
		if err := add("data/lethe-vault.json", b); err != nil {
			return download{}, err
		}
		if r.c.Ledger != nil {
			hist, err := r.c.Ledger.History(ctx, actorOf(req), req.Tenant, req.SubjectID)
			if err != nil {
				return download{}, fmt.Errorf("request %s: consent history: %w", req.ID, err)
			}
			b, _ := json.MarshalIndent(hist, "", "  ")
			if err := add("data/consent-history.json", b); err != nil {
				return download{}, err
			}
		}
		if r.c.Trail != nil {
			bundle, err := r.c.Trail.SubjectEvents(ctx, actorOf(req), lethe.AuditQuery{Tenant: req.Tenant, SubjectID: req.SubjectID})
			if err != nil {
				return download{}, fmt.Errorf("request %s: audit events: %w", req.ID, err)
			}
			b, _ := json.MarshalIndent(bundle, "", "  ")
			if err := add("data/audit-events.json", b); err != nil {
				return download{}, err
			}
		}
	}
	if err := add("README.txt", []byte(r.summary(req, counts))); err != nil {
		return download{}, err
	}
	if err := z.Close(); err != nil {
		return download{}, err
	}
	d, err := r.details(req)
	if err != nil {
		return download{}, err
	}
	archive := buf.Bytes()
	if d.Passphrase != "" {
		if archive, err = encryptTo(d.Passphrase, archive); err != nil {
			return download{}, fmt.Errorf("request %s: encrypt the archive: %w", req.ID, err)
		}
	}
	token := make([]byte, 32)
	rand.Read(token) // never returns an error
	tok := base64.RawURLEncoding.EncodeToString(token)
	sum := sha256.Sum256([]byte(tok))
	// The archive and its link expire together; the sweep deletes both.
	dl := download{Hash: sum[:], Expires: r.c.Now().Add(DownloadTTL).UTC(), Tenant: req.Tenant,
		Token: r.c.Seal([]byte(tok), ad("request-link", req.Tenant, req.ID)), Encrypted: d.Passphrase != ""}
	if err := r.c.Store.PutArchive(ctx, req.ID, pieceArchive, r.c.Seal(archive, ad("request-archive", req.Tenant, req.ID, pieceArchive)), dl.Expires); err != nil {
		return download{}, err
	}
	raw, _ := json.Marshal(dl)
	if err := r.c.Store.PutArchive(ctx, req.ID, pieceDownload, raw, dl.Expires); err != nil {
		return download{}, err
	}
	// Built: the parts are not needed again (a retry mails this link).
	for _, system := range systems {
		if _, err := r.c.Store.TakeArchive(ctx, req.ID, partName(system)); err != nil && lethe.ErrorCode(err) != lethe.ENOTFOUND {
			return download{}, err
		}
	}
	return dl, nil
}

// safeName keeps a location or file name one path element.
func safeName(s string) string {
	s = strings.Map(func(r rune) rune {
		if r == '/' || r == '\\' || r < ' ' {
			return '_'
		}
		return r
	}, s)
	if s == "" || s == "." || s == ".." {
		return "_"
	}
	return s
}

// tables renders an export's records as CSV, one per location.
func tables(records []archiveRecord) map[string][]byte {
	byLoc := map[string][]archiveRecord{}
	for _, rec := range records {
		byLoc[rec.Location] = append(byLoc[rec.Location], rec)
	}
	out := map[string][]byte{}
	for loc, recs := range byLoc {
		var b bytes.Buffer
		w := csv.NewWriter(&b)
		cols := recs[0].Columns
		w.Write(cols)
		for _, rec := range recs {
			row := make([]string, len(cols))
			for i, c := range cols {
				if v := rec.Fields[c]; v != nil {
					row[i] = fmt.Sprint(v)
				}
			}
			w.Write(row)
		}
		w.Flush()
		out[loc] = b.Bytes()
	}
	return out
}

// summary is the archive's README: what Art. 15(1)(a)–(h) asks.
func (r *Runner) summary(req *lethe.Request, counts []string) string {
	s := r.c.Summary
	var b strings.Builder
	fmt.Fprintf(&b, "Your personal data held by %s\n", s.Organisation)
	fmt.Fprintf(&b, "Request %s (%s), received %s, answered %s.\n\n", req.ID, req.Type, req.ReceivedAt.Format(time.DateOnly), r.c.Now().UTC().Format(time.DateOnly))
	b.WriteString("This archive holds every record about you in each of our systems (data/, as JSON and as CSV per table), the files you gave us (files/), your record in our privacy vault, the history of your consents, and the log of who read or changed your data (data/audit-events.json, each entry with its proof against our signed audit log).\n\n")
	if len(counts) > 0 {
		b.WriteString("What each system held:\n")
		for _, c := range counts {
			fmt.Fprintf(&b, "  - %s\n", c)
		}
		b.WriteString("\n")
	}
	if len(s.Purposes) > 0 {
		b.WriteString("Why we process personal data, on what legal basis, and for how long (Art. 15(1)(a), (d)):\n")
		for _, p := range s.Purposes {
			fmt.Fprintf(&b, "  - %s (%s): %s", p.Key, strings.ReplaceAll(string(p.Basis), "_", " "), strings.TrimSpace(p.Description))
			if p.Retention != "" {
				fmt.Fprintf(&b, " Kept: %s.", p.Retention)
			}
			if len(p.Categories) > 0 {
				fmt.Fprintf(&b, " Data: %s.", strings.Join(p.Categories, ", "))
			}
			b.WriteString("\n")
		}
		b.WriteString("\n")
	}
	var cats []string
	for _, p := range s.Purposes {
		for _, c := range p.Categories {
			if !slices.Contains(cats, c) {
				cats = append(cats, c)
			}
		}
	}
	slices.Sort(cats)
	if len(cats) > 0 {
		fmt.Fprintf(&b, "Categories of personal data (Art. 15(1)(b)): %s.\n\n", strings.Join(cats, ", "))
	}
	if len(s.Recipients) > 0 {
		b.WriteString("Who receives personal data (Art. 15(1)(c), and transfers outside the EEA, 15(2)):\n")
		for _, rc := range s.Recipients {
			fmt.Fprintf(&b, "  - %s\n", rc)
		}
		b.WriteString("\n")
	}
	if len(s.Systems) > 0 {
		b.WriteString("Where it is kept (and where it came from: you, or the systems below) (Art. 15(1)(g)):\n")
		for _, sys := range s.Systems {
			fmt.Fprintf(&b, "  - %s\n", sys)
		}
		b.WriteString("\n")
	}
	b.WriteString("Your rights (Art. 15(1)(e), (f)): you may ask us to correct or erase your data, to restrict or object to its processing, and you may complain to a data-protection supervisory authority.\n")
	b.WriteString("We make no decisions about you based solely on automated processing (Art. 15(1)(h)).\n")
	if s.Contact != "" {
		fmt.Fprintf(&b, "Questions: %s\n", s.Contact)
	}
	return b.String()
}

// Download returns the archive a link names, once: ENOTFOUND for a link
// that is wrong, used or expired (the same answer, so that nothing can be
// learnt by trying). Of two downloads racing, on any instances, one gets
// it. Once downloaded, nothing of the person is kept.
func (r *Runner) Download(ctx context.Context, link string) ([]byte, error) {
	gone := lethe.Errorf(lethe.ENOTFOUND, "this link is not valid, or was used or expired; ask for your data again")
	id, tok, ok := strings.Cut(link, ".")
	if !ok || !lethe.ValidRequestID(id) {
		return nil, gone
	}
	raw, err := r.c.Store.Archive(ctx, id, pieceDownload)
	if lethe.ErrorCode(err) == lethe.ENOTFOUND {
		return nil, gone
	} else if err != nil {
		return nil, err
	}
	var d download
	if json.Unmarshal(raw, &d) != nil {
		return nil, gone
	}
	sum := sha256.Sum256([]byte(tok))
	if r.c.Now().After(d.Expires) || subtle.ConstantTimeCompare(d.Hash, sum[:]) != 1 {
		return nil, gone
	}
	req, err := r.c.Store.Request(ctx, d.Tenant, id)
	if err != nil {
		return nil, gone
	}
	sealed, err := r.c.Store.TakeArchive(ctx, id, pieceArchive)
	if lethe.ErrorCode(err) == lethe.ENOTFOUND {
		return nil, gone // used
	} else if err != nil {
		return nil, err
	}
	// Until it is given out, a failure puts it back for the next try, even
	// if the person's connection is gone.
	putBack := func(err error) error {
		if perr := r.c.Store.PutArchive(context.WithoutCancel(ctx), id, pieceArchive, sealed, d.Expires); perr != nil {
			return errors.Join(err, perr)
		}
		return err
	}
	archive, err := r.c.OpenSeal(sealed, ad("request-archive", req.Tenant, req.ID, pieceArchive))
	if err != nil {
		return nil, putBack(fmt.Errorf("request %s: open archive: %w", id, err))
	}
	if err := record(ctx, r.c.Audit, r.c.Now(), lethe.RequestSelf, "request.download", "ok", req); err != nil {
		return nil, putBack(err) // not given out unaudited
	}
	// Given out: nothing of the person is kept, and a finish run again
	// knows not to build it again.
	if err := r.c.Store.DeleteArchive(ctx, id); err != nil {
		r.c.Logger.Warn("archive pieces kept after the download until they expire", "request", id, "err", err.Error())
	}
	if err := r.c.Store.PutArchive(ctx, id, pieceDownloaded, []byte{1}, d.Expires); err != nil {
		r.c.Logger.Warn("the download was not marked", "request", id, "err", err.Error())
	}
	return archive, nil
}

// encryptTo encrypts an archive to a passphrase with age's scrypt
// recipient, so that it starts "age-encryption.org/v1" (how the download
// route names the file).
func encryptTo(passphrase string, data []byte) ([]byte, error) {
	rcpt, err := age.NewScryptRecipient(passphrase)
	if err != nil {
		return nil, err
	}
	var out bytes.Buffer
	w, err := age.Encrypt(&out, rcpt)
	if err != nil {
		return nil, err
	}
	if _, err := w.Write(data); err != nil {
		return nil, err
	}
	if err := w.Close(); err != nil {
		return nil, err
	}
	return out.Bytes(), nil
}

// AgeHeader begins an archive encrypted to a passphrase.
const AgeHeader = "age-encryption.org/v1\n"
