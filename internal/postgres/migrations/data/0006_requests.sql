-- Data-subject requests (lethe.RequestStore) and their tasks, one per
-- system. Nothing personal in clear: the person's contact address and
-- values to rectify are sealed by the service (contact, details), and found
-- by a keyed hash (contact_index).
CREATE TABLE requests (
	id              text COLLATE "C" PRIMARY KEY,
	tenant          text COLLATE "C" NOT NULL,
	type            text COLLATE "C" NOT NULL,
	state           text COLLATE "C" NOT NULL,
	subject_id      text COLLATE "C" NOT NULL, -- '' until known
	channel         text COLLATE "C" NOT NULL,
	created_by      text NOT NULL,
	contact_index   bytea,
	contact         bytea,
	details         bytea,
	received_at     timestamptz NOT NULL,
	due_at          timestamptz NOT NULL,
	extended_reason text NOT NULL,
	verified_at     timestamptz,
	approved_by     text NOT NULL,
	closed_at       timestamptz,
	reason          text NOT NULL,
	receipt         bytea,           -- the signed erasure receipt
	updated_at      timestamptz NOT NULL,
	version         integer NOT NULL,
	open            boolean NOT NULL -- until completed, rejected or cancelled
);

-- Overdue and due-soon lists, and paging, per tenant.
CREATE INDEX requests_due ON requests (tenant, due_at, id);
CREATE INDEX requests_subject ON requests (tenant, subject_id) WHERE subject_id <> '';

-- One open request per tenant, type and subject (or, without a subject,
-- contact): a duplicate is merged into it.
CREATE UNIQUE INDEX requests_open_subject ON requests (tenant, type, subject_id) WHERE open AND subject_id <> '';
CREATE UNIQUE INDEX requests_open_contact ON requests (tenant, type, contact_index) WHERE open AND subject_id = '' AND contact_index IS NOT NULL;

CREATE TABLE request_tasks (
	request_id text COLLATE "C" NOT NULL REFERENCES requests (id),
	system     text COLLATE "C" NOT NULL,
	step       integer NOT NULL,
	state      text COLLATE "C" NOT NULL,
	attempts   integer NOT NULL,
	report     bytea,
	error      text NOT NULL,
	updated_at timestamptz NOT NULL,
	PRIMARY KEY (request_id, system)
);

-- The one-time code that verifies a request: its keyed hash, expiry, the
-- guesses counted and how many codes the request had.
CREATE TABLE request_codes (
	request_id text COLLATE "C" PRIMARY KEY REFERENCES requests (id),
	hash       bytea NOT NULL,
	expires_at timestamptz NOT NULL,
	attempts   integer NOT NULL,
	issued     integer NOT NULL
);
