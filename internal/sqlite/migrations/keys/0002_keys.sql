-- Wrapped keys and the forget list. A wrapped key is a data key encrypted
-- under a key-encryption key, which kek_id names so that keys can be
-- rewrapped when it rotates. Times are unix microseconds, UTC.

-- Each tenant's key-encryption key, wrapped under a root key (kek_id).
CREATE TABLE tenant_keys (
	tenant     TEXT PRIMARY KEY,
	wrapped    BLOB NOT NULL,
	kek_id     TEXT NOT NULL,
	created_at INTEGER NOT NULL
) STRICT, WITHOUT ROWID;

-- Each subject's data key, wrapped under its tenant's key. Deleting the row
-- erases the subject: its sealed data can never be decrypted again.
CREATE TABLE subject_keys (
	tenant     TEXT NOT NULL,
	subject_id TEXT NOT NULL,
	wrapped    BLOB NOT NULL,
	kek_id     TEXT NOT NULL,
	created_at INTEGER NOT NULL,
	PRIMARY KEY (tenant, subject_id)
) STRICT, WITHOUT ROWID;

-- Erased subjects, and erased tenants with subject_id ''. Only IDs and the
-- time: the list proves erasure and lets restored data backups be purged
-- again, so it must hold nothing personal.
CREATE TABLE forget_list (
	tenant     TEXT NOT NULL,
	subject_id TEXT NOT NULL DEFAULT '',
	erased_at  INTEGER NOT NULL,
	PRIMARY KEY (tenant, subject_id)
) STRICT, WITHOUT ROWID;

-- The forget list is read in erasure order.
CREATE INDEX forget_list_erased_at ON forget_list (erased_at, tenant, subject_id);

-- Deployment secrets, such as the wrapped blind-index root key.
CREATE TABLE secrets (
	name       TEXT PRIMARY KEY,
	wrapped    BLOB NOT NULL,
	kek_id     TEXT NOT NULL,
	created_at INTEGER NOT NULL
) STRICT, WITHOUT ROWID;
