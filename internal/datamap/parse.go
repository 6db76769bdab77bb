package datamap

import (
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/lethe-privacy/lethe"
)

// manifestFile is one YAML file of a manifest.
type manifestFile struct {
	Version      int            `yaml:"version"`
	Organisation *Organisation  `yaml:"organisation"`
	DPO          *Contact       `yaml:"dpo"`
	Purposes     []purposeEntry `yaml:"purposes"`
	Categories   []Category     `yaml:"categories"`
	Recipients   []Recipient    `yaml:"recipients"`
	Systems      []System       `yaml:"systems"`
	Flows        []Flow         `yaml:"flows"`
}

// Load reads a manifest from a YAML file, or from every .yaml and .yml
// file of a directory (in name order), and validates it. Relative paths in
// it (policy texts, SQLite files, file-store roots) are taken from the
// file's directory. Errors give the file, line and column, and a hint.
func Load(path string) (*Manifest, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("read data map: %w", err)
	}
	files := []string{path}
	if st.IsDir() {
		files = nil
		entries, err := os.ReadDir(path)
		if err != nil {
			return nil, fmt.Errorf("read data map: %w", err)
		}
		for _, e := range entries {
			if ext := filepath.Ext(e.Name()); !e.IsDir() && (ext == ".yaml" || ext == ".yml") {
				files = append(files, filepath.Join(path, e.Name()))
			}
		}
		if len(files) == 0 {
			return nil, fmt.Errorf("read data map: no .yaml or .yml file in %s", path)
		}
	}
	m := &Manifest{}
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			return nil, fmt.Errorf("read data map: %w", err)
		}
		dir := filepath.Dir(f)
		if err := m.add(f, data, dir); err != nil {
			return nil, err
		}
	}
	if err := m.Validate(); err != nil {
		return nil, err
	}
	return m, nil
}

// Parse parses and validates a manifest held in memory; name is used in
// errors and dir resolves relative paths.
func Parse(name string, data []byte, dir string) (*Manifest, error) {
	m := &Manifest{}
	if err := m.add(name, data, dir); err != nil {
		return nil, err
	}
	if err := m.Validate(); err != nil {
		return nil, err
	}
	return m, nil
}

// add merges one file into m.
func (m *Manifest) add(name string, data []byte, dir string) error {
	var f manifestFile
	if err := decodeStrict(name, data, &f); err != nil {
		return err
	}
	m.Files = append(m.Files, name)
	if f.Version != 0 {
		if m.Version != 0 && m.Version != f.Version {
			return fmt.Errorf("%s: version %d, but another file says %d", name, f.Version, m.Version)
		}
		m.Version = f.Version
	}
	if f.Organisation != nil {
		if m.Organisation.Name != "" {
			return fmt.Errorf("%s: organisation is declared in two files", name)
		}
		m.Organisation = *f.Organisation
	}
	if f.DPO != nil {
		if m.DPO != (Contact{}) {
			return fmt.Errorf("%s: dpo is declared in two files", name)
		}
		m.DPO = *f.DPO
	}
	readText := func(p string) ([]byte, error) {
		if !filepath.IsAbs(p) {
			p = filepath.Join(dir, p)
		}
		return os.ReadFile(p)
	}
	if m.purposePos == nil {
		m.purposePos = map[string]Pos{}
	}
	for _, e := range f.Purposes {
		e.Pos.File = name
		p, err := e.purpose(readText)
		if err != nil {
			return fmt.Errorf("%s: %w", e.Pos, err)
		}
		if prev, dup := m.purposePos[p.Key]; dup {
			return fmt.Errorf("%s: purpose %q is declared twice (first at %s)", e.Pos, p.Key, prev)
		}
		m.purposePos[p.Key] = e.Pos
		m.Purposes = append(m.Purposes, p)
	}
	for i := range f.Categories {
		f.Categories[i].File = name
	}
	m.Categories = append(m.Categories, f.Categories...)
	for i := range f.Recipients {
		f.Recipients[i].File = name
	}
	m.Recipients = append(m.Recipients, f.Recipients...)
	for i := range f.Flows {
		f.Flows[i].File = name
	}
	m.Flows = append(m.Flows, f.Flows...)
	for i := range f.Systems {
		s := &f.Systems[i]
		s.setFile(name)
		if s.Connection.Path != "" && !filepath.IsAbs(s.Connection.Path) {
			s.Connection.Path = filepath.Join(dir, s.Connection.Path)
		}
		if s.Connection.File != "" && !filepath.IsAbs(s.Connection.File) {
			s.Connection.File = filepath.Join(dir, s.Connection.File)
		}
	}
	m.Systems = append(m.Systems, f.Systems...)
	return nil
}

func (s *System) setFile(name string) {
	s.Pos.File, s.Connection.Pos.File = name, name
	for i := range s.Tables {
		t := &s.Tables[i]
		t.Pos.File = name
		if t.Subject != nil {
			t.Subject.Pos.File = name
		}
		if t.Via != nil {
			t.Via.Pos.File = name
		}
		if t.Retain != nil {
			t.Retain.Pos.File = name
		}
		for j := range t.Columns {
			t.Columns[j].Pos.File = name
		}
		for j := range t.Restrict {
			r := &t.Restrict[j]
			r.Pos.File = name
			for k := range r.Set {
				r.Set[k].Pos.File = name
			}
		}
	}
	for i := range s.Keys {
		s.Keys[i].Pos.File = name
	}
	for i := range s.Files {
		s.Files[i].Pos.File = name
	}
	if s.Webhook != nil {
		s.Webhook.Pos.File = name
	}
	if s.Manual != nil {
		s.Manual.Pos.File = name
	}
}

// decodeStrict decodes one YAML document into v, refusing keys v does not
// know: each positioned type checks its own mapping's keys (yaml.v3's
// KnownFields does not reach into custom unmarshalers).
func decodeStrict(name string, data []byte, v any) error {
	var root yaml.Node
	if err := yaml.Unmarshal(data, &root); err != nil {
		return fmt.Errorf("%s: %s", name, yamlMessage(err))
	}
	if len(root.Content) == 0 {
		return fmt.Errorf("%s: the file is empty", name)
	}
	doc := root.Content[0]
	if doc.Kind != yaml.MappingNode {
		return fmt.Errorf("%s:%d:%d: expected a mapping of keys (version, organisation, dpo, purposes, categories, recipients, systems, flows)", name, doc.Line, doc.Column)
	}
	if err := checkKeys(doc, v, "the top level"); err != nil {
		return withFile(name, err)
	}
	if err := doc.Decode(v); err != nil {
		return withFile(name, err)
	}
	return nil
}

// posError is an error at a place in a file whose name is added later.
type posError struct {
	line, column int
	msg          string
}

func (e *posError) Error() string { return fmt.Sprintf("%d:%d: %s", e.line, e.column, e.msg) }

func errorAt(n *yaml.Node, format string, args ...any) error {
	return &posError{n.Line, n.Column, fmt.Sprintf(format, args...)}
}

func withFile(name string, err error) error {
	var pe *posError
	if errors.As(err, &pe) {
		return fmt.Errorf("%s:%d:%d: %s", name, pe.line, pe.column, pe.msg)
	}
	return fmt.Errorf("%s: %s", name, yamlMessage(err))
}

var yamlLineRE = regexp.MustCompile(`line (\d+): `)

// yamlMessage turns yaml.v3's "yaml: line 3: …" into "3: …".
func yamlMessage(err error) string {
	var te *yaml.TypeError
	var parts []string
	if errors.As(err, &te) {
		parts = te.Errors
	} else {
		parts = []string{err.Error()}
	}
	for i, p := range parts {
		p = strings.TrimPrefix(p, "yaml: ")
		if m := yamlLineRE.FindStringSubmatchIndex(p); m != nil && m[0] == 0 {
			p = p[m[2]:m[3]] + ": " + p[m[1]:]
		}
		parts[i] = p
	}
	return strings.Join(parts, "; ")
}

var knownKeys sync.Map // reflect.Type → []string

// keysOf returns the YAML keys of struct type t.
func keysOf(t reflect.Type) []string {
	if k, ok := knownKeys.Load(t); ok {
		return k.([]string)
	}
	var keys []string
	for i := range t.NumField() {
		tag, _, _ := strings.Cut(t.Field(i).Tag.Get("yaml"), ",")
		if tag != "" && tag != "-" {
			keys = append(keys, tag)
		}
	}
	knownKeys.Store(t, keys)
	return keys
}

// checkKeys refuses a node that is not a mapping, and a mapping key that
// v's type does not know, with the closest known key as a hint.
func checkKeys(n *yaml.Node, v any, what string) error {
	if n.Kind != yaml.MappingNode {
		return errorAt(n, "%s must be a mapping of keys", what)
	}
	known := keysOf(reflect.TypeOf(v).Elem())
	seen := map[string]bool{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k := n.Content[i]
		if !slices.Contains(known, k.Value) {
			hint := ""
			if s := closest(k.Value, known, 3); s != "" {
				hint = fmt.Sprintf(" (did you mean %s?)", s)
			}
			return errorAt(k, "unknown key %q in %s%s; known keys: %s", k.Value, what, hint, strings.Join(known, ", "))
		}
		if seen[k.Value] {
			return errorAt(k, "key %q appears twice in %s", k.Value, what)
		}
		seen[k.Value] = true
	}
	return nil
}

// closest returns the candidate nearest to s by edit distance, if within
// max.
func closest(s string, candidates []string, max int) string {
	best, bestD := "", max+1
	for _, c := range candidates {
		if n := len(c) - len(s); n > max || n < -max {
			continue // the distance is at least the difference in length
		}
		if d := levenshtein(s, c); d < bestD {
			best, bestD = c, d
		}
	}
	return best
}

func pos(n *yaml.Node) Pos { return Pos{Line: n.Line, Column: n.Column} }

// strict decodes a mapping node into v (a pointer to a plain copy of the
// positioned type), after checking its keys.
func strict(n *yaml.Node, v any, what string) error {
	if err := checkKeys(n, v, what); err != nil {
		return err
	}
	return n.Decode(v)
}

func (o *Organisation) UnmarshalYAML(n *yaml.Node) error {
	type plain Organisation
	return strict(n, (*plain)(o), "organisation")
}

func (c *Contact) UnmarshalYAML(n *yaml.Node) error {
	type plain Contact
	return strict(n, (*plain)(c), "dpo")
}

func (c *Category) UnmarshalYAML(n *yaml.Node) error {
	type plain Category
	c.Pos = pos(n)
	return strict(n, (*plain)(c), "a category")
}

func (r *Recipient) UnmarshalYAML(n *yaml.Node) error {
	type plain Recipient
	r.Pos = pos(n)
	return strict(n, (*plain)(r), "a recipient")
}

func (f *Flow) UnmarshalYAML(n *yaml.Node) error {
	type plain Flow
	f.Pos = pos(n)
	return strict(n, (*plain)(f), "a flow")
}

func (s *System) UnmarshalYAML(n *yaml.Node) error {
	type plain System
	s.Pos = pos(n)
	return strict(n, (*plain)(s), "a system")
}

func (r *SecretRef) UnmarshalYAML(n *yaml.Node) error {
	type plain SecretRef
	r.Pos = pos(n)
	if n.Kind == yaml.ScalarNode {
		return errorAt(n, "connection must reference the value, not hold it: write {env: VARIABLE}, {file: /run/secrets/name} or, for an SQLite file or a directory, {path: ...}")
	}
	return strict(n, (*plain)(r), "connection")
}

func (t *Table) UnmarshalYAML(n *yaml.Node) error {
	type plain Table
	t.Pos = pos(n)
	return strict(n, (*plain)(t), "a table")
}

func (l *Link) UnmarshalYAML(n *yaml.Node) error {
	type plain Link
	l.Pos = pos(n)
	return strict(n, (*plain)(l), "subject")
}

func (v *Via) UnmarshalYAML(n *yaml.Node) error {
	type plain Via
	v.Pos = pos(n)
	return strict(n, (*plain)(v), "via")
}

func (c *Column) UnmarshalYAML(n *yaml.Node) error {
	type plain Column
	c.Pos = pos(n)
	return strict(n, (*plain)(c), "a column")
}

func (r *Restriction) UnmarshalYAML(n *yaml.Node) error {
	type plain Restriction
	r.Pos = pos(n)
	return strict(n, (*plain)(r), "a restrict entry")
}

// UnmarshalYAML reads set: a mapping of column names to plain values. The
// errors name the column, never the value.
func (as *Assignments) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.MappingNode {
		return errorAt(n, "set must be a mapping of columns to values, like set: {processing_restricted: true}")
	}
	out := Assignments{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if k.Kind != yaml.ScalarNode {
			return errorAt(k, "a key of set must be a column name")
		}
		for _, a := range out {
			if a.Column == k.Value {
				return errorAt(k, "column %q appears twice in set", k.Value)
			}
		}
		if v.Kind == yaml.AliasNode && v.Alias != nil {
			v = v.Alias
		}
		val, err := assignmentValue(v)
		if err != nil {
			return errorAt(v, "set: the value of %s %v", k.Value, err)
		}
		out = append(out, Assignment{Column: k.Value, Value: val, Pos: pos(k)})
	}
	*as = out
	return nil
}

// assignmentValue reads a plain YAML value: null, a bool, an integer, a
// finite number or a string (a timestamp stays the text written).
func assignmentValue(v *yaml.Node) (any, error) {
	plainValue := errors.New("must be a string, a number, true, false or null")
	if v.Kind != yaml.ScalarNode {
		return nil, plainValue
	}
	switch v.ShortTag() {
	case "!!null":
		return nil, nil
	case "!!bool":
		var b bool
		if err := v.Decode(&b); err != nil {
			return nil, plainValue
		}
		return b, nil
	case "!!int":
		var i int64
		if err := v.Decode(&i); err != nil {
			return nil, errors.New("is not an integer of 64 bits")
		}
		return i, nil
	case "!!float":
		var f float64
		if err := v.Decode(&f); err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
			return nil, errors.New("must be a finite number")
		}
		return f, nil
	case "!!str", "!!timestamp":
		return v.Value, nil
	}
	return nil, plainValue
}

func (r *Retention) UnmarshalYAML(n *yaml.Node) error {
	type plain Retention
	r.Pos = pos(n)
	return strict(n, (*plain)(r), "retain")
}

func (k *KeySpace) UnmarshalYAML(n *yaml.Node) error {
	type plain KeySpace
	k.Pos = pos(n)
	return strict(n, (*plain)(k), "a key space")
}

func (f *FileSet) UnmarshalYAML(n *yaml.Node) error {
	type plain FileSet
	f.Pos = pos(n)
	return strict(n, (*plain)(f), "a file set")
}

func (w *Webhook) UnmarshalYAML(n *yaml.Node) error {
	type plain Webhook
	w.Pos = pos(n)
	return strict(n, (*plain)(w), "webhook")
}

func (m *Manual) UnmarshalYAML(n *yaml.Node) error {
	type plain Manual
	m.Pos = pos(n)
	return strict(n, (*plain)(m), "manual")
}

var periodRE = regexp.MustCompile(`^(?:(\d+)y)?(?:(\d+)mo)?(?:(\d+)w)?(?:(\d+)d)?$`)

// ParsePeriod reads a period like 10y, 6mo, 2w, 90d or 1y6mo.
func ParsePeriod(s string) (Period, error) {
	m := periodRE.FindStringSubmatch(s)
	if m == nil || s == "" {
		return Period{}, fmt.Errorf("period %q must be years, months, weeks and days like 10y, 6mo, 2w, 90d or 1y6mo", s)
	}
	num := func(x string) int {
		v, _ := strconv.Atoi(x) // digits only, by the expression
		return v
	}
	p := Period{Years: num(m[1]), Months: num(m[2]), Days: 7*num(m[3]) + num(m[4])}
	if p.IsZero() {
		return p, fmt.Errorf("period %q is empty", s)
	}
	if p.Years > 200 || p.Months > 2400 || p.Days > 73000 {
		return p, fmt.Errorf("period %q is longer than 200 years", s)
	}
	return p, nil
}

func (p *Period) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode {
		return errorAt(n, "a period is a string like 10y, 6mo or 90d")
	}
	v, err := ParsePeriod(n.Value)
	if err != nil {
		return errorAt(n, "%v", err)
	}
	*p = v
	return nil
}

func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	v, err := time.ParseDuration(n.Value)
	if n.Kind != yaml.ScalarNode || err != nil || v <= 0 {
		return errorAt(n, "a duration is a positive Go duration like 10s or 2m")
	}
	*d = Duration(v)
	return nil
}

// purposeKeys lists the manifest's purposes, sorted, for hints.
func (m *Manifest) purposeKeys() []string {
	var keys []string
	for _, p := range m.Purposes {
		keys = append(keys, p.Key)
	}
	sort.Strings(keys)
	return keys
}

// Purpose returns the declared purpose with the key.
func (m *Manifest) Purpose(key string) (lethe.Purpose, bool) {
	for _, p := range m.Purposes {
		if p.Key == key {
			return p, true
		}
	}
	return lethe.Purpose{}, false
}

// System returns the system with the name.
func (m *Manifest) System(name string) (*System, bool) {
	for i := range m.Systems {
		if m.Systems[i].Name == name {
			return &m.Systems[i], true
		}
	}
	return nil, false
}

// Table returns the system's table with the name.
func (s *System) Table(name string) (*Table, bool) {
	for i := range s.Tables {
		if s.Tables[i].Name == name {
			return &s.Tables[i], true
		}
	}
	return nil, false
}
