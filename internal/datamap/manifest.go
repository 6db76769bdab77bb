package datamap

import (
	"fmt"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/lethe-privacy/lethe"
)

// Manifest is a deployment's data map: who is responsible, why personal
// data is processed, every system that holds it and how, who receives it,
// and how it flows. Requests, retention, masking and the Article 30 record
// are derived from it.
type Manifest struct {
	Version      int          `yaml:"version"`
	Organisation Organisation `yaml:"organisation"`
	DPO          Contact      `yaml:"dpo"`
	Purposes     []lethe.Purpose
	// Categories declares data categories of the deployment's own, beyond
	// the Fides taxonomy (for example user.loyalty.tier).
	Categories []Category  `yaml:"categories"`
	Recipients []Recipient `yaml:"recipients"`
	Systems    []System    `yaml:"systems"`
	Flows      []Flow      `yaml:"flows"`
	Files      []string    `yaml:"-"` // the files it was read from
	purposePos map[string]Pos
}

// Pos is where something was declared, for errors.
type Pos struct {
	File   string `yaml:"-" json:"-"`
	Line   int    `yaml:"-" json:"-"`
	Column int    `yaml:"-" json:"-"`
}

func (p Pos) String() string {
	if p.Line == 0 {
		return p.File
	}
	return fmt.Sprintf("%s:%d:%d", p.File, p.Line, p.Column)
}

// Organisation is the controller (Art. 30(1)(a)).
type Organisation struct {
	Name           string `yaml:"name"`
	Address        string `yaml:"address"`
	Contact        string `yaml:"contact"`
	Representative string `yaml:"representative"` // in the Union, where Art. 27 asks for one
}

// Contact is a person or team to write to.
type Contact struct {
	Name  string `yaml:"name"`
	Email string `yaml:"email"`
	Phone string `yaml:"phone"`
}

// Category is a data category of the deployment's own.
type Category struct {
	Key         string `yaml:"key"`
	Description string `yaml:"description"`
	Pos         `yaml:"-"`
}

// Recipient is someone personal data is disclosed to (Art. 30(1)(d)): a
// processor, a third party, an authority.
type Recipient struct {
	Key         string `yaml:"key"`
	Name        string `yaml:"name"`
	Description string `yaml:"description"`
	Country     string `yaml:"country"` // ISO 3166-1 alpha-2
	// Safeguards names the transfer mechanism when Country is outside the
	// EEA (adequacy decision, standard contractual clauses …).
	Safeguards string `yaml:"safeguards"`
	Pos        `yaml:"-"`
}

// Flow is personal data moving from one system to another, or to a
// recipient.
type Flow struct {
	From       string   `yaml:"from"`
	To         string   `yaml:"to"`
	Categories []string `yaml:"categories"`
	Purpose    string   `yaml:"purpose"`
	Pos        `yaml:"-"`
}

// The kinds of system.
const (
	KindPostgres = "postgres"
	KindMySQL    = "mysql" // MySQL and MariaDB
	KindSQLite   = "sqlite"
	KindRedis    = "redis"
	KindFiles    = "files"
	KindWebhook  = "webhook" // a third party told over signed HTTP
	KindManual   = "manual"  // a person with a checklist
)

// Kinds lists the system kinds a manifest may name.
var Kinds = []string{KindPostgres, KindMySQL, KindSQLite, KindRedis, KindFiles, KindWebhook, KindManual}

// System is one place personal data lives.
type System struct {
	Name        string `yaml:"name"`
	Kind        string `yaml:"kind"`
	Description string `yaml:"description"`
	// Connection references the connection string (postgres, mysql,
	// redis), the database file (sqlite), the root directory (files), or
	// the HMAC secret (webhook): never the value itself.
	Connection SecretRef `yaml:"connection"`
	Purposes   []string  `yaml:"purposes"`
	// Recipient names the recipient a webhook system discloses to.
	Recipient string     `yaml:"recipient"`
	Tables    []Table    `yaml:"tables"`  // postgres, mysql, sqlite
	Keys      []KeySpace `yaml:"keys"`    // redis
	Files     []FileSet  `yaml:"files"`   // files
	Webhook   *Webhook   `yaml:"webhook"` // webhook
	Manual    *Manual    `yaml:"manual"`  // manual
	Pos       `yaml:"-"`
}

// SecretRef names where a secret or a connection string is: an
// environment variable or a file (such as a mounted secret). The manifest
// never holds the value. Path is allowed where the value is no secret: the
// file of an SQLite database, the root of a file store (relative to the
// manifest's directory).
type SecretRef struct {
	Env  string `yaml:"env"`
	File string `yaml:"file"`
	Path string `yaml:"path"`
	Pos  `yaml:"-"`
}

// Resolve returns the referenced value. Errors name the variable or the
// file, never the value.
func (r SecretRef) Resolve() (string, error) {
	switch {
	case r.Env != "":
		v, ok := os.LookupEnv(r.Env)
		if !ok || v == "" {
			return "", fmt.Errorf("environment variable %s is not set", r.Env)
		}
		return v, nil
	case r.File != "":
		b, err := os.ReadFile(r.File)
		if err != nil {
			return "", fmt.Errorf("read secret file %s: %w", r.File, unwrapPathError(err))
		}
		v := strings.TrimRight(string(b), "\r\n")
		if v == "" {
			return "", fmt.Errorf("secret file %s is empty", r.File)
		}
		return v, nil
	case r.Path != "":
		return r.Path, nil
	}
	return "", fmt.Errorf("no connection reference (env, file or path)")
}

// String names the reference, never the value.
func (r SecretRef) String() string {
	switch {
	case r.Env != "":
		return "env " + r.Env
	case r.File != "":
		return "file " + r.File
	case r.Path != "":
		return "path " + r.Path
	}
	return "none"
}

func unwrapPathError(err error) error {
	if pe, ok := err.(*os.PathError); ok {
		return pe.Err
	}
	return err
}

// Table is a table (or view) of a relational system that holds personal
// data. Its rows belong to a subject either directly, by Subject (a column
// holding the Lethe subject ID or one of the subject's identifiers), or
// through a foreign key to a table that does, by Via.
type Table struct {
	Name    string `yaml:"name"`
	Subject *Link  `yaml:"subject"`
	Via     *Via   `yaml:"via"`
	// Key names the primary key columns; read from the live schema when
	// empty.
	Key []string `yaml:"key"`
	// Erase is what erasure does to the subject's rows: ActionDelete the
	// rows; "update" them with each column's action; or ActionRetain them
	// under Retain (columns' actions still apply now) and delete them
	// once the retention period is over.
	Erase  string     `yaml:"erase"`
	Retain *Retention `yaml:"retain"`
	// NoExport leaves the table out of access and portability exports
	// (rows that hold nothing of the person's own, say).
	NoExport bool     `yaml:"no_export"`
	Columns  []Column `yaml:"columns"`
	// Restrict is what a restriction of processing (Art. 18) or an
	// objection to a purpose (Art. 21) writes into the subject's rows.
	Restrict []Restriction `yaml:"restrict"`
	Pos      `yaml:"-"`
}

// Restriction is one entry of a table's restrict action: the values Set
// writes into the subject's rows (a flag the application checks before it
// processes them). Without Objection it applies to a restriction of
// processing (Art. 18); with it, to an objection (Art. 21) to any of the
// purposes it lists.
type Restriction struct {
	Set       Assignments `yaml:"set"`
	Objection []string    `yaml:"objection"`
	Pos       `yaml:"-"`
}

// AppliesTo reports whether the entry applies to a restriction (objection
// "") or to an objection to the purpose.
func (r *Restriction) AppliesTo(objection string) bool {
	if objection == "" {
		return len(r.Objection) == 0
	}
	return slices.Contains(r.Objection, objection)
}

// Restrictions returns the table's entries that apply to a restriction
// (objection "") or to an objection to the purpose, in the map's order.
func (t *Table) Restrictions(objection string) []Restriction {
	var out []Restriction
	for _, r := range t.Restrict {
		if r.AppliesTo(objection) {
			out = append(out, r)
		}
	}
	return out
}

// Assignments are the columns a restrict entry writes, in the map's
// order.
type Assignments []Assignment

// Assignment is one column and the fixed value written into it: nil
// (NULL), a bool, an int64, a float64 or a string, as the YAML scalar
// reads (quote a string that would read as another type: "1", "true").
type Assignment struct {
	Column string
	Value  any
	Pos
}

// Kind names the value's type for messages that must not repeat the
// value: "null", "true or false", "an integer", "a number" or "a string".
func (a Assignment) Kind() string {
	switch a.Value.(type) {
	case nil:
		return "null"
	case bool:
		return "true or false"
	case int64:
		return "an integer"
	case float64:
		return "a number"
	}
	return "a string"
}

// EraseUpdate is a table's erasure by its columns' actions.
const EraseUpdate = "update"

// Link says how a table's rows or a store's keys name their subject.
type Link struct {
	Column string `yaml:"column"`
	// Identifier is the identifier kind the column holds: "subject" (the
	// Lethe subject ID, the default), email, phone, or an app's own kind.
	Identifier string `yaml:"identifier"`
	Pos        `yaml:"-"`
}

// Via links a table to its subject through a foreign key: Column holds
// the value of Parent's References column.
type Via struct {
	Column     string `yaml:"column"`
	Parent     string `yaml:"parent"`
	References string `yaml:"references"`
	Pos        `yaml:"-"`
}

// Column is a column that holds personal data, or that erasure writes.
type Column struct {
	Name     string `yaml:"name"`
	Category string `yaml:"category"`
	// Erase is ActionNull, ActionPlaceholder (with Placeholder),
	// ActionPseudonymize or ActionKeep.
	Erase       string `yaml:"erase"`
	Placeholder string `yaml:"placeholder"`
	Pos         `yaml:"-"`
}

// Retention keeps rows under a legal basis until Period after the time in
// Column (invoices: legal_obligation, issued_at, 10y).
type Retention struct {
	Basis  lethe.LegalBasis `yaml:"basis"`
	Column string           `yaml:"column"`
	Period Period           `yaml:"period"`
	Reason string           `yaml:"reason"`
	Pos    `yaml:"-"`
}

// Period is a calendar length: years, months and days, written like 10y,
// 6mo, 90d, 2w or 1y6mo.
type Period struct {
	Years, Months, Days int
}

// After returns t plus the period.
func (p Period) After(t time.Time) time.Time { return t.AddDate(p.Years, p.Months, p.Days) }

// IsZero reports whether the period is empty.
func (p Period) IsZero() bool { return p == Period{} }

func (p Period) String() string {
	var b strings.Builder
	if p.Years != 0 {
		fmt.Fprintf(&b, "%dy", p.Years)
	}
	if p.Months != 0 {
		fmt.Fprintf(&b, "%dmo", p.Months)
	}
	if p.Days != 0 {
		fmt.Fprintf(&b, "%dd", p.Days)
	}
	if b.Len() == 0 {
		return "0d"
	}
	return b.String()
}

// KeySpace is a family of Redis keys holding a subject's data: keys whose
// name holds the subject's link (Pattern "session:{subject}", "cart:{shop_customer_id}"),
// or, with Member, one key whose members do ("newsletter:subscribers" with
// member "{email}").
type KeySpace struct {
	// Pattern is the key name, with one placeholder in braces naming the
	// identifier kind it holds ({subject} for the Lethe subject ID).
	Pattern string `yaml:"pattern"`
	// Type is the Redis type: string, hash, set, zset or list.
	Type string `yaml:"type"`
	// Member, for a set or sorted set, holds the placeholder: the subject
	// is a member of the one key Pattern names (which then has none).
	Member     string   `yaml:"member"`
	Categories []string `yaml:"categories"`
	// TTLOnly declares a cache whose keys expire by themselves; erasure
	// still deletes them at once.
	TTLOnly bool `yaml:"ttl_only"`
	Pos     `yaml:"-"`
}

// FileSet is a family of files holding a subject's data, under the files
// system's root: Pattern is a glob with one placeholder in braces naming
// the identifier kind (avatars/{shop_customer_id}/*). Derived files (the
// thumbnails of an avatar) are declared by their own patterns, with the
// same placeholder, and go with their source.
type FileSet struct {
	Pattern    string   `yaml:"pattern"`
	Derived    []string `yaml:"derived"`
	Categories []string `yaml:"categories"`
	Pos        `yaml:"-"`
}

// Webhook is a third party told over HTTPS: Lethe posts a JSON request
// signed with an HMAC of the system's connection secret; the third party
// answers at once, or later through Lethe's callback.
type Webhook struct {
	URL string `yaml:"url"`
	// Callback says the third party acknowledges later, through
	// POST /v1/callbacks/{system}, rather than in its answer.
	Callback   bool     `yaml:"callback"`
	Timeout    Duration `yaml:"timeout"` // for one HTTP call; 10s if zero
	Categories []string `yaml:"categories"`
	Pos        `yaml:"-"`
}

// Manual is a system nobody can reach by program: a person is given a
// checklist, and closes the task through the API.
type Manual struct {
	Assignee   string   `yaml:"assignee"`
	Checklist  []string `yaml:"checklist"`
	Categories []string `yaml:"categories"`
	Pos        `yaml:"-"`
}

// Duration is a time.Duration written as Go writes one (30s, 2m).
type Duration time.Duration
