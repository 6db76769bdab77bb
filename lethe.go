// Package lethe holds Lethe's domain: the types every component shares, the
// service interfaces the stores implement, and the one error type with its
// closed set of codes.
//
// Lethe is a privacy engine for application backends. Subpackages under
// internal/ implement these contracts (internal/sqlite and internal/postgres
// persist them, internal/api serves them over HTTP) and cmd/lethe wires them
// together. This package imports only the standard library.
package lethe

import (
	"context"
	"time"
)

// DeploymentBinder is implemented by both of a deployment's databases, the
// data store and the key store. Each keeps the ID of the deployment it
// belongs to, so that a data store is never opened against another
// deployment's key store (for example after restoring the wrong backup).
type DeploymentBinder interface {
	// BindDeployment records candidate as the deployment ID if the database
	// has none yet, and returns the ID the database holds afterwards. It is
	// safe for concurrent use; when two callers race, both get the one ID
	// that was stored first.
	BindDeployment(ctx context.Context, candidate string) (string, error)
}

// Pinger reports whether a store can serve requests. /readyz uses it.
type Pinger interface {
	Ping(ctx context.Context) error
}

// Now is the clock type components take so tests can inject time.
type Now func() time.Time
