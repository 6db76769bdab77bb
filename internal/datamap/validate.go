package datamap

import (
	"errors"
	"fmt"
	"net/url"
	"regexp"
	"slices"
	"strings"

	"github.com/lethe-privacy/lethe"
	"github.com/lethe-privacy/lethe/internal/connector"
)

// Problem is one thing wrong with a manifest: where, what, and a hint.
type Problem struct {
	Pos  Pos
	Msg  string
	Hint string
}

func (p *Problem) Error() string {
	s := p.Pos.String() + ": " + p.Msg
	if p.Hint != "" {
		s += " (" + p.Hint + ")"
	}
	return s
}

// Problems is every problem Validate found, one per line in Error.
type Problems []*Problem

func (ps Problems) Error() string {
	var b strings.Builder
	for i, p := range ps {
		if i > 0 {
			b.WriteByte('\n')
		}
		b.WriteString(p.Error())
	}
	return b.String()
}

var (
	nameRE       = regexp.MustCompile(`^[a-z][a-z0-9_]{0,62}$`)
	sqlNameRE    = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_$]{0,62}$`)
	envRE        = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
	placeholdRE  = regexp.MustCompile(`\{([^{}]*)\}`)
	redisTypes   = []string{"string", "hash", "set", "zset", "list"}
	tableErasure = []string{connector.ActionDelete, EraseUpdate, connector.ActionRetain}
	columnErase  = []string{connector.ActionNull, connector.ActionPlaceholder, connector.ActionPseudonymize, connector.ActionKeep}
)

// Validate checks the manifest as a whole and returns Problems, or nil.
// It needs no system to be reachable (`lethe datamap check` compares the
// map with the live systems).
func (m *Manifest) Validate() error {
	v := &validator{m: m}
	v.run()
	if len(v.ps) == 0 {
		return nil
	}
	return v.ps
}

type validator struct {
	m  *Manifest
	ps Problems
}

func (v *validator) add(p Pos, hint, format string, args ...any) {
	v.ps = append(v.ps, &Problem{Pos: p, Msg: fmt.Sprintf(format, args...), Hint: hint})
}

func (v *validator) run() {
	m := v.m
	first := Pos{}
	if len(m.Files) > 0 {
		first.File = m.Files[0]
	}
	if m.Version != 1 {
		v.add(first, "write version: 1 at the top", "version %d is not supported", m.Version)
	}
	if strings.TrimSpace(m.Organisation.Name) == "" {
		v.add(first, "the controller's name goes into the Article 30 record and every access report", "organisation.name is required")
	}
	if m.DPO.Email == "" && m.Organisation.Contact == "" {
		v.add(first, "Art. 13(1)(b): people must be told whom to write to", "give dpo.email or organisation.contact")
	}
	custom := map[string]bool{}
	for _, c := range m.Categories {
		switch {
		case !fidesKeyRE.MatchString(c.Key):
			v.add(c.Pos, "", "category %q is not a dotted key like user.loyalty.tier", c.Key)
		case KnownCategory(c.Key):
			v.add(c.Pos, "the Fides taxonomy already has it; remove the declaration", "category %s is declared but is a standard one", c.Key)
		case custom[c.Key]:
			v.add(c.Pos, "", "category %s is declared twice", c.Key)
		}
		custom[c.Key] = true
	}
	for _, p := range m.Purposes {
		at := m.purposePos[p.Key]
		for _, c := range p.Categories {
			v.category(at, c, custom)
		}
		if p.Use != "" && !KnownUse(p.Use) {
			hint := "a Fides data use such as essential.service or marketing.communications.email"
			if s := SuggestUse(p.Use); s != "" {
				hint = "did you mean " + s + "?"
			}
			v.add(at, hint, "purpose %s: unknown data use %q", p.Key, p.Use)
		}
	}
	recipients := map[string]bool{}
	for _, r := range m.Recipients {
		if !nameRE.MatchString(r.Key) {
			v.add(r.Pos, "", "recipient key %q must be 1 to 63 of a-z, 0-9 and '_', starting with a letter", r.Key)
		}
		if recipients[r.Key] {
			v.add(r.Pos, "", "recipient %s is declared twice", r.Key)
		}
		recipients[r.Key] = true
		if r.Name == "" {
			v.add(r.Pos, "", "recipient %s needs a name (access reports list recipients by name)", r.Key)
		}
		if r.Country != "" && !regexp.MustCompile(`^[A-Z]{2}$`).MatchString(r.Country) {
			v.add(r.Pos, "", "recipient %s: country %q must be an ISO 3166-1 alpha-2 code like DE or US", r.Key, r.Country)
		}
	}
	systems := map[string]bool{}
	for i := range m.Systems {
		s := &m.Systems[i]
		if systems[s.Name] {
			v.add(s.Pos, "", "system %s is declared twice", s.Name)
		}
		systems[s.Name] = true
		v.system(s, custom, recipients)
	}
	for _, f := range m.Flows {
		for _, end := range []string{f.From, f.To} {
			if !systems[end] && !recipients[end] {
				v.add(f.Pos, hintFrom(end, keys(systems), keys(recipients)), "flow names %q, which is neither a system nor a recipient", end)
			}
		}
		if f.Purpose != "" {
			v.purpose(f.Pos, f.Purpose)
		}
		v.categories(f.Pos, f.Categories, custom)
	}
}

func keys(m map[string]bool) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

func hintFrom(s string, lists ...[]string) string {
	var all []string
	for _, l := range lists {
		all = append(all, l...)
	}
	if c := closest(s, all, 3); c != "" {
		return "did you mean " + c + "?"
	}
	return ""
}

func (v *validator) purpose(p Pos, key string) {
	if _, ok := v.m.Purpose(key); !ok {
		hint := "declare it under purposes"
		if c := closest(key, v.m.purposeKeys(), 3); c != "" {
			hint = "did you mean " + c + "?"
		}
		v.add(p, hint, "purpose %q is not declared", key)
	}
}

func (v *validator) category(p Pos, c string, custom map[string]bool) {
	if KnownCategory(c) || custom[c] {
		return
	}
	hint := "use a Fides taxonomy key such as user.contact.email, or declare your own under categories"
	if s := SuggestCategory(c); s != "" {
		hint = "did you mean " + s + "?"
	}
	v.add(p, hint, "unknown data category %q", c)
}

func (v *validator) categories(p Pos, cs []string, custom map[string]bool) {
	for _, c := range cs {
		v.category(p, c, custom)
	}
}

func (v *validator) system(s *System, custom, recipients map[string]bool) {
	if !nameRE.MatchString(s.Name) {
		v.add(s.Pos, "", "system name %q must be 1 to 63 of a-z, 0-9 and '_', starting with a letter", s.Name)
	}
	if !slices.Contains(Kinds, s.Kind) {
		hint := "kinds: " + strings.Join(Kinds, ", ")
		if c := closest(s.Kind, Kinds, 3); c != "" {
			hint = "did you mean " + c + "?"
		}
		v.add(s.Pos, hint, "system %s: unknown kind %q", s.Name, s.Kind)
		return
	}
	for _, p := range s.Purposes {
		v.purpose(s.Pos, p)
	}
	v.connection(s)
	has := map[string]bool{"tables": len(s.Tables) > 0, "keys": len(s.Keys) > 0, "files": len(s.Files) > 0, "webhook": s.Webhook != nil, "manual": s.Manual != nil}
	want := map[string]string{KindPostgres: "tables", KindMySQL: "tables", KindSQLite: "tables", KindRedis: "keys", KindFiles: "files", KindWebhook: "webhook", KindManual: "manual"}[s.Kind]
	for k, ok := range has {
		if ok && k != want {
			v.add(s.Pos, "", "system %s: a %s system has no %s (it declares %s)", s.Name, s.Kind, k, want)
		}
	}
	if !has[want] {
		v.add(s.Pos, "", "system %s: a %s system must declare its %s", s.Name, s.Kind, want)
		return
	}
	switch s.Kind {
	case KindPostgres, KindMySQL, KindSQLite:
		v.tables(s, custom)
	case KindRedis:
		for _, k := range s.Keys {
			v.keySpace(s, &k, custom)
		}
	case KindFiles:
		for _, f := range s.Files {
			v.fileSet(s, &f, custom)
		}
	case KindWebhook:
		w := s.Webhook
		u, err := url.Parse(w.URL)
		switch {
		case err != nil || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http"):
			v.add(w.Pos, "", "system %s: webhook.url must be an https:// URL", s.Name)
		case u.Scheme == "http" && !isLoopback(u.Hostname()):
			v.add(w.Pos, "personal data crosses the network only over TLS", "system %s: webhook.url must be https:// (http:// only to a loopback address)", s.Name)
		case u.User != nil:
			v.add(w.Pos, "the HMAC secret comes from connection", "system %s: webhook.url must not hold credentials", s.Name)
		}
		v.categories(w.Pos, w.Categories, custom)
		if s.Recipient == "" {
			v.add(s.Pos, "access reports list who received the data", "system %s: a webhook system names its recipient", s.Name)
		} else if !recipients[s.Recipient] {
			v.add(s.Pos, hintFrom(s.Recipient, keys(recipients)), "system %s: recipient %q is not declared", s.Name, s.Recipient)
		}
	case KindManual:
		if len(s.Manual.Checklist) == 0 {
			v.add(s.Manual.Pos, "say what the person must do, step by step", "system %s: manual.checklist is empty", s.Name)
		}
		if s.Manual.Assignee == "" {
			v.add(s.Manual.Pos, "", "system %s: manual.assignee is required (who gets the task)", s.Name)
		}
		v.categories(s.Manual.Pos, s.Manual.Categories, custom)
	}
	if s.Recipient != "" && s.Kind != KindWebhook && !recipients[s.Recipient] {
		v.add(s.Pos, hintFrom(s.Recipient, keys(recipients)), "system %s: recipient %q is not declared", s.Name, s.Recipient)
	}
}

func isLoopback(host string) bool {
	return host == "localhost" || host == "127.0.0.1" || host == "::1"
}

func (v *validator) connection(s *System) {
	c := s.Connection
	p := c.Pos
	if p.Line == 0 {
		p = s.Pos
	}
	n := 0
	for _, x := range []string{c.Env, c.File, c.Path} {
		if x != "" {
			n++
		}
	}
	needs := s.Kind != KindManual
	switch {
	case n == 0 && needs:
		v.add(p, "write connection: {env: VARIABLE} or {file: /run/secrets/name}"+pathHint(s.Kind), "system %s: no connection reference", s.Name)
	case n == 0:
	case !needs:
		v.add(p, "", "system %s: a manual system has no connection", s.Name)
	case n > 1:
		v.add(p, "", "system %s: connection names more than one of env, file and path", s.Name)
	case c.Env != "" && !envRE.MatchString(c.Env):
		v.add(p, "", "system %s: connection env %q is not a variable name", s.Name, c.Env)
	case c.Path != "" && s.Kind != KindSQLite && s.Kind != KindFiles:
		v.add(p, "a connection string or a secret comes from env or file, so it stays out of the manifest", "system %s: path is only for an SQLite file or a files root", s.Name)
	}
}

func pathHint(kind string) string {
	if kind == KindSQLite || kind == KindFiles {
		return ", or {path: ...}"
	}
	return ""
}

// tables checks a relational system's tables: names, links, erasure
// actions and that every table reaches a subject without a cycle.
func (v *validator) tables(s *System, custom map[string]bool) {
	seen := map[string]bool{}
	for i := range s.Tables {
		t := &s.Tables[i]
		where := s.Name + "." + t.Name
		if !sqlNameRE.MatchString(t.Name) {
			v.add(t.Pos, "", "system %s: table name %q is not a plain SQL identifier", s.Name, t.Name)
			continue
		}
		if seen[t.Name] {
			v.add(t.Pos, "", "table %s is declared twice", where)
		}
		seen[t.Name] = true
		switch {
		case t.Subject == nil && t.Via == nil:
			v.add(t.Pos, "give subject: {column: ..., identifier: ...} if the table holds the subject's ID or an identifier, or via: {column: ..., parent: ..., references: ...} to reach one through a foreign key", "table %s has no path to a subject", where)
		case t.Subject != nil && t.Via != nil:
			v.add(t.Pos, "", "table %s gives both subject and via; give one", where)
		case t.Subject != nil:
			l := t.Subject
			if !sqlNameRE.MatchString(l.Column) {
				v.add(l.Pos, "", "table %s: subject.column %q is not a plain SQL identifier", where, l.Column)
			}
			if l.Identifier != "" && l.Identifier != connector.LinkSubject && lethe.ValidIdentifierKind(l.Identifier) != nil {
				v.add(l.Pos, "subject (the Lethe ID, the default), email, phone, login or your app's own kind", "table %s: identifier %q is not an identifier kind", where, l.Identifier)
			}
		case t.Via != nil:
			w := t.Via
			if !sqlNameRE.MatchString(w.Column) || !sqlNameRE.MatchString(w.References) {
				v.add(w.Pos, "", "table %s: via.column and via.references must be plain SQL identifiers", where)
			}
			if _, ok := s.Table(w.Parent); !ok {
				v.add(w.Pos, hintFrom(w.Parent, tableNames(s)), "table %s: via.parent %q is not a table of system %s", where, w.Parent, s.Name)
			}
		}
		for _, k := range t.Key {
			if !sqlNameRE.MatchString(k) {
				v.add(t.Pos, "", "table %s: key column %q is not a plain SQL identifier", where, k)
			}
		}
		v.erasure(where, t, custom)
		v.restrictions(s, where, t)
	}
	// Every chain of via must end at a table with a subject link. A cycle
	// is reported once, at its first table.
	reported := map[string]bool{}
	for i := range s.Tables {
		t := &s.Tables[i]
		path := []string{t.Name}
		for cur := t; cur.Subject == nil && cur.Via != nil; {
			next, ok := s.Table(cur.Via.Parent)
			if !ok {
				break // reported above
			}
			if at := slices.Index(path, next.Name); at >= 0 {
				cycle := slices.Clone(path[at:])
				slices.Sort(cycle)
				if at == 0 && !reported[strings.Join(cycle, ",")] {
					reported[strings.Join(cycle, ",")] = true
					v.add(t.Via.Pos, "a chain of via must end at a table that gives subject", "table %s.%s: via forms a cycle: %s", s.Name, t.Name, strings.Join(append(path, next.Name), " → "))
				}
				break
			}
			path = append(path, next.Name)
			cur = next
		}
	}
}

func tableNames(s *System) []string {
	var out []string
	for _, t := range s.Tables {
		out = append(out, t.Name)
	}
	return out
}

func (v *validator) erasure(where string, t *Table, custom map[string]bool) {
	if !slices.Contains(tableErasure, t.Erase) {
		hint := "delete (the rows), update (each column by its erase action) or retain (under a legal basis, until a date rule)"
		if c := closest(t.Erase, tableErasure, 3); c != "" && t.Erase != "" {
			hint = "did you mean " + c + "?"
		}
		v.add(t.Pos, hint, "table %s: erase %q is not a table action", where, t.Erase)
	}
	switch {
	case t.Erase == connector.ActionRetain && t.Retain == nil:
		v.add(t.Pos, "retain: {basis: legal_obligation, column: issued_at, period: 10y, reason: ...}", "table %s: erase: retain needs a retain rule", where)
	case t.Erase != connector.ActionRetain && t.Retain != nil:
		v.add(t.Retain.Pos, "", "table %s: a retain rule is only for erase: retain", where)
	case t.Retain != nil:
		r := t.Retain
		if !slices.Contains(lethe.LegalBases, r.Basis) || r.Basis == lethe.BasisConsent {
			v.add(r.Pos, "Art. 17(3): legal_obligation, public_task, vital_interests, contract or legitimate_interests", "table %s: retain.basis %q is not a basis that survives erasure", where, r.Basis)
		}
		if !sqlNameRE.MatchString(r.Column) {
			v.add(r.Pos, "the date or timestamp column the period counts from", "table %s: retain.column %q is not a plain SQL identifier", where, r.Column)
		}
		if r.Period.IsZero() {
			v.add(r.Pos, "like 10y, 6mo or 90d", "table %s: retain.period is required", where)
		}
		if strings.TrimSpace(r.Reason) == "" {
			v.add(r.Pos, "the law or contract that requires keeping the rows; it goes into the erasure receipt", "table %s: retain.reason is required", where)
		}
	}
	actions, bad := 0, false
	names := map[string]bool{}
	for _, c := range t.Columns {
		if !sqlNameRE.MatchString(c.Name) {
			v.add(c.Pos, "", "table %s: column name %q is not a plain SQL identifier", where, c.Name)
			continue
		}
		if names[c.Name] {
			v.add(c.Pos, "", "table %s: column %s is declared twice", where, c.Name)
		}
		names[c.Name] = true
		if c.Category != "" {
			v.category(c.Pos, c.Category, custom)
		}
		switch {
		case c.Erase == "" && (t.Erase == EraseUpdate || t.Erase == connector.ActionRetain) && c.Category != "":
			v.add(c.Pos, "null, placeholder, pseudonymize, or keep (stays once the row no longer names the person)", "table %s: column %s holds %s but says no erase action, and the row is kept", where, c.Name, c.Category)
		case c.Erase == "":
		case !slices.Contains(columnErase, c.Erase):
			hint := "null, placeholder, pseudonymize or keep"
			if x := closest(c.Erase, columnErase, 3); x != "" {
				hint = "did you mean " + x + "?"
			}
			if c.Erase == connector.ActionDelete {
				hint = "delete is a table's action: erase: delete on the table"
			}
			bad = true
			v.add(c.Pos, hint, "table %s: column %s: erase %q is not a column action", where, c.Name, c.Erase)
		case c.Erase == connector.ActionPlaceholder && c.Placeholder == "":
			v.add(c.Pos, "", "table %s: column %s: erase: placeholder needs placeholder: <value>", where, c.Name)
		default:
			if c.Erase != connector.ActionKeep {
				actions++
			}
		}
		if c.Placeholder != "" && c.Erase != connector.ActionPlaceholder {
			v.add(c.Pos, "", "table %s: column %s: placeholder is only for erase: placeholder", where, c.Name)
		}
	}
	if t.Erase == EraseUpdate && actions == 0 && !bad {
		v.add(t.Pos, "give the columns erasure writes, or erase: delete", "table %s: erase: update, but no column has an action", where)
	}
}

// restrictions checks a table's restrict entries: each sets columns other
// than those that find the rows, objects only to declared purposes the
// system serves, and no column gets two values for the same request.
func (v *validator) restrictions(s *System, where string, t *Table) {
	links := map[string]string{}
	for _, k := range t.Key {
		links[strings.ToLower(k)] = "a key column"
	}
	if t.Via != nil {
		links[strings.ToLower(t.Via.Column)] = "via.column"
	}
	if t.Subject != nil {
		links[strings.ToLower(t.Subject.Column)] = "subject.column"
	}
	// first[request][column] is where a column was first set for a
	// restriction ("") or an objection to a purpose.
	first := map[string]map[string]Pos{}
	for _, r := range t.Restrict {
		if len(r.Set) == 0 {
			v.add(r.Pos, "like set: {processing_restricted: true}", "table %s: a restrict entry sets no column", where)
		}
		var requests []string
		switch {
		case r.Objection != nil && len(r.Objection) == 0:
			v.add(r.Pos, "leave objection out for an entry that applies to a restriction", "table %s: restrict objection lists no purpose", where)
		case len(r.Objection) == 0:
			requests = []string{""}
		}
		seen := map[string]bool{}
		for _, p := range r.Objection {
			if seen[p] {
				v.add(r.Pos, "", "table %s: restrict objection lists %s twice", where, p)
				continue
			}
			seen[p] = true
			requests = append(requests, p)
			if _, ok := v.m.Purpose(p); !ok {
				v.purpose(r.Pos, p)
			} else if len(s.Purposes) > 0 && !slices.Contains(s.Purposes, p) {
				v.add(r.Pos, "add it to the system's purposes, or leave it out here", "table %s: restrict objection names purpose %s, which system %s does not list", where, p, s.Name)
			}
		}
		for _, a := range r.Set {
			if !sqlNameRE.MatchString(a.Column) {
				v.add(a.Pos, "", "table %s: restrict sets %q, which is not a plain SQL identifier", where, a.Column)
				continue
			}
			if what, ok := links[strings.ToLower(a.Column)]; ok {
				v.add(a.Pos, "restrict marks the rows; the columns that find them stay as they are", "table %s: restrict sets %s, which is %s", where, a.Column, what)
			}
			for _, req := range requests {
				cols := first[req]
				if cols == nil {
					cols = map[string]Pos{}
					first[req] = cols
				}
				if at, dup := cols[strings.ToLower(a.Column)]; dup {
					what := "a restriction"
					if req != "" {
						what = "an objection to " + req
					}
					v.add(a.Pos, "", "table %s: restrict sets %s twice for %s (first at %s)", where, a.Column, what, at)
					continue
				}
				cols[strings.ToLower(a.Column)] = a.Pos
			}
		}
	}
}

func (v *validator) keySpace(s *System, k *KeySpace, custom map[string]bool) {
	where := fmt.Sprintf("system %s: key %q", s.Name, k.Pattern)
	if !slices.Contains(redisTypes, k.Type) {
		v.add(k.Pos, "string, hash, set, zset or list", "%s: type %q is not a Redis type", where, k.Type)
	}
	inPattern := placeholdRE.FindAllStringSubmatch(k.Pattern, -1)
	if k.Member != "" {
		inMember := placeholdRE.FindAllStringSubmatch(k.Member, -1)
		switch {
		case k.Type != "set" && k.Type != "zset":
			v.add(k.Pos, "", "%s: member is for a set or a sorted set", where)
		case len(inPattern) != 0:
			v.add(k.Pos, "with member, the key is one fixed key", "%s: has a placeholder and a member", where)
		case len(inMember) != 1 || inMember[0][0] != k.Member:
			v.add(k.Pos, "like member: \"{email}\"", "%s: member must be exactly one placeholder", where)
		default:
			v.identifierKind(k.Pos, where, inMember[0][1])
		}
	} else if len(inPattern) != 1 {
		v.add(k.Pos, "like session:{subject} or cart:{shop_customer_id}", "%s: the pattern needs exactly one placeholder naming an identifier kind", where)
	} else {
		v.identifierKind(k.Pos, where, inPattern[0][1])
	}
	if len(k.Categories) == 0 {
		v.add(k.Pos, "what the keys hold, as data categories", "%s: no categories", where)
	}
	v.categories(k.Pos, k.Categories, custom)
}

func (v *validator) identifierKind(p Pos, where, kind string) {
	if kind != connector.LinkSubject && lethe.ValidIdentifierKind(kind) != nil {
		v.add(p, "subject, email, phone, login or your app's own kind", "%s: {%s} is not an identifier kind", where, kind)
	}
}

func (v *validator) fileSet(s *System, f *FileSet, custom map[string]bool) {
	where := fmt.Sprintf("system %s: files %q", s.Name, f.Pattern)
	check := func(pattern string) string {
		ph := placeholdRE.FindAllStringSubmatch(pattern, -1)
		switch {
		case strings.HasPrefix(pattern, "/") || slices.Contains(strings.Split(pattern, "/"), ".."):
			v.add(f.Pos, "", "%s: pattern %q must stay under the root", where, pattern)
		case len(ph) != 1:
			v.add(f.Pos, "like avatars/{shop_customer_id}/*", "%s: pattern %q needs exactly one placeholder naming an identifier kind", where, pattern)
		default:
			v.identifierKind(f.Pos, where, ph[0][1])
			return ph[0][1]
		}
		return ""
	}
	kind := check(f.Pattern)
	for _, d := range f.Derived {
		if k := check(d); k != "" && kind != "" && k != kind {
			v.add(f.Pos, "", "%s: derived pattern %q names {%s}, its source {%s}", where, d, k, kind)
		}
	}
	if len(f.Categories) == 0 {
		v.add(f.Pos, "what the files hold, as data categories", "%s: no categories", where)
	}
	v.categories(f.Pos, f.Categories, custom)
}

// AsProblems returns err's problems, if it is a Problems.
func AsProblems(err error) (Problems, bool) {
	var ps Problems
	ok := errors.As(err, &ps)
	return ps, ok
}
