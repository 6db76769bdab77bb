-- The deployment this key store belongs to (see lethe.DeploymentBinder).
CREATE TABLE meta (
	id            INTEGER PRIMARY KEY CHECK (id = 1),
	deployment_id TEXT NOT NULL CHECK (deployment_id <> '')
) STRICT;
