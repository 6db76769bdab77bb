-- The sealed pieces of access archives (lethe.RequestStore's archives):
-- each system's export, the archive built from them and its one-time
-- link, kept in the data store so that every instance reaches them, and
-- deleted once downloaded or expired.
CREATE TABLE request_archives (
	request_id TEXT NOT NULL REFERENCES requests (id),
	name       TEXT NOT NULL,
	data       BLOB NOT NULL,
	expires_at INTEGER NOT NULL, -- unix microseconds
	PRIMARY KEY (request_id, name)
) STRICT;

CREATE INDEX request_archives_expiry ON request_archives (expires_at);
