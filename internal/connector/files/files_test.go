package files

import (
	"context"
	"errors"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/lethe-privacy/lethe/internal/connector"
	"github.com/lethe-privacy/lethe/internal/datamap"
)

// tree is what a directory holds: files by slash path with contents,
// directories with a trailing slash, symbolic links as "-> target".
func tree(t *testing.T, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		rel = filepath.ToSlash(rel)
		switch {
		case rel == ".":
		case d.Type()&fs.ModeSymlink != 0:
			target, err := os.Readlink(p)
			if err != nil {
				return err
			}
			out[rel] = "-> " + target
		case d.IsDir():
			out[rel+"/"] = ""
		default:
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			out[rel] = string(b)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func write(t *testing.T, root string, files map[string]string) {
	t.Helper()
	for name, data := range files {
		p := filepath.Join(root, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

type sink struct {
	files map[string]string // location + " " + name → contents
}

func (s *sink) Record(string, []string, []any) error { return errors.New("unexpected record") }

func (s *sink) File(location, name string, data []byte) error {
	s.files[location+" "+name] = string(data)
	return nil
}

var (
	alice   = connector.Subject{ID: "sub_alice", Identifiers: map[string]string{"shop_customer_id": "42"}}
	bob     = connector.Subject{ID: "sub_bob", Identifiers: map[string]string{"shop_customer_id": "4"}}
	star    = connector.Subject{ID: "sub_star", Identifiers: map[string]string{"shop_customer_id": "4*"}}
	escaper = connector.Subject{ID: "sub_escaper", Identifiers: map[string]string{"shop_customer_id": "../42"}}
	dotdot  = connector.Subject{ID: "sub_dotdot", Identifiers: map[string]string{"shop_customer_id": ".."}}
	nobody  = connector.Subject{ID: "sub_nobody"}
)

// setup makes a root with two subjects' avatars, thumbnails and exports,
// and a link from alice's avatars to a file outside the root.
func setup(t *testing.T) (root, outside string, c *Conn) {
	t.Helper()
	root = t.TempDir()
	outside = filepath.Join(t.TempDir(), "outside.txt")
	if err := os.WriteFile(outside, []byte("not lethe's"), 0o644); err != nil {
		t.Fatal(err)
	}
	write(t, root, map[string]string{
		"avatars/42/a.png":          "alice avatar a",
		"avatars/42/b.png":          "alice avatar b",
		"avatars/4/a.png":           "bob avatar",
		"thumbs/42/a.png":           "alice thumb a",
		"thumbs/42/b.png":           "alice thumb b",
		"thumbs/4/a.png":            "bob thumb",
		"exports/sub_alice.zip":     "alice export",
		"exports/sub_bob.zip":       "bob export",
		"avatars/42/sub/nested.png": "a directory the glob does not enter",
		"avatars/4x/a.png":          "matches 4* unescaped",
	})
	if err := os.Symlink(outside, filepath.Join(root, "avatars/42/link.png")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(filepath.Dir(outside)), filepath.Join(root, "thumbs/linkdir")); err != nil {
		t.Fatal(err)
	}
	sys := &datamap.System{
		Name:       "uploads",
		Kind:       datamap.KindFiles,
		Connection: datamap.SecretRef{Path: root},
		Files: []datamap.FileSet{
			{Pattern: "avatars/{shop_customer_id}/*", Derived: []string{"thumbs/{shop_customer_id}/*"}},
			{Pattern: "exports/{subject}.zip"},
		},
	}
	c, err := Open(context.Background(), sys)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return root, outside, c
}

func counts(cs []connector.Count) map[string]int64 {
	out := map[string]int64{}
	for _, c := range cs {
		out[c.Location] = c.Count
	}
	return out
}

func TestFind(t *testing.T) {
	_, _, c := setup(t)
	ctx := context.Background()
	for _, tc := range []struct {
		s    connector.Subject
		want map[string]int64
	}{
		{alice, map[string]int64{"avatars/{shop_customer_id}/*": 2, "thumbs/{shop_customer_id}/*": 2, "exports/{subject}.zip": 1}},
		{bob, map[string]int64{"avatars/{shop_customer_id}/*": 1, "thumbs/{shop_customer_id}/*": 1, "exports/{subject}.zip": 1}},
		{star, map[string]int64{"avatars/{shop_customer_id}/*": 0, "thumbs/{shop_customer_id}/*": 0, "exports/{subject}.zip": 0}},
		{nobody, map[string]int64{"avatars/{shop_customer_id}/*": 0, "thumbs/{shop_customer_id}/*": 0, "exports/{subject}.zip": 0}},
	} {
		t.Run(tc.s.ID, func(t *testing.T) {
			got, err := c.Find(ctx, tc.s)
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != 3 || got[0].Location != "avatars/{shop_customer_id}/*" || got[1].Location != "thumbs/{shop_customer_id}/*" {
				t.Errorf("got locations %v, want source, derived, exports", got)
			}
			if g := counts(got); !maps.Equal(g, tc.want) {
				t.Errorf("got %v, want %v", g, tc.want)
			}
		})
	}
}

func TestUnusableIdentifier(t *testing.T) {
	root, _, c := setup(t)
	before := tree(t, root)
	ctx := context.Background()
	for _, s := range []connector.Subject{escaper, dotdot} {
		t.Run(s.ID, func(t *testing.T) {
			_, err := c.Find(ctx, s)
			if !errors.Is(err, ErrUnusableIdentifier) {
				t.Errorf("find: got %v, want %v", err, ErrUnusableIdentifier)
			}
			if err != nil && strings.Contains(err.Error(), s.Identifiers["shop_customer_id"]) {
				t.Errorf("the error holds the identifier's value")
			}
			if _, err := c.PlanErase(ctx, s); !errors.Is(err, ErrUnusableIdentifier) {
				t.Errorf("plan: got %v, want %v", err, ErrUnusableIdentifier)
			}
			if _, err := c.Erase(ctx, s); !errors.Is(err, ErrUnusableIdentifier) {
				t.Errorf("erase: got %v, want %v", err, ErrUnusableIdentifier)
			}
			if _, err := c.Export(ctx, s, &sink{files: map[string]string{}}); !errors.Is(err, ErrUnusableIdentifier) {
				t.Errorf("export: got %v, want %v", err, ErrUnusableIdentifier)
			}
		})
	}
	if after := tree(t, root); !maps.Equal(after, before) {
		t.Errorf("got tree %v, want %v", slices.Sorted(maps.Keys(after)), slices.Sorted(maps.Keys(before)))
	}
}

func TestExport(t *testing.T) {
	_, _, c := setup(t)
	out := &sink{files: map[string]string{}}
	got, err := c.Export(context.Background(), alice, out)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]int64{"avatars/{shop_customer_id}/*": 2, "exports/{subject}.zip": 1}
	if g := counts(got); !maps.Equal(g, want) {
		t.Errorf("got counts %v, want %v", g, want)
	}
	wantFiles := map[string]string{
		"avatars/{shop_customer_id}/* avatars/42/a.png": "alice avatar a",
		"avatars/{shop_customer_id}/* avatars/42/b.png": "alice avatar b",
		"exports/{subject}.zip exports/sub_alice.zip":   "alice export",
	}
	if !maps.Equal(out.files, wantFiles) {
		t.Errorf("got files %v, want %v", slices.Sorted(maps.Keys(out.files)), slices.Sorted(maps.Keys(wantFiles)))
	}
}

func TestErase(t *testing.T) {
	root, outside, c := setup(t)
	ctx := context.Background()
	before := tree(t, root)

	plan, err := c.PlanErase(ctx, alice)
	if err != nil {
		t.Fatal(err)
	}
	if after := tree(t, root); !maps.Equal(after, before) {
		t.Fatalf("the plan changed the tree")
	}
	r, err := c.Erase(ctx, alice)
	if err != nil {
		t.Fatal(err)
	}
	if r.System != "uploads" || r.Pending || r.At.IsZero() {
		t.Errorf("got report %+v, want system uploads, not pending, a time", r)
	}
	wantSteps := []connector.Step{
		{Location: "avatars/{shop_customer_id}/*", Action: connector.ActionDelete, Statement: "remove avatars/{shop_customer_id}/*", Count: 2},
		{Location: "thumbs/{shop_customer_id}/*", Action: connector.ActionDelete, Statement: "remove thumbs/{shop_customer_id}/*", Count: 2},
		{Location: "exports/{subject}.zip", Action: connector.ActionDelete, Statement: "remove exports/{subject}.zip", Count: 1},
	}
	for _, got := range [][]connector.Step{plan.Steps, r.Steps} {
		if len(got) != len(wantSteps) {
			t.Fatalf("got %d steps, want %d", len(got), len(wantSteps))
		}
		for i, st := range got {
			note := st.Note
			st.Note = ""
			if !equalStep(st, wantSteps[i]) {
				t.Errorf("step %d: got %+v, want %+v", i, st, wantSteps[i])
			}
			if (i == 0) != (note != "") {
				t.Errorf("step %d: got note %q, want one only for the link in avatars", i, note)
			}
		}
	}
	if plan.Total() != r.Total() {
		t.Errorf("got plan total %d, want erase total %d", plan.Total(), r.Total())
	}

	want := maps.Clone(before)
	for _, name := range []string{"avatars/42/a.png", "avatars/42/b.png", "thumbs/42/a.png", "thumbs/42/b.png", "thumbs/42/", "exports/sub_alice.zip"} {
		delete(want, name)
	}
	after := tree(t, root)
	for _, name := range slices.Sorted(maps.Keys(after)) {
		if after[name] != want[name] {
			t.Errorf("%s: got %q after, want %q", name, after[name], want[name])
		}
	}
	for _, name := range slices.Sorted(maps.Keys(want)) {
		if _, ok := after[name]; !ok {
			t.Errorf("%s: got missing, want kept", name)
		}
	}
	// The link and the nested directory keep avatars/42; thumbs/42 went,
	// and thumbs/ and exports/, the app's own directories, stay.
	for _, dir := range []string{"avatars/42/", "avatars/", "thumbs/", "exports/"} {
		if _, ok := after[dir]; !ok {
			t.Errorf("%s: got removed, want kept", dir)
		}
	}
	if b, err := os.ReadFile(outside); err != nil || string(b) != "not lethe's" {
		t.Errorf("the file outside the root changed: %v", err)
	}

	again, err := c.Erase(ctx, alice)
	if err != nil {
		t.Fatal(err)
	}
	if again.Total() != 0 {
		t.Errorf("second erase: got %d, want 0", again.Total())
	}
	if got, want := tree(t, root), after; !maps.Equal(got, want) {
		t.Errorf("the second erase changed the tree")
	}
}

func equalStep(a, b connector.Step) bool {
	return a.Location == b.Location && a.Action == b.Action && a.Statement == b.Statement && a.Count == b.Count && len(a.Keys) == 0 && len(b.Keys) == 0 && slices.Equal(a.Columns, b.Columns) && a.Note == b.Note
}

// TestEraseDirectories checks that the directories the placeholder names
// go once empty, and nested ones under them, but not the app's own.
func TestEraseDirectories(t *testing.T) {
	root := t.TempDir()
	write(t, root, map[string]string{
		"users/42/docs/2024/a.pdf": "a",
		"users/42/docs/b.pdf":      "b",
		"users/4/docs/a.pdf":       "bob's",
	})
	sys := &datamap.System{
		Name:       "docs",
		Connection: datamap.SecretRef{Path: root},
		Files: []datamap.FileSet{
			{Pattern: "users/{shop_customer_id}/docs/*/*"},
			{Pattern: "users/{shop_customer_id}/docs/*"},
		},
	}
	c, err := Open(context.Background(), sys)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	r, err := c.Erase(context.Background(), alice)
	if err != nil {
		t.Fatal(err)
	}
	if r.Total() != 2 {
		t.Errorf("got %d removed, want 2", r.Total())
	}
	want := map[string]string{"users/": "", "users/4/": "", "users/4/docs/": "", "users/4/docs/a.pdf": "bob's"}
	if got := tree(t, root); !maps.Equal(got, want) {
		t.Errorf("got %v, want %v", got, want)
	}
}

func TestStar(t *testing.T) {
	// A value holding a glob metacharacter matches only itself.
	root := t.TempDir()
	write(t, root, map[string]string{"avatars/4*/a.png": "star's", "avatars/42/a.png": "alice's"})
	sys := &datamap.System{Name: "uploads", Connection: datamap.SecretRef{Path: root}, Files: []datamap.FileSet{{Pattern: "avatars/{shop_customer_id}/*"}}}
	c, err := Open(context.Background(), sys)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	r, err := c.Erase(context.Background(), star)
	if err != nil {
		t.Fatal(err)
	}
	if r.Total() != 1 {
		t.Errorf("got %d, want 1", r.Total())
	}
	want := map[string]string{"avatars/": "", "avatars/42/": "", "avatars/42/a.png": "alice's"}
	if got := tree(t, root); !maps.Equal(got, want) {
		t.Errorf("got %v, want %v", slices.Sorted(maps.Keys(got)), slices.Sorted(maps.Keys(want)))
	}
}

func TestOpen(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "f")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name    string
		root    string
		pattern string
		derived string
	}{
		{"missing root", filepath.Join(dir, "none"), "a/{subject}", ""},
		{"root is a file", file, "a/{subject}", ""},
		{"no placeholder", dir, "a/*", ""},
		{"two placeholders", dir, "{subject}/{email}", ""},
		{"absolute", dir, "/a/{subject}", ""},
		{"dot dot", dir, "../{subject}", ""},
		{"empty component", dir, "a//{subject}", ""},
		{"bad glob", dir, "a/[/{subject}", ""},
		{"derived of another kind", dir, "a/{subject}", "b/{email}"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := datamap.FileSet{Pattern: tc.pattern}
			if tc.derived != "" {
				f.Derived = []string{tc.derived}
			}
			sys := &datamap.System{Name: "uploads", Connection: datamap.SecretRef{Path: tc.root}, Files: []datamap.FileSet{f}}
			c, err := Open(context.Background(), sys)
			if err == nil {
				c.Close()
				t.Fatalf("got no error, want one")
			}
			if !strings.Contains(err.Error(), "system uploads") {
				t.Errorf("got %v, want the system named", err)
			}
		})
	}
}

func TestLinkedDirectory(t *testing.T) {
	// thumbs/linkdir is a link to the directory outside the root: the
	// glob does not enter it.
	root, outside, c := setup(t)
	linked := connector.Subject{ID: "sub_linked", Identifiers: map[string]string{"shop_customer_id": "linkdir"}}
	before := tree(t, root)
	r, err := c.Erase(context.Background(), linked)
	if err != nil {
		t.Fatal(err)
	}
	if r.Total() != 0 {
		t.Errorf("got %d, want 0", r.Total())
	}
	if r.Steps[1].Note == "" {
		t.Errorf("got no note for the link, want one")
	}
	if after := tree(t, root); !maps.Equal(after, before) {
		t.Errorf("the tree changed")
	}
	if _, err := os.Stat(outside); err != nil {
		t.Errorf("got %v, want the file outside the root kept", err)
	}
}
