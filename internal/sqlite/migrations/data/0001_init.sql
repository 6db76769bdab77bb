-- The deployment this data store belongs to (see lethe.DeploymentBinder).
CREATE TABLE meta (
	id            INTEGER PRIMARY KEY CHECK (id = 1),
	deployment_id TEXT NOT NULL CHECK (deployment_id <> '')
) STRICT;

-- API keys. Times are unix microseconds, UTC. Only the SHA-256 hash of a
-- key's secret is stored.
CREATE TABLE api_keys (
	id         TEXT PRIMARY KEY,
	name       TEXT NOT NULL,
	role       TEXT NOT NULL,
	hash       BLOB NOT NULL UNIQUE,
	created_at INTEGER NOT NULL,
	expires_at INTEGER,
	revoked_at INTEGER
) STRICT;
