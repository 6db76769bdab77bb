-- The deployment this key store belongs to (see lethe.DeploymentBinder).
CREATE TABLE meta (
	id            smallint PRIMARY KEY CHECK (id = 1),
	deployment_id text NOT NULL CHECK (deployment_id <> '')
);
