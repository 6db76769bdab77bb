-- The consent ledger (lethe.ConsentStore): an append-only record of what
-- people agreed to or asked for, and when. Nothing personal is stored here:
-- tenants, subject IDs, purpose keys, kind and reason codes, policy
-- versions and text hashes, and the person's IP address and user agent only
-- as keyed hashes (HMAC-SHA256, hex), never raw. Times are unix
-- microseconds, UTC. Optional text columns hold '' when empty.
--
-- The revision is the ledger's one global order. The store assigns it from
-- consent_head inside the appending transaction, so revisions follow the
-- order of the commits and have no gaps; it is not left to SQLite's rowid
-- allocation. The column is INTEGER PRIMARY KEY, so it is the rowid: reading
-- the ledger in revision order walks the table itself.
CREATE TABLE consent_events (
	revision        INTEGER PRIMARY KEY CHECK (revision >= 1),
	tenant          TEXT NOT NULL,
	subject_id      TEXT NOT NULL,
	purpose         TEXT NOT NULL, -- '' for restrict, lift_restriction and erased
	kind            TEXT NOT NULL,
	at              INTEGER NOT NULL,
	policy_version  TEXT NOT NULL,
	text_sha256     TEXT NOT NULL,
	expires_at      INTEGER,       -- NULL: until withdrawn
	channel         TEXT NOT NULL,
	ip_hmac         TEXT NOT NULL,
	user_agent_hmac TEXT NOT NULL,
	reason          TEXT NOT NULL,
	recorded_by     TEXT NOT NULL  -- the principal (API key ID) that recorded it
) STRICT;

-- One subject's history, oldest first.
CREATE INDEX consent_events_subject ON consent_events (tenant, subject_id, revision);

-- The newest revision (0 for an empty ledger). An append moves it by the
-- number of events it adds, in the same transaction as their insert.
CREATE TABLE consent_head (
	id       INTEGER PRIMARY KEY CHECK (id = 1),
	revision INTEGER NOT NULL CHECK (revision >= 0)
) STRICT;
INSERT INTO consent_head (id, revision) VALUES (1, 0);
