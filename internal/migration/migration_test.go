package migration

import (
	"strings"
	"testing"
	"testing/fstest"
)

func TestSteps(t *testing.T) {
	fsys := fstest.MapFS{
		"m/0001_init.sql":  {Data: []byte("one")},
		"m/0002_more.sql":  {Data: []byte("two")},
		"m/README":         {Data: []byte("not a migration")},
		"gap/0001_a.sql":   {Data: []byte("a")},
		"gap/0003_c.sql":   {Data: []byte("c")},
		"twice/0001_a.sql": {Data: []byte("a")},
		"twice/0001_b.sql": {Data: []byte("b")},
	}
	steps, err := Steps(fsys, "m")
	if err != nil || strings.Join(steps, ",") != "one,two" {
		t.Fatalf("got %q, %v; want one,two", steps, err)
	}
	for _, dir := range []string{"gap", "twice"} {
		if _, err := Steps(fsys, dir); err == nil {
			t.Errorf("%s: got no error", dir)
		}
	}
	if steps, err := Steps(fsys, "none"); err != nil || len(steps) != 0 {
		t.Errorf("no migrations: got %q, %v", steps, err)
	}
}
