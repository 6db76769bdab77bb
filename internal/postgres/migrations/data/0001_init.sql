-- The deployment this data store belongs to (see lethe.DeploymentBinder).
CREATE TABLE meta (
	id            smallint PRIMARY KEY CHECK (id = 1),
	deployment_id text NOT NULL CHECK (deployment_id <> '')
);

-- API keys. Only the SHA-256 hash of a key's secret is stored.
CREATE TABLE api_keys (
	id         text PRIMARY KEY,
	name       text NOT NULL,
	role       text NOT NULL,
	hash       bytea NOT NULL UNIQUE,
	created_at timestamptz NOT NULL,
	expires_at timestamptz,
	revoked_at timestamptz
);
