-- The vault: subjects, their identifiers, profile versions and tokens.
-- Everything personal is sealed (encrypted) under the subject's data key,
-- which lives in the key store; this database holds only IDs, blind
-- indexes, ciphertexts and times. Every key starts with the tenant, so that
-- every lookup is scoped to one tenant.
--
-- ID columns use the "C" collation: they are opaque identifiers, so byte
-- order is the right order, it is the order SQLite uses (both engines list
-- identifiers and the forget list alike), and it compares faster than a
-- linguistic collation.

CREATE TABLE subjects (
	tenant     text COLLATE "C" NOT NULL,
	id         text COLLATE "C" NOT NULL,
	created_at timestamptz NOT NULL,
	PRIMARY KEY (tenant, id)
);

-- An identifier (email, phone, …) as a blind index, to find its subject
-- without decrypting, and the sealed value. A subject has at most one
-- identifier of each kind, and within a tenant one identifier value (one
-- index) belongs to at most one subject.
CREATE TABLE identifiers (
	tenant     text COLLATE "C" NOT NULL,
	subject_id text COLLATE "C" NOT NULL,
	kind       text COLLATE "C" NOT NULL,
	idx        bytea NOT NULL,
	sealed     bytea NOT NULL,
	PRIMARY KEY (tenant, subject_id, kind),
	CONSTRAINT identifiers_index_key UNIQUE (tenant, kind, idx),
	FOREIGN KEY (tenant, subject_id) REFERENCES subjects (tenant, id) ON DELETE CASCADE
);

-- Profile versions count up from 1; the highest is the current profile.
CREATE TABLE profile_versions (
	tenant     text COLLATE "C" NOT NULL,
	subject_id text COLLATE "C" NOT NULL,
	version    integer NOT NULL CHECK (version >= 1),
	sealed     bytea NOT NULL,
	principal  text NOT NULL,
	created_at timestamptz NOT NULL,
	PRIMARY KEY (tenant, subject_id, version),
	FOREIGN KEY (tenant, subject_id) REFERENCES subjects (tenant, id) ON DELETE CASCADE
);

-- Tokens apps store in place of a value, each mapping to a subject and the
-- value sealed under the subject's key.
CREATE TABLE tokens (
	token      text COLLATE "C" PRIMARY KEY,
	tenant     text COLLATE "C" NOT NULL,
	subject_id text COLLATE "C" NOT NULL,
	field      text NOT NULL,
	sealed     bytea NOT NULL,
	created_at timestamptz NOT NULL,
	FOREIGN KEY (tenant, subject_id) REFERENCES subjects (tenant, id) ON DELETE CASCADE
);

-- Deleting a subject cascades to its tokens through this index.
CREATE INDEX tokens_subject ON tokens (tenant, subject_id);
