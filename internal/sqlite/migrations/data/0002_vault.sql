-- The vault: subjects, their identifiers, profile versions and tokens.
-- Everything personal is sealed (encrypted) under the subject's data key,
-- which lives in the key store; this file holds only IDs, blind indexes,
-- ciphertexts and times (unix microseconds, UTC). Every key starts with the
-- tenant, so that every lookup is scoped to one tenant.
--
-- Tables with small rows are WITHOUT ROWID: the primary key is then the
-- table itself, so a lookup by key is one B-tree search instead of two.
-- Profile versions hold whole sealed profiles, which can be large, so they
-- keep the ordinary layout.

CREATE TABLE subjects (
	tenant     TEXT NOT NULL,
	id         TEXT NOT NULL,
	created_at INTEGER NOT NULL,
	PRIMARY KEY (tenant, id)
) STRICT, WITHOUT ROWID;

-- An identifier (email, phone, …) as a blind index, to find its subject
-- without decrypting, and the sealed value. A subject has at most one
-- identifier of each kind, and within a tenant one identifier value (one
-- index) belongs to at most one subject.
CREATE TABLE identifiers (
	tenant     TEXT NOT NULL,
	subject_id TEXT NOT NULL,
	kind       TEXT NOT NULL,
	idx        BLOB NOT NULL,
	sealed     BLOB NOT NULL,
	PRIMARY KEY (tenant, subject_id, kind),
	UNIQUE (tenant, kind, idx),
	FOREIGN KEY (tenant, subject_id) REFERENCES subjects (tenant, id) ON DELETE CASCADE
) STRICT, WITHOUT ROWID;

-- Profile versions count up from 1; the highest is the current profile.
CREATE TABLE profile_versions (
	tenant     TEXT NOT NULL,
	subject_id TEXT NOT NULL,
	version    INTEGER NOT NULL CHECK (version >= 1),
	sealed     BLOB NOT NULL,
	principal  TEXT NOT NULL,
	created_at INTEGER NOT NULL,
	PRIMARY KEY (tenant, subject_id, version),
	FOREIGN KEY (tenant, subject_id) REFERENCES subjects (tenant, id) ON DELETE CASCADE
) STRICT;

-- Tokens apps store in place of a value, each mapping to a subject and the
-- value sealed under the subject's key.
CREATE TABLE tokens (
	token      TEXT PRIMARY KEY,
	tenant     TEXT NOT NULL,
	subject_id TEXT NOT NULL,
	field      TEXT NOT NULL,
	sealed     BLOB NOT NULL,
	created_at INTEGER NOT NULL,
	FOREIGN KEY (tenant, subject_id) REFERENCES subjects (tenant, id) ON DELETE CASCADE
) STRICT, WITHOUT ROWID;

-- Deleting a subject cascades to its tokens through this index.
CREATE INDEX tokens_subject ON tokens (tenant, subject_id);
