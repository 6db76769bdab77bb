// Package files is the connector for a directory of uploads: avatars,
// exported archives, scanned documents, any file whose path names the
// subject it belongs to.
//
// The data map gives glob patterns relative to the system's root, each
// with one placeholder naming an identifier kind, as in
// avatars/{shop_customer_id}/* or exports/{subject}.zip; derived patterns
// (thumbs/{shop_customer_id}/*) name copies made from those files, erased
// with them and not exported. The subject's value replaces the
// placeholder with every glob metacharacter escaped, so that a value
// matches only itself. A value that cannot be one path component (it
// holds a slash, a backslash or NUL, or is . or ..) is refused with
// ErrUnusableIdentifier rather than searched for: no subject reaches
// outside its own files, and no search is reported empty that was never
// made.
//
// Every file access goes through an os.Root, so nothing outside the root
// is ever read or removed, whatever links the directory holds. Within the
// root, matching does not follow symbolic links either: a link is neither
// counted, exported nor removed (erasure says how many it left, in the
// step's note), and directories are entered only when they are real ones.
// A file is read only if it is still the one that was listed.
//
// Erasure removes files one by one, so that a run cut short leaves
// nothing a second run does not finish, then the directories the removal
// left empty, from the deepest up to the one the placeholder names (the
// app's own directories, such as avatars/, stay), and fsyncs the
// directories it changed. Files are never rewritten, so there is no
// Rectifier: a file holding a wrong value is corrected by the app that
// made it, or erased.
package files

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/lethe-privacy/lethe/internal/connector"
	"github.com/lethe-privacy/lethe/internal/datamap"
)

// ErrUnusableIdentifier is returned, wrapped with the system, the pattern
// and the identifier kind (never the value), when a subject's identifier
// cannot be a file name: it holds a slash, a backslash or NUL, or is . or
// ..
var ErrUnusableIdentifier = errors.New("identifier unusable as a file name")

// Conn is an open files system. It is safe for concurrent use; the caller
// must Close it.
type Conn struct {
	sys  *datamap.System
	root *os.Root
	sets []fileSet
}

var (
	_ connector.Connector = (*Conn)(nil)
	_ connector.Exporter  = (*Conn)(nil)
	_ connector.Eraser    = (*Conn)(nil)
)

// fileSet is a FileSet of the map, its source pattern first, then its
// derived patterns.
type fileSet struct {
	patterns []pattern
}

// pattern is one pattern of the map, parsed.
type pattern struct {
	text string // as the map writes it, the location in reports
	kind string // the identifier kind of the placeholder
	// before and after are the text around the placeholder.
	before, after string
	// depth is the index of the path component holding the placeholder:
	// directories at that depth or deeper belong to the subject.
	depth  int
	source bool
}

var placeholderRE = regexp.MustCompile(`\{([^{}]*)\}`)

// Open opens the directory sys.Connection names as the root of the
// system's files. The directory must exist. The patterns are checked
// again here (the data map's validation checks them first), so that no
// pattern can reach outside the root.
func Open(ctx context.Context, sys *datamap.System) (*Conn, error) {
	dir, err := sys.Connection.Resolve()
	if err != nil {
		return nil, fmt.Errorf("system %s: root: %w", sys.Name, err)
	}
	fi, err := os.Stat(dir)
	if err != nil {
		return nil, fmt.Errorf("system %s: root %s: %w", sys.Name, dir, unwrapPath(err))
	}
	if !fi.IsDir() {
		return nil, fmt.Errorf("system %s: root %s is not a directory", sys.Name, dir)
	}
	c := &Conn{sys: sys}
	for _, f := range sys.Files {
		var set fileSet
		for i, text := range append([]string{f.Pattern}, f.Derived...) {
			p, err := parsePattern(text)
			if err != nil {
				return nil, fmt.Errorf("system %s: files %q: %w", sys.Name, text, err)
			}
			p.source = i == 0
			if !p.source && p.kind != set.patterns[0].kind {
				return nil, fmt.Errorf("system %s: files %q: derived pattern %q names {%s}, its source {%s}", sys.Name, f.Pattern, text, p.kind, set.patterns[0].kind)
			}
			set.patterns = append(set.patterns, p)
		}
		c.sets = append(c.sets, set)
	}
	root, err := os.OpenRoot(dir)
	if err != nil {
		return nil, fmt.Errorf("system %s: root %s: %w", sys.Name, dir, unwrapPath(err))
	}
	c.root = root
	return c, nil
}

// parsePattern checks that a pattern stays under the root, has exactly
// one placeholder and is a valid glob.
func parsePattern(text string) (pattern, error) {
	ph := placeholderRE.FindAllStringSubmatchIndex(text, -1)
	if len(ph) != 1 || ph[0][3] == ph[0][2] {
		return pattern{}, errors.New("the pattern needs exactly one placeholder naming an identifier kind")
	}
	p := pattern{text: text, kind: text[ph[0][2]:ph[0][3]], before: text[:ph[0][0]], after: text[ph[0][1]:]}
	p.depth = strings.Count(p.before, "/")
	for _, comp := range strings.Split(text, "/") {
		if comp == "" || comp == "." || comp == ".." {
			return pattern{}, errors.New("the pattern must be relative, stay under the root, and have no empty, . or .. component")
		}
	}
	if strings.ContainsRune(text, 0) {
		return pattern{}, errors.New("the pattern holds NUL")
	}
	if _, err := path.Match(p.expand("x"), ""); err != nil {
		return pattern{}, errors.New("the pattern is not a valid glob")
	}
	return p, nil
}

// expand returns the pattern with the placeholder replaced by an escaped
// value.
func (p pattern) expand(value string) string {
	var b strings.Builder
	b.WriteString(p.before)
	for _, r := range value {
		if strings.ContainsRune(`*?[\`, r) {
			b.WriteByte('\\')
		}
		b.WriteRune(r)
	}
	b.WriteString(p.after)
	return b.String()
}

// Close closes the root.
func (c *Conn) Close() error { return c.root.Close() }

// usable reports whether an identifier's value can be one path component.
func usable(v string) bool {
	return v != "." && v != ".." && !strings.ContainsAny(v, "/\\\x00")
}

// match is a pattern's files for one subject.
type match struct {
	p     pattern
	files []file
	// skipped counts what matched but is no regular file or directory:
	// symbolic links, devices, sockets.
	skipped int
}

// file is a regular file matched, as listed.
type file struct {
	name string // slash-separated, relative to the root
	info fs.FileInfo
}

// collect lists the subject's files under every pattern, in the map's
// order. A file two patterns match is counted under the first only, so
// that a plan and the erasure after it count the same.
func (c *Conn) collect(ctx context.Context, s connector.Subject) ([]match, error) {
	var out []match
	seen := map[string]bool{}
	for _, set := range c.sets {
		for _, p := range set.patterns {
			m := match{p: p}
			v, ok := s.Identifier(p.kind)
			if ok {
				if !usable(v) {
					return nil, fmt.Errorf("system %s: files %q: {%s} of subject %s: %w", c.sys.Name, p.text, p.kind, s.ID, ErrUnusableIdentifier)
				}
				if err := c.glob(ctx, &m, strings.Split(p.expand(v), "/"), seen); err != nil {
					return nil, fmt.Errorf("system %s: files %q: %w", c.sys.Name, p.text, err)
				}
			}
			out = append(out, m)
		}
	}
	return out, nil
}

// glob adds to m the regular files under the root that match comps, one
// glob per path component. It enters real directories only, never a
// symbolic link.
func (c *Conn) glob(ctx context.Context, m *match, comps []string, seen map[string]bool) error {
	dirs := []string{"."}
	for i, comp := range comps {
		last := i == len(comps)-1
		var next []string
		for _, dir := range dirs {
			if err := ctx.Err(); err != nil {
				return err
			}
			var found []fs.FileInfo
			var names []string
			if name, ok := literal(comp); ok {
				fi, err := c.root.Lstat(filepath.FromSlash(path.Join(dir, name)))
				if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR) {
					continue
				}
				if err != nil {
					return fmt.Errorf("stat: %w", unwrapPath(err))
				}
				found, names = append(found, fi), append(names, name)
			} else {
				entries, err := c.readDir(dir)
				if err != nil {
					return err
				}
				for _, e := range entries {
					if ok, _ := path.Match(comp, e.Name()); !ok {
						continue
					}
					fi, err := e.Info()
					if errors.Is(err, fs.ErrNotExist) {
						continue // removed since listed
					}
					if err != nil {
						return fmt.Errorf("stat: %w", unwrapPath(err))
					}
					found, names = append(found, fi), append(names, e.Name())
				}
			}
			for j, fi := range found {
				name := path.Join(dir, names[j])
				switch mode := fi.Mode(); {
				case mode.IsDir():
					if !last {
						next = append(next, name)
					}
				case mode.IsRegular():
					if last && !seen[name] {
						seen[name] = true
						m.files = append(m.files, file{name: name, info: fi})
					}
				default:
					m.skipped++
				}
			}
		}
		dirs = next
	}
	slices.SortFunc(m.files, func(a, b file) int { return cmp.Compare(a.name, b.name) })
	return nil
}

// readDir lists a directory under the root.
func (c *Conn) readDir(dir string) ([]os.DirEntry, error) {
	f, err := c.root.Open(filepath.FromSlash(dir))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("open directory: %w", unwrapPath(err))
	}
	defer f.Close()
	entries, err := f.ReadDir(-1)
	if err != nil {
		return nil, fmt.Errorf("read directory: %w", unwrapPath(err))
	}
	return entries, nil
}

// literal returns the one name a glob component matches, if it has no
// unescaped metacharacter.
func literal(comp string) (string, bool) {
	var b strings.Builder
	for i := 0; i < len(comp); i++ {
		switch ch := comp[i]; ch {
		case '*', '?', '[':
			return "", false
		case '\\':
			i++
			if i == len(comp) {
				return "", false
			}
			b.WriteByte(comp[i])
		default:
			b.WriteByte(ch)
		}
	}
	return b.String(), true
}

// Find counts the subject's files under each pattern, sources and derived
// patterns apart, changing nothing. It returns an error wrapping
// ErrUnusableIdentifier for an identifier that cannot be a file name.
func (c *Conn) Find(ctx context.Context, s connector.Subject) ([]connector.Count, error) {
	ms, err := c.collect(ctx, s)
	if err != nil {
		return nil, err
	}
	out := make([]connector.Count, len(ms))
	for i, m := range ms {
		out[i] = connector.Count{Location: m.p.text, Count: int64(len(m.files))}
	}
	return out, nil
}

// Export writes the subject's files under each source pattern to out,
// named by their path relative to the root. Derived files are copies of
// those and are left out.
func (c *Conn) Export(ctx context.Context, s connector.Subject, out connector.Sink) ([]connector.Count, error) {
	ms, err := c.collect(ctx, s)
	if err != nil {
		return nil, err
	}
	var counts []connector.Count
	for _, m := range ms {
		if !m.p.source {
			continue
		}
		var n int64
		for _, f := range m.files {
			if err := ctx.Err(); err != nil {
				return nil, err
			}
			data, err := c.read(f)
			if errors.Is(err, fs.ErrNotExist) {
				continue // removed since listed
			}
			if err != nil {
				return nil, fmt.Errorf("system %s: export %q: %w", c.sys.Name, m.p.text, err)
			}
			if err := out.File(m.p.text, f.name, data); err != nil {
				return nil, fmt.Errorf("system %s: export %q: %w", c.sys.Name, m.p.text, err)
			}
			n++
		}
		counts = append(counts, connector.Count{Location: m.p.text, Count: n})
	}
	return counts, nil
}

// errChanged is returned when a file was replaced between listing and
// reading (by a symbolic link, say).
var errChanged = errors.New("a file changed while it was read")

// read returns a listed file's contents, if it is still that file.
func (c *Conn) read(f file) ([]byte, error) {
	h, err := c.root.Open(filepath.FromSlash(f.name))
	if err != nil {
		return nil, fmt.Errorf("open: %w", unwrapPath(err))
	}
	defer h.Close()
	fi, err := h.Stat()
	if err != nil {
		return nil, fmt.Errorf("stat: %w", unwrapPath(err))
	}
	if !fi.Mode().IsRegular() || !os.SameFile(fi, f.info) {
		return nil, errChanged
	}
	data, err := io.ReadAll(h)
	if err != nil {
		return nil, fmt.Errorf("read: %w", unwrapPath(err))
	}
	return data, nil
}

// PlanErase says what Erase would remove: one step per pattern, with the
// number of files, changing nothing. Keys stay empty: file names can hold
// identifiers.
func (c *Conn) PlanErase(ctx context.Context, s connector.Subject) (connector.Report, error) {
	ms, err := c.collect(ctx, s)
	if err != nil {
		return connector.Report{}, err
	}
	r := connector.Report{System: c.sys.Name}
	for _, m := range ms {
		r.Steps = append(r.Steps, step(m, int64(len(m.files))))
	}
	r.At = time.Now().UTC()
	return r, nil
}

// Erase removes the subject's files under every pattern, source and
// derived, one by one, then the directories that removal left empty, up
// to the one the placeholder names, and fsyncs the directories it
// changed. It is idempotent: run again, it reports zero.
func (c *Conn) Erase(ctx context.Context, s connector.Subject) (connector.Report, error) {
	ms, err := c.collect(ctx, s)
	if err != nil {
		return connector.Report{}, err
	}
	r := connector.Report{System: c.sys.Name}
	changed := map[string]bool{} // directories to fsync
	// emptied holds the directories that may now be empty, with the depth
	// down to which they belong to the subject.
	emptied := map[string]int{}
	for _, m := range ms {
		var n int64
		for _, f := range m.files {
			if err := ctx.Err(); err != nil {
				return connector.Report{}, c.syncAfter(err, changed)
			}
			err := c.root.Remove(filepath.FromSlash(f.name))
			if errors.Is(err, fs.ErrNotExist) {
				continue // removed since listed
			}
			if err != nil {
				return connector.Report{}, c.syncAfter(fmt.Errorf("system %s: erase %q: remove: %w", c.sys.Name, m.p.text, unwrapPath(err)), changed)
			}
			n++
			dir := path.Dir(f.name)
			changed[dir] = true
			if d, ok := emptied[dir]; !ok || m.p.depth < d {
				emptied[dir] = m.p.depth
			}
		}
		r.Steps = append(r.Steps, step(m, n))
	}
	if err := c.removeEmpty(emptied, changed); err != nil {
		return connector.Report{}, c.syncAfter(err, changed)
	}
	if err := c.sync(changed); err != nil {
		return connector.Report{}, err
	}
	r.At = time.Now().UTC()
	return r, nil
}

// step is the report of one pattern's erasure.
func step(m match, n int64) connector.Step {
	st := connector.Step{Location: m.p.text, Action: connector.ActionDelete, Statement: "remove " + m.p.text, Count: n}
	if m.skipped > 0 {
		st.Note = fmt.Sprintf("left in place: %d matching entries that are symbolic links or special files (links are never followed or removed)", m.skipped)
	}
	return st
}

// removeEmpty removes each directory of emptied that holds nothing, and
// then its parents, deepest first, while they are empty and belong to the
// subject: their depth (0 for a top-level directory) is at least the
// depth of the placeholder's component. The root and the app's own
// directories above the placeholder stay.
func (c *Conn) removeEmpty(emptied map[string]int, changed map[string]bool) error {
	dirs := make([]string, 0, len(emptied))
	for dir := range emptied {
		dirs = append(dirs, dir)
	}
	for len(dirs) > 0 {
		// Deepest first, so that a parent is judged after its children.
		slices.SortFunc(dirs, func(a, b string) int {
			return cmp.Or(cmp.Compare(strings.Count(b, "/"), strings.Count(a, "/")), cmp.Compare(a, b))
		})
		dir := dirs[0]
		dirs = dirs[1:]
		floor := emptied[dir]
		if dir == "." || strings.Count(dir, "/") < floor {
			continue
		}
		entries, err := c.readDir(dir)
		if err != nil {
			return fmt.Errorf("system %s: erase: %w", c.sys.Name, err)
		}
		if len(entries) > 0 {
			continue
		}
		// Remove is rmdir here: it fails rather than remove a directory
		// something was written to since it was listed.
		if err := c.root.Remove(filepath.FromSlash(dir)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("system %s: erase: remove directory: %w", c.sys.Name, unwrapPath(err))
		}
		delete(changed, dir)
		parent := path.Dir(dir)
		changed[parent] = true
		if d, ok := emptied[parent]; !ok {
			emptied[parent] = floor
			dirs = append(dirs, parent)
		} else if floor < d {
			emptied[parent] = floor
		}
	}
	return nil
}

// syncAfter fsyncs the changed directories after a failed erasure, so
// that what was removed stays removed, and returns err.
func (c *Conn) syncAfter(err error, changed map[string]bool) error {
	_ = c.sync(changed)
	return err
}

// sync fsyncs directories, so that the removals in them survive a crash.
// A file system that cannot sync a directory is not an error.
func (c *Conn) sync(dirs map[string]bool) error {
	for _, dir := range slices.Sorted(maps.Keys(dirs)) {
		f, err := c.root.Open(filepath.FromSlash(dir))
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return fmt.Errorf("system %s: erase: sync directory: %w", c.sys.Name, unwrapPath(err))
		}
		err = f.Sync()
		f.Close()
		if err != nil && !errors.Is(err, errors.ErrUnsupported) && !errors.Is(err, syscall.EINVAL) {
			return fmt.Errorf("system %s: erase: sync directory: %w", c.sys.Name, unwrapPath(err))
		}
	}
	return nil
}

// unwrapPath drops an *fs.PathError's path, which can hold an identifier.
func unwrapPath(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	var le *os.LinkError
	if errors.As(err, &le) {
		return le.Err
	}
	return err
}
