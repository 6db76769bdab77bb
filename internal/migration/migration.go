// Package migration reads a store's schema migrations: numbered SQL files,
// 0001_name.sql onwards, each store engine embedding its own. Applying them
// is the engine's business (transactions and locks differ); the file rules
// are the same for every engine and live here.
package migration

import (
	"fmt"
	"io/fs"
	"path"
	"strings"
)

// Steps returns the SQL of the migrations in dir of fsys, in order: element
// i is version i+1. Every file must be named with its version, 0001_ to
// begin with, with no gap and no duplicate.
func Steps(fsys fs.FS, dir string) ([]string, error) {
	names, err := fs.Glob(fsys, dir+"/*.sql")
	if err != nil {
		return nil, err
	}
	steps := make([]string, len(names))
	for i, name := range names {
		if want := fmt.Sprintf("%04d_", i+1); !strings.HasPrefix(path.Base(name), want) {
			return nil, fmt.Errorf("migration %s: want a name starting %s", name, want)
		}
		b, err := fs.ReadFile(fsys, name)
		if err != nil {
			return nil, err
		}
		steps[i] = string(b)
	}
	return steps, nil
}
