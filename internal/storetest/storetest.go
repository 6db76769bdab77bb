// Package storetest is the contract suite for Lethe's stores. Each storage
// engine (internal/sqlite, internal/postgres) runs the same tests from its
// own _test.go file, so the engines cannot drift apart in behaviour.
//
// Each Test function takes a constructor that returns a store on a fresh,
// empty database and arranges (with t.Cleanup) for it to be closed. The
// Benchmark functions take one such store and measure its hot paths, so the
// engines can be compared on equal terms.
package storetest

import (
	"fmt"
	"sync"
	"testing"

	"github.com/lethe-privacy/lethe"
)

// TestDeploymentBinder runs the lethe.DeploymentBinder contract against
// binders that open returns; each call must return one on a fresh database.
func TestDeploymentBinder(t *testing.T, open func(t *testing.T) lethe.DeploymentBinder) {
	t.Run("first candidate wins", func(t *testing.T) {
		b := open(t)
		for _, candidate := range []string{"dep_first", "dep_second", "dep_first"} {
			got, err := b.BindDeployment(t.Context(), candidate)
			if err != nil {
				t.Fatalf("bind %s: %v", candidate, err)
			}
			if got != "dep_first" {
				t.Errorf("bind %s: got %v, want %v", candidate, got, "dep_first")
			}
		}
	})

	t.Run("concurrent binds agree", func(t *testing.T) {
		b := open(t)
		const n = 20
		got := make([]string, n)
		errs := make([]error, n)
		var wg sync.WaitGroup
		for i := range n {
			wg.Go(func() { got[i], errs[i] = b.BindDeployment(t.Context(), fmt.Sprintf("dep_%d", i)) })
		}
		wg.Wait()
		for i := range n {
			if errs[i] != nil {
				t.Fatalf("bind %d: %v", i, errs[i])
			}
			if got[i] != got[0] {
				t.Errorf("bind %d: got %v, want %v", i, got[i], got[0])
			}
		}
		if again, err := b.BindDeployment(t.Context(), "dep_late"); err != nil || again != got[0] {
			t.Errorf("bind after race: got %v, %v, want %v, <nil>", again, err, got[0])
		}
	})
}

// wantCode fails t unless err carries the lethe error code code.
func wantCode(t *testing.T, err error, code string) {
	t.Helper()
	if got := lethe.ErrorCode(err); got != code {
		t.Fatalf("error code: got %v, want %v (error: %v)", got, code, err)
	}
}
