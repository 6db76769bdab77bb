-- The consent ledger (lethe.ConsentStore): an append-only record of what
-- people agreed to or asked for, and when, shared by every instance on this
-- data store. Nothing personal is stored here: tenants, subject IDs,
-- purpose keys, kind and reason codes, policy versions and text hashes, and
-- the person's IP address and user agent only as keyed hashes (HMAC-SHA256,
-- hex), never raw. Optional text columns hold '' when empty.
--
-- The revision is the ledger's one global order. It is not a bigserial: a
-- sequence hands out numbers when transactions ask, not when they commit,
-- so a reader could see revision 8 committed while 7 is still in flight and
-- skip 7 for good. An append instead moves consent_head under its row lock,
-- in the same statement as the insert, so appenders on every instance take
-- turns until each commits: revisions are committed in order, without gaps.
CREATE TABLE consent_events (
	revision        bigint PRIMARY KEY CHECK (revision >= 1),
	tenant          text COLLATE "C" NOT NULL,
	subject_id      text COLLATE "C" NOT NULL,
	purpose         text COLLATE "C" NOT NULL, -- '' for restrict, lift_restriction and erased
	kind            text COLLATE "C" NOT NULL,
	at              timestamptz NOT NULL,
	policy_version  text NOT NULL,
	text_sha256     text NOT NULL,
	expires_at      timestamptz,               -- NULL: until withdrawn
	channel         text NOT NULL,
	ip_hmac         text NOT NULL,
	user_agent_hmac text NOT NULL,
	reason          text NOT NULL,
	recorded_by     text COLLATE "C" NOT NULL  -- the principal (API key ID) that recorded it
);

-- One subject's history, oldest first.
CREATE INDEX consent_events_subject ON consent_events (tenant, subject_id, revision);

-- The newest revision (0 for an empty ledger).
CREATE TABLE consent_head (
	id       smallint PRIMARY KEY CHECK (id = 1),
	revision bigint NOT NULL CHECK (revision >= 0)
);
INSERT INTO consent_head (id, revision) VALUES (1, 0);
