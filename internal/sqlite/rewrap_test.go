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
		lethe.StaleTenantKey: "SEARCH tenant_keys USING PRIMARY KEY ((tenant,version)>(?,?))",
	}
	for _, table := range masterWrappedTables {
		t.Run(table.kind, func(t *testing.T) {
			plan := queryPlan(t, keys, table.next, table.nextArgs("kek", lethe.StaleKey{Name: "name", Version: 1}, 10)...)
			if !slices.Contains(plan, want[table.kind]) {
				t.Errorf("plan: got %q, want a step %q", plan, want[table.kind])
			}
		})
	}
}

func TestTenantKeyRotator(t *testing.T) {
	storetest.TestTenantKeyRotator(t, func(t *testing.T) storetest.TenantRotatorKeyStore {
		return NewKeyStore(openTest(t, OpenKeys, filepath.Join(t.TempDir(), "keys.db")))
	})
}

// TestTenantKeyQueryPlans checks that listing a tenant's stale subject keys
// walks the primary key from the cursor.
func TestTenantKeyQueryPlans(t *testing.T) {
	keys := openTest(t, OpenKeys, filepath.Join(t.TempDir(), "keys.db"))
	plan := queryPlan(t, keys, staleSubjectKeysQuery, "acme", "sub_1", "tenant:acme:v2", "tenant:acme:v2", 10)
	if want := "SEARCH subject_keys USING PRIMARY KEY (tenant=? AND subject_id>?)"; !slices.Contains(plan, want) {
		t.Errorf("plan: got %q, want a step %q", plan, want)
	}
}
