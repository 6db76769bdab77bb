-- Data-subject requests (lethe.RequestStore) and their tasks, one per
-- system. Nothing personal in clear: the person's contact address and
-- values to rectify are sealed by the service (contact, details), and found
-- by a keyed hash (contact_index). Times are unix microseconds, UTC.
CREATE TABLE requests (
	id              TEXT PRIMARY KEY,
	tenant          TEXT NOT NULL,
	type            TEXT NOT NULL,
	state           TEXT NOT NULL,
	subject_id      TEXT NOT NULL,       -- '' until known
	channel         TEXT NOT NULL,
	created_by      TEXT NOT NULL,
	contact_index   BLOB,
	contact         BLOB,
	details         BLOB,
	received_at     INTEGER NOT NULL,
	due_at          INTEGER NOT NULL,
	extended_reason TEXT NOT NULL,
	verified_at     INTEGER,
	approved_by     TEXT NOT NULL,
	closed_at       INTEGER,
	reason          TEXT NOT NULL,
	receipt         BLOB,         -- the signed erasure receipt
	updated_at      INTEGER NOT NULL,
	version         INTEGER NOT NULL,
	open            INTEGER NOT NULL     -- 1 until completed, rejected or cancelled
) STRICT;

-- Overdue and due-soon lists, and paging, per tenant.
CREATE INDEX requests_due ON requests (tenant, due_at, id);
CREATE INDEX requests_subject ON requests (tenant, subject_id) WHERE subject_id <> '';

-- One open request per tenant, type and subject (or, without a subject,
-- contact): a duplicate is merged into it.
CREATE UNIQUE INDEX requests_open_subject ON requests (tenant, type, subject_id) WHERE open = 1 AND subject_id <> '';
CREATE UNIQUE INDEX requests_open_contact ON requests (tenant, type, contact_index) WHERE open = 1 AND subject_id = '' AND contact_index IS NOT NULL;

CREATE TABLE request_tasks (
	request_id TEXT NOT NULL REFERENCES requests (id),
	system     TEXT NOT NULL,
	step       INTEGER NOT NULL,
	state      TEXT NOT NULL,
	attempts   INTEGER NOT NULL,
	report     BLOB,
	error      TEXT NOT NULL,
	updated_at INTEGER NOT NULL,
	PRIMARY KEY (request_id, system)
) STRICT;

-- The one-time code that verifies a request: its keyed hash, expiry, the
-- guesses counted and how many codes the request had.
CREATE TABLE request_codes (
	request_id TEXT PRIMARY KEY REFERENCES requests (id),
	hash       BLOB NOT NULL,
	expires_at INTEGER NOT NULL,
	attempts   INTEGER NOT NULL,
	issued     INTEGER NOT NULL
) STRICT;
