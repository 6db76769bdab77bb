package sqlite

import (
	"path/filepath"
	"slices"
	"testing"

	"github.com/lethe-privacy/lethe"
	"github.com/lethe-privacy/lethe/internal/storetest"
)

func TestKeyRewrapper(t *testing.T) {
	storetest.TestKeyRewrapper(t, func(t *testing.T) storetest.RewrapKeyStore {
		return NewKeyStore(openTest(t, OpenKeys, filepath.Join(t.TempDir(), "keys.db")))
	})
}

// TestRewrapQueryPlans checks that listing stale keys walks the primary
// key, so a page costs its own length however far into the table it starts.
func TestRewrapQueryPlans(t *testing.T) {
	keys := openTest(t, OpenKeys, filepath.Join(t.TempDir(), "keys.db"))
	want := map[string]string{
		lethe.StaleSecret:    "SEARCH secrets USING PRIMARY KEY (name>?)",
		lethe.StaleTenantKey: "SEARCH tenant_keys USING PRIMARY KEY (tenant>?)",
	}
	for _, table := range masterWrappedTables {
		t.Run(table.kind, func(t *testing.T) {
			plan := queryPlan(t, keys, table.next, "kek", "name", 10)
			if !slices.Contains(plan, want[table.kind]) {
				t.Errorf("plan: got %q, want a step %q", plan, want[table.kind])
			}
		})
	}
}
