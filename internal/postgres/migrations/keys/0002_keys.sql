-- Wrapped keys and the forget list. A wrapped key is a data key encrypted
-- under a key-encryption key, which kek_id names so that keys can be
-- rewrapped when it rotates. ID columns use the "C" collation, as in the
-- data store.

-- Each tenant's key-encryption key, wrapped under a root key (kek_id).
CREATE TABLE tenant_keys (
	tenant     text COLLATE "C" PRIMARY KEY,
	wrapped    bytea NOT NULL,
	kek_id     text NOT NULL,
	created_at timestamptz NOT NULL
);

-- Each subject's data key, wrapped under its tenant's key. Deleting the row
-- erases the subject: its sealed data can never be decrypted again.
CREATE TABLE subject_keys (
	tenant     text COLLATE "C" NOT NULL,
	subject_id text COLLATE "C" NOT NULL,
	wrapped    bytea NOT NULL,
	kek_id     text NOT NULL,
	created_at timestamptz NOT NULL,
	PRIMARY KEY (tenant, subject_id)
);

-- Erased subjects, and erased tenants with subject_id ''. Only IDs and the
-- time: the list proves erasure and lets restored data backups be purged
-- again, so it must hold nothing personal.
CREATE TABLE forget_list (
	tenant     text COLLATE "C" NOT NULL,
	subject_id text COLLATE "C" NOT NULL DEFAULT '',
	erased_at  timestamptz NOT NULL,
	PRIMARY KEY (tenant, subject_id)
);

-- The forget list is read in erasure order.
CREATE INDEX forget_list_erased_at ON forget_list (erased_at, tenant, subject_id);

-- Deployment secrets, such as the wrapped blind-index root key.
CREATE TABLE secrets (
	name       text COLLATE "C" PRIMARY KEY,
	wrapped    bytea NOT NULL,
	kek_id     text NOT NULL,
	created_at timestamptz NOT NULL
);
