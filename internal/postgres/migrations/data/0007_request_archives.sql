-- The sealed pieces of access archives (lethe.RequestStore's archives):
-- each system's export, the archive built from them and its one-time
-- link, kept in the data store so that every instance reaches them, and
-- deleted once downloaded or expired.
CREATE TABLE request_archives (
	request_id text COLLATE "C" NOT NULL REFERENCES requests (id),
	name       text COLLATE "C" NOT NULL,
	data       bytea NOT NULL,
	expires_at timestamptz NOT NULL,
	PRIMARY KEY (request_id, name)
);

CREATE INDEX request_archives_expiry ON request_archives (expires_at);
