-- The audit log shared by every instance on this data store. Events hold
-- pseudonymous IDs and field names, never personal data. Each epoch is one
-- log (one Merkle tree); a new epoch begins only when an operator starts a
-- new log after the current one was found damaged or rolled back
-- (lethe serve --audit-start-new-log), and the old epoch's rows stay as
-- evidence.
CREATE TABLE audit_logs (
	epoch     integer PRIMARY KEY CHECK (epoch > 0),
	size      bigint  NOT NULL DEFAULT 0 CHECK (size >= 0),      -- entries appended
	tree_size bigint  NOT NULL DEFAULT 0 CHECK (tree_size >= 0), -- entries the hashes and the newest checkpoint cover
	pruned    bigint  NOT NULL DEFAULT 0 CHECK (pruned >= 0),    -- first entry kept
	started   timestamptz NOT NULL DEFAULT now()
);
INSERT INTO audit_logs (epoch) VALUES (1);

-- The events, in the order the database committed them.
CREATE TABLE audit_entries (
	epoch integer NOT NULL,
	idx   bigint  NOT NULL,
	entry bytea   NOT NULL,
	PRIMARY KEY (epoch, idx)
);

-- The tree: stratum k holds the nodes of level 8k (k = 0: leaf hashes).
CREATE TABLE audit_hashes (
	epoch   integer  NOT NULL,
	stratum smallint NOT NULL,
	idx     bigint   NOT NULL,
	hash    bytea    NOT NULL,
	PRIMARY KEY (epoch, stratum, idx)
);

-- Every signed checkpoint (C2SP signed note).
CREATE TABLE audit_checkpoints (
	epoch     integer     NOT NULL,
	size      bigint      NOT NULL,
	note      bytea       NOT NULL,
	signed_at timestamptz NOT NULL DEFAULT now(),
	PRIMARY KEY (epoch, size)
);
