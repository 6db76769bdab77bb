-- The newest signed checkpoint of each audit log (see lethe.CheckpointStore).
-- It is kept here, apart from the log, so that rolling the log back to an
-- older signed state is detected. size only ever grows: the store replaces
-- a row only with a checkpoint of at least its size. note is the signed
-- checkpoint text, which names no subject.
CREATE TABLE audit_checkpoints (
	origin   text COLLATE "C" PRIMARY KEY,
	size     bigint NOT NULL CHECK (size >= 0),
	note     bytea NOT NULL,
	saved_at timestamptz NOT NULL
);
