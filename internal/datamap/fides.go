package datamap

import (
	"bytes"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/lethe-privacy/lethe"
	"github.com/lethe-privacy/lethe/internal/connector"
)

// ImportFides reads a Fides dataset file (fideslang's YAML: a "dataset"
// list of datasets, each with collections of fields labelled with data
// categories and fides_meta annotations) and returns one System per
// dataset, for the user to review and paste into the manifest (see
// MarshalSystems). name is used in errors.
//
// A dataset becomes a system named by its fides_key (made lower case, with
// any character but a-z, 0-9 and '_' written as '_'), of no kind (Fides does
// not say which engine holds it: the user sets postgres, mysql or sqlite),
// connected through the environment variable NAME_URL. Each collection that
// holds personal data (a field with a user.* category or an identity)
// becomes a table that erasure deletes:
//
//   - a field with fides_meta.identity links the table to its subject
//     (identity email → identifier email, phone_number → phone, any other
//     identity by its own name);
//   - otherwise fides_meta.references within the dataset give the table's
//     via. In Fides, direction "from" on field F referencing C.G means C is
//     visited first and its G values find this collection's rows by F:
//     this table is the child, via {column: F, parent: C, references: G}.
//     Direction "to" is the reverse: C is reached from this collection, so
//     C gets via {column: G, parent: this collection, references: F}. A
//     reference without a direction is taken whichever way reaches a
//     subject. Of several ways to a subject, the shortest is taken, and a
//     declared direction before a guessed one;
//   - fields with fides_meta.primary_key give the table's key;
//   - each field with a user.* category becomes a column with its first
//     such category and no erase action of its own. A field with nested
//     fields (a JSON or composite column) becomes one column, with the
//     first user.* category found inside it if it has none itself.
//
// Collections holding no personal data are left out, as are references to
// other datasets (Lethe links tables within a system only); the system's
// description says what was left out or guessed. A collection with neither
// an identity nor a usable reference is still imported, for the validator
// to report it has no path to a subject.
//
// Errors read "name:line:column: what is wrong"; they name keys and
// names (datasets, collections, fields), never the file's values.
func ImportFides(name string, data []byte) ([]System, error) {
	p := &fidesParser{name: name}
	datasets, err := p.parse(data)
	if err != nil {
		return nil, err
	}
	var systems []System
	from := map[string]string{} // system name → the dataset key it came from
	for _, d := range datasets {
		s, err := p.system(d)
		if err != nil {
			return nil, err
		}
		if prev, dup := from[s.Name]; dup {
			return nil, p.errorf(d.node, "dataset %q gives system name %s, as dataset %q does", d.key, s.Name, prev)
		}
		from[s.Name] = d.key
		systems = append(systems, s)
	}
	return systems, nil
}

// The parts of a Fides dataset the import reads; everything else (tags,
// data_qualifier, retention, fides_meta.data_type …) is ignored.
type (
	fidesDataset struct {
		node                   *yaml.Node
		key, name, description string
		collections            []*fidesCollection
	}
	fidesCollection struct {
		node   *yaml.Node
		name   string
		fields []*fidesField
	}
	fidesField struct {
		node       *yaml.Node
		name       string
		categories []string
		identity   string
		primaryKey bool
		refs       []fidesRef
		fields     []*fidesField
	}
	fidesRef struct {
		node                                  *yaml.Node
		dataset, collection, field, direction string
	}
)

type fidesParser struct{ name string }

// errorf returns an error at n's position. Its arguments must be keys or
// names from the file, never values.
func (p *fidesParser) errorf(n *yaml.Node, format string, args ...any) error {
	return fmt.Errorf("%s:%d:%d: %s", p.name, n.Line, n.Column, fmt.Sprintf(format, args...))
}

var fidesYAMLLineRE = regexp.MustCompile(`^(?:yaml: )?line (\d+): `)

func (p *fidesParser) parse(data []byte) ([]*fidesDataset, error) {
	var root yaml.Node
	if err := yaml.Unmarshal(data, &root); err != nil {
		// yaml.v3's syntax errors read "yaml: line 3: …"; they name the
		// problem, not the content.
		msg := err.Error()
		if m := fidesYAMLLineRE.FindStringSubmatch(msg); m != nil {
			return nil, fmt.Errorf("%s:%s: %s", p.name, m[1], msg[len(m[0]):])
		}
		return nil, fmt.Errorf("%s: %s", p.name, strings.TrimPrefix(msg, "yaml: "))
	}
	if len(root.Content) == 0 {
		return nil, fmt.Errorf("%s: the file is empty", p.name)
	}
	doc := fidesResolve(root.Content[0])
	if doc.Kind != yaml.MappingNode {
		return nil, p.errorf(doc, "a Fides dataset file is a mapping with a dataset list")
	}
	list := fidesLookup(doc, "dataset")
	if list == nil {
		return nil, p.errorf(doc, "no dataset list (a Fides dataset file starts with dataset:)")
	}
	items, err := p.seq(list, "dataset")
	if err != nil {
		return nil, err
	}
	if len(items) == 0 {
		return nil, p.errorf(list, "the dataset list is empty")
	}
	var out []*fidesDataset
	for i, n := range items {
		d, err := p.dataset(n, i)
		if err != nil {
			return nil, err
		}
		out = append(out, d)
	}
	return out, nil
}

func (p *fidesParser) dataset(n *yaml.Node, i int) (*fidesDataset, error) {
	what := fmt.Sprintf("dataset %d", i+1)
	if n.Kind != yaml.MappingNode {
		return nil, p.errorf(n, "%s must be a mapping", what)
	}
	d := &fidesDataset{node: n}
	var err error
	if d.key, err = p.str(n, "fides_key", what); err != nil {
		return nil, err
	}
	if d.key == "" {
		return nil, p.errorf(n, "%s has no fides_key", what)
	}
	what = fmt.Sprintf("dataset %q", d.key)
	if d.name, err = p.str(n, "name", what); err != nil {
		return nil, err
	}
	if d.description, err = p.str(n, "description", what); err != nil {
		return nil, err
	}
	items, err := p.seq(fidesLookup(n, "collections"), what+": collections")
	if err != nil {
		return nil, err
	}
	seen := map[string]bool{}
	for j, cn := range items {
		c, err := p.collection(cn, what, j)
		if err != nil {
			return nil, err
		}
		if seen[c.name] {
			return nil, p.errorf(cn, "%s: collection %q is declared twice", what, c.name)
		}
		seen[c.name] = true
		d.collections = append(d.collections, c)
	}
	return d, nil
}

func (p *fidesParser) collection(n *yaml.Node, dataset string, j int) (*fidesCollection, error) {
	what := fmt.Sprintf("%s: collection %d", dataset, j+1)
	if n.Kind != yaml.MappingNode {
		return nil, p.errorf(n, "%s must be a mapping", what)
	}
	c := &fidesCollection{node: n}
	var err error
	if c.name, err = p.str(n, "name", what); err != nil {
		return nil, err
	}
	if c.name == "" {
		return nil, p.errorf(n, "%s has no name", what)
	}
	c.fields, err = p.fields(n, fmt.Sprintf("%s: collection %q", dataset, c.name))
	return c, err
}

// fields reads the fields list of a collection or of a field.
func (p *fidesParser) fields(n *yaml.Node, what string) ([]*fidesField, error) {
	items, err := p.seq(fidesLookup(n, "fields"), what+": fields")
	if err != nil {
		return nil, err
	}
	var out []*fidesField
	seen := map[string]bool{}
	for k, fn := range items {
		f, err := p.field(fn, what, k)
		if err != nil {
			return nil, err
		}
		if seen[f.name] {
			return nil, p.errorf(fn, "%s: field %q is declared twice", what, f.name)
		}
		seen[f.name] = true
		out = append(out, f)
	}
	return out, nil
}

func (p *fidesParser) field(n *yaml.Node, parent string, k int) (*fidesField, error) {
	what := fmt.Sprintf("%s: field %d", parent, k+1)
	if n.Kind != yaml.MappingNode {
		return nil, p.errorf(n, "%s must be a mapping", what)
	}
	f := &fidesField{node: n}
	var err error
	if f.name, err = p.str(n, "name", what); err != nil {
		return nil, err
	}
	if f.name == "" {
		return nil, p.errorf(n, "%s has no name", what)
	}
	what = fmt.Sprintf("%s: field %q", parent, f.name)
	cats, err := p.seq(fidesLookup(n, "data_categories"), what+": data_categories")
	if err != nil {
		return nil, err
	}
	for _, c := range cats {
		if c.Kind != yaml.ScalarNode || c.Value == "" {
			return nil, p.errorf(c, "%s: data_categories must be a list of category keys", what)
		}
		f.categories = append(f.categories, c.Value)
	}
	// fides_meta, or fidesops_meta as datasets written for fidesops (the
	// older name of Fides' privacy-request engine) call it.
	meta := fidesLookup(n, "fides_meta")
	if meta == nil {
		meta = fidesLookup(n, "fidesops_meta")
	}
	if meta != nil {
		if meta.Kind != yaml.MappingNode {
			return nil, p.errorf(meta, "%s: fides_meta must be a mapping", what)
		}
		if f.identity, err = p.str(meta, "identity", what+": fides_meta"); err != nil {
			return nil, err
		}
		if pk := fidesLookup(meta, "primary_key"); pk != nil {
			if pk.Kind != yaml.ScalarNode || pk.Decode(&f.primaryKey) != nil {
				return nil, p.errorf(pk, "%s: fides_meta.primary_key must be true or false", what)
			}
		}
		refs, err := p.seq(fidesLookup(meta, "references"), what+": fides_meta.references")
		if err != nil {
			return nil, err
		}
		for _, rn := range refs {
			r, err := p.reference(rn, what)
			if err != nil {
				return nil, err
			}
			f.refs = append(f.refs, r)
		}
	}
	f.fields, err = p.fields(n, what)
	return f, err
}

func (p *fidesParser) reference(n *yaml.Node, what string) (fidesRef, error) {
	what += ": a reference"
	r := fidesRef{node: n}
	if n.Kind != yaml.MappingNode {
		return r, p.errorf(n, "%s must be a mapping of dataset, field and direction", what)
	}
	var err error
	var field string
	if r.dataset, err = p.str(n, "dataset", what); err != nil {
		return r, err
	}
	if field, err = p.str(n, "field", what); err != nil {
		return r, err
	}
	if r.direction, err = p.str(n, "direction", what); err != nil {
		return r, err
	}
	var ok bool
	r.collection, r.field, ok = strings.Cut(field, ".")
	switch {
	case r.dataset == "":
		return r, p.errorf(n, "%s has no dataset", what)
	case !ok || r.collection == "" || r.field == "":
		return r, p.errorf(n, "%s: field must be collection.field", what)
	case r.direction != "" && r.direction != "from" && r.direction != "to":
		return r, p.errorf(fidesLookup(n, "direction"), "%s: direction must be from or to", what)
	}
	return r, nil
}

// str returns the scalar under key in mapping m, "" if absent or null.
func (p *fidesParser) str(m *yaml.Node, key, what string) (string, error) {
	n := fidesLookup(m, key)
	if n == nil {
		return "", nil
	}
	if n.Kind != yaml.ScalarNode {
		return "", p.errorf(n, "%s: %s must be a string", what, key)
	}
	return n.Value, nil
}

// seq returns the items of a sequence node, none if n is absent or null.
func (p *fidesParser) seq(n *yaml.Node, what string) ([]*yaml.Node, error) {
	if n == nil {
		return nil, nil
	}
	if n.Kind != yaml.SequenceNode {
		return nil, p.errorf(n, "%s must be a list", what)
	}
	out := make([]*yaml.Node, len(n.Content))
	for i, c := range n.Content {
		out[i] = fidesResolve(c)
	}
	return out, nil
}

// fidesLookup returns the value under key in mapping m, aliases resolved, or
// nil if m is no mapping, has no such key, or the value is null.
func fidesLookup(m *yaml.Node, key string) *yaml.Node {
	if m == nil || m.Kind != yaml.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key {
			v := fidesResolve(m.Content[i+1])
			if v.Kind == yaml.ScalarNode && v.Tag == "!!null" {
				return nil
			}
			return v
		}
	}
	return nil
}

func fidesResolve(n *yaml.Node) *yaml.Node {
	for n != nil && n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	return n
}

// fidesEdge is a reference within a dataset: Child.ChildColumn holds the
// values of Parent.ParentColumn. Undirected edges may be taken either way.
type fidesEdge struct {
	child, childColumn, parent, parentColumn string
	undirected                               bool
}

// flip returns the edge taken the other way.
func (e fidesEdge) flip() fidesEdge {
	return fidesEdge{e.parent, e.parentColumn, e.child, e.childColumn, e.undirected}
}

func (e fidesEdge) via() *Via {
	return &Via{Column: e.childColumn, Parent: e.parent, References: e.parentColumn}
}

func (p *fidesParser) system(d *fidesDataset) (System, error) {
	name := fidesSystemName(d.key)
	s := System{Name: name, Connection: SecretRef{Env: strings.ToUpper(name) + "_URL"}}
	var notes []string
	note := func(format string, args ...any) { notes = append(notes, fmt.Sprintf(format, args...)) }

	byName := map[string]*fidesCollection{}
	kept := map[string]bool{}
	for _, c := range d.collections {
		byName[c.name] = c
		if fidesPersonal(c.fields) {
			kept[c.name] = true
		} else {
			note("collection %s is left out: none of its fields has a user.* category or an identity", c.name)
		}
	}

	var edges []fidesEdge
	for _, c := range d.collections {
		if !kept[c.name] {
			continue
		}
		t := Table{Name: c.name, Erase: connector.ActionDelete}
		var identities []*fidesField
		for _, f := range c.fields {
			if f.primaryKey {
				t.Key = append(t.Key, f.name)
			}
			if f.identity != "" {
				identities = append(identities, f)
			}
			if cat, nested := fidesColumnCategory(f); cat != "" {
				t.Columns = append(t.Columns, Column{Name: f.name, Category: cat})
				if nested {
					note("%s.%s: nested fields are one column, of category %s", c.name, f.name, cat)
				}
			}
			if fidesNestedMeta(f.fields) {
				note("%s.%s: identities and references of nested fields are ignored", c.name, f.name)
			}
			for _, r := range f.refs {
				switch {
				case r.dataset != d.key:
					note("%s.%s: the reference to dataset %s is left out (Lethe links tables within one system)", c.name, f.name, r.dataset)
				case byName[r.collection] == nil:
					return s, p.errorf(r.node, "dataset %q: collection %q: field %q references collection %q, which the dataset does not declare", d.key, c.name, f.name, r.collection)
				case r.collection == c.name:
				case !kept[r.collection]:
					note("%s.%s: the reference to %s is left out with that collection", c.name, f.name, r.collection)
				case strings.Contains(r.field, "."):
					note("%s.%s: the reference to nested field %s.%s is left out", c.name, f.name, r.collection, r.field)
				case r.direction == "to":
					edges = append(edges, fidesEdge{r.collection, r.field, c.name, f.name, false})
				default:
					edges = append(edges, fidesEdge{c.name, f.name, r.collection, r.field, r.direction == ""})
				}
			}
		}
		if len(identities) > 0 {
			// Prefer an email identity: it is the one most requests carry.
			i := slices.IndexFunc(identities, func(f *fidesField) bool { return f.identity == "email" })
			if i < 0 {
				i = 0
			}
			f := identities[i]
			t.Subject = &Link{Column: f.name, Identifier: fidesIdentifierKind(f.identity)}
			for _, g := range identities {
				if g != f {
					note("%s: identity field %s is not used (a table has one subject link; %s is)", c.name, g.name, f.name)
				}
			}
		}
		s.Tables = append(s.Tables, t)
	}
	notes = append(notes, fidesVias(s.Tables, edges)...)

	s.Description = strings.TrimSpace(d.description)
	if s.Description == "" {
		s.Description = strings.TrimSpace(d.name)
	}
	if len(notes) > 0 {
		var b strings.Builder
		b.WriteString(s.Description)
		if b.Len() > 0 {
			b.WriteString("\n\n")
		}
		fmt.Fprintf(&b, "Imported from Fides dataset %s; review:\n", d.key)
		for _, n := range notes {
			b.WriteString("- " + n + "\n")
		}
		s.Description = b.String()
	}
	return s, nil
}

// fidesVias gives each table without a subject link a via, by rounds: in
// each, a table takes an edge to a table reached in an earlier round
// (declared directions before guessed ones, then in the file's order), so
// every table gets a shortest path to a subject. A table no round reaches
// keeps its first declared edge, if any, for the validator to report where
// the path ends. It returns notes on the edges not taken.
func fidesVias(tables []Table, edges []fidesEdge) []string {
	candidates := func(name string) (directed, guessed []fidesEdge) {
		for _, e := range edges {
			switch {
			case e.child == name && !e.undirected:
				directed = append(directed, e)
			case e.child == name:
				guessed = append(guessed, e)
			case e.parent == name && e.undirected:
				guessed = append(guessed, e.flip())
			}
		}
		return directed, guessed
	}
	reached := map[string]bool{}
	for _, t := range tables {
		if t.Subject != nil {
			reached[t.Name] = true
		}
	}
	for {
		next := map[int]fidesEdge{}
		for i, t := range tables {
			if reached[t.Name] {
				continue
			}
			directed, guessed := candidates(t.Name)
			for _, e := range append(directed, guessed...) {
				if reached[e.parent] {
					next[i] = e
					break
				}
			}
		}
		if len(next) == 0 {
			break
		}
		for i, e := range next {
			tables[i].Via = e.via()
			reached[tables[i].Name] = true
		}
	}
	var notes []string
	for i := range tables {
		t := &tables[i]
		directed, guessed := candidates(t.Name)
		if t.Subject == nil && t.Via == nil && len(directed) > 0 {
			t.Via = directed[0].via()
		}
		if t.Subject != nil {
			continue // references from a table with its own link are not needed
		}
		var others []string
		for _, e := range append(directed, guessed...) {
			if t.Via == nil || *e.via() != *t.Via {
				others = append(others, fmt.Sprintf("%s.%s → %s.%s", e.child, e.childColumn, e.parent, e.parentColumn))
			}
		}
		if len(others) > 0 {
			notes = append(notes, fmt.Sprintf("%s: a table has one via; not taken: %s", t.Name, strings.Join(others, ", ")))
		}
		if t.Via != nil && !reached[t.Name] {
			notes = append(notes, fmt.Sprintf("%s: its via reaches no table with an identity", t.Name))
		}
	}
	return notes
}

// fidesPersonal reports whether any field, nested ones included, has
// a user.* category or is an identity.
func fidesPersonal(fields []*fidesField) bool {
	for _, f := range fields {
		if f.identity != "" || fidesUserCategory(f.categories) != "" || fidesPersonal(f.fields) {
			return true
		}
	}
	return false
}

// fidesColumnCategory returns the category a field's column gets: its first
// user.* category, or else the first found among its nested fields (and
// then nested is true); "" if it holds no personal data.
func fidesColumnCategory(f *fidesField) (category string, nested bool) {
	if c := fidesUserCategory(f.categories); c != "" {
		return c, false
	}
	for _, g := range f.fields {
		if c, _ := fidesColumnCategory(g); c != "" {
			return c, true
		}
	}
	return "", false
}

func fidesNestedMeta(fields []*fidesField) bool {
	for _, f := range fields {
		if f.identity != "" || len(f.refs) > 0 || fidesNestedMeta(f.fields) {
			return true
		}
	}
	return false
}

// fidesUserCategory returns the first category under user, the Fides
// taxonomy's root for data about people (system.* is the system's own).
func fidesUserCategory(cats []string) string {
	for _, c := range cats {
		if c == "user" || strings.HasPrefix(c, "user.") {
			return c
		}
	}
	return ""
}

var fidesNonNameRE = regexp.MustCompile(`[^a-z0-9_]`)

// fidesSystemName makes a system name of a fides_key: a-z, 0-9 and '_',
// starting with a letter, at most 63 characters.
func fidesSystemName(key string) string {
	s := fidesNonNameRE.ReplaceAllString(strings.ToLower(key), "_")
	if s == "" || s[0] < 'a' || s[0] > 'z' {
		s = "fides_" + s
	}
	if len(s) > 63 {
		s = s[:63]
	}
	return s
}

// fidesIdentifierKind maps a Fides identity to a Lethe identifier kind: Fides
// calls the phone identity phone_number, Lethe phone.
func fidesIdentifierKind(identity string) string {
	if identity == "phone_number" {
		return lethe.KindPhone
	}
	k := fidesNonNameRE.ReplaceAllString(strings.ToLower(identity), "_")
	if k == "" || k[0] < 'a' || k[0] > 'z' {
		k = "id_" + k
	}
	return k
}

// The YAML form of the manifest types for MarshalSystems: the manifest's
// keys, with empty values left out.
type (
	systemYAML struct {
		Name string `yaml:"name"`
		// Kind is written even when empty, with a comment, for the user
		// to fill in.
		Kind        string        `yaml:"kind"`
		Description string        `yaml:"description,omitempty"`
		Connection  *secretYAML   `yaml:"connection,omitempty"`
		Purposes    []string      `yaml:"purposes,omitempty"`
		Recipient   string        `yaml:"recipient,omitempty"`
		Tables      []tableYAML   `yaml:"tables,omitempty"`
		Keys        []keySetYAML  `yaml:"keys,omitempty"`
		Files       []fileSetYAML `yaml:"files,omitempty"`
		Webhook     *webhookYAML  `yaml:"webhook,omitempty"`
		Manual      *manualYAML   `yaml:"manual,omitempty"`
	}
	secretYAML struct {
		Env  string `yaml:"env,omitempty"`
		File string `yaml:"file,omitempty"`
		Path string `yaml:"path,omitempty"`
	}
	tableYAML struct {
		Name     string         `yaml:"name"`
		Subject  *linkYAML      `yaml:"subject,omitempty"`
		Via      *viaYAML       `yaml:"via,omitempty"`
		Key      []string       `yaml:"key,omitempty,flow"`
		Erase    string         `yaml:"erase,omitempty"`
		Retain   *retentionYAML `yaml:"retain,omitempty"`
		NoExport bool           `yaml:"no_export,omitempty"`
		Columns  []columnYAML   `yaml:"columns,omitempty"`
	}
	linkYAML struct {
		Column     string `yaml:"column"`
		Identifier string `yaml:"identifier,omitempty"`
	}
	viaYAML struct {
		Column     string `yaml:"column"`
		Parent     string `yaml:"parent"`
		References string `yaml:"references"`
	}
	columnYAML struct {
		Name        string `yaml:"name"`
		Category    string `yaml:"category,omitempty"`
		Erase       string `yaml:"erase,omitempty"`
		Placeholder string `yaml:"placeholder,omitempty"`
	}
	retentionYAML struct {
		Basis  string `yaml:"basis,omitempty"`
		Column string `yaml:"column,omitempty"`
		Period string `yaml:"period,omitempty"`
		Reason string `yaml:"reason,omitempty"`
	}
	keySetYAML struct {
		Pattern    string   `yaml:"pattern"`
		Type       string   `yaml:"type,omitempty"`
		Member     string   `yaml:"member,omitempty"`
		Categories []string `yaml:"categories,omitempty,flow"`
		TTLOnly    bool     `yaml:"ttl_only,omitempty"`
	}
	fileSetYAML struct {
		Pattern    string   `yaml:"pattern"`
		Derived    []string `yaml:"derived,omitempty"`
		Categories []string `yaml:"categories,omitempty,flow"`
	}
	webhookYAML struct {
		URL        string   `yaml:"url"`
		Callback   bool     `yaml:"callback,omitempty"`
		Timeout    string   `yaml:"timeout,omitempty"`
		Categories []string `yaml:"categories,omitempty,flow"`
	}
	manualYAML struct {
		Assignee   string   `yaml:"assignee,omitempty"`
		Checklist  []string `yaml:"checklist,omitempty"`
		Categories []string `yaml:"categories,omitempty,flow"`
	}
)

// MarshalSystems returns systems as the YAML of a manifest's systems list
// ("systems:" and the list), for a user to paste into lethe.yaml: keys as
// the manifest names them, empty values left out, and a comment on each
// empty kind asking for one. Positions are not written.
func MarshalSystems(systems []System) ([]byte, error) {
	out := struct {
		Systems []systemYAML `yaml:"systems"`
	}{Systems: []systemYAML{}}
	for _, s := range systems {
		out.Systems = append(out.Systems, systemToYAML(s))
	}
	var n yaml.Node
	if err := n.Encode(out); err != nil {
		return nil, fmt.Errorf("marshal systems: %w", err)
	}
	commentEmptyKinds(&n)
	var b bytes.Buffer
	enc := yaml.NewEncoder(&b)
	enc.SetIndent(2)
	if err := enc.Encode(&n); err != nil {
		return nil, fmt.Errorf("marshal systems: %w", err)
	}
	if err := enc.Close(); err != nil {
		return nil, fmt.Errorf("marshal systems: %w", err)
	}
	return b.Bytes(), nil
}

func systemToYAML(s System) systemYAML {
	y := systemYAML{Name: s.Name, Kind: s.Kind, Description: s.Description, Purposes: s.Purposes, Recipient: s.Recipient}
	if c := (secretYAML{s.Connection.Env, s.Connection.File, s.Connection.Path}); c != (secretYAML{}) {
		y.Connection = &c
	}
	for _, t := range s.Tables {
		ty := tableYAML{Name: t.Name, Key: t.Key, Erase: t.Erase, NoExport: t.NoExport}
		if t.Subject != nil {
			ty.Subject = &linkYAML{t.Subject.Column, t.Subject.Identifier}
		}
		if t.Via != nil {
			ty.Via = &viaYAML{t.Via.Column, t.Via.Parent, t.Via.References}
		}
		if r := t.Retain; r != nil {
			ty.Retain = &retentionYAML{Basis: string(r.Basis), Column: r.Column, Reason: r.Reason}
			if !r.Period.IsZero() {
				ty.Retain.Period = r.Period.String()
			}
		}
		for _, c := range t.Columns {
			ty.Columns = append(ty.Columns, columnYAML{c.Name, c.Category, c.Erase, c.Placeholder})
		}
		y.Tables = append(y.Tables, ty)
	}
	for _, k := range s.Keys {
		y.Keys = append(y.Keys, keySetYAML{k.Pattern, k.Type, k.Member, k.Categories, k.TTLOnly})
	}
	for _, f := range s.Files {
		y.Files = append(y.Files, fileSetYAML{f.Pattern, f.Derived, f.Categories})
	}
	if w := s.Webhook; w != nil {
		y.Webhook = &webhookYAML{URL: w.URL, Callback: w.Callback, Categories: w.Categories}
		if w.Timeout != 0 {
			y.Webhook.Timeout = time.Duration(w.Timeout).String()
		}
	}
	if m := s.Manual; m != nil {
		y.Manual = &manualYAML{m.Assignee, m.Checklist, m.Categories}
	}
	return y
}

// commentEmptyKinds marks each system's empty kind with a comment.
func commentEmptyKinds(root *yaml.Node) {
	list := fidesLookup(root, "systems")
	if list == nil {
		return
	}
	for _, s := range list.Content {
		for i := 0; i+1 < len(s.Content); i += 2 {
			if s.Content[i].Value == "kind" && s.Content[i+1].Value == "" {
				s.Content[i+1].LineComment = "set it: " + strings.Join(Kinds, ", ")
			}
		}
	}
}
