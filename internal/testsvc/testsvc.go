// Package testsvc gives tests the real servers they run against (see
// DEVELOPERS.md): each helper reads the server's address from an environment
// variable, with a default for this machine, and prepares an isolated place
// on it (a fresh database) that is removed when the test ends.
//
// A test whose server is unreachable is skipped, unless
// LETHE_REQUIRE_SERVICES=1, which CI sets so that no test passes by
// skipping.
package testsvc

import (
	"os"
	"testing"
)

// Unavailable ends test t because service, whose address is in envVar,
// cannot be reached (err says why): it fails t if LETHE_REQUIRE_SERVICES=1
// and skips t otherwise.
func Unavailable(t testing.TB, service, envVar string, err error) {
	t.Helper()
	if os.Getenv("LETHE_REQUIRE_SERVICES") == "1" {
		t.Fatalf("%s is unreachable and LETHE_REQUIRE_SERVICES=1 forbids skipping: %v (set %s to point at it)", service, err, envVar)
	}
	t.Skipf("%s is unreachable, skipping: %v (set %s to point at it; CI, `bash .ci/run`, starts it)", service, err, envVar)
}
