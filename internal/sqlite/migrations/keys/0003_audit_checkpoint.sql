-- The newest signed checkpoint of each audit log (see lethe.CheckpointStore).
-- It is kept here, apart from the log, so that rolling the log's files back
-- to an older signed state is detected. size only ever grows: the store
-- replaces a row only with a checkpoint of at least its size. note is the
-- signed checkpoint text, which names no subject. saved_at is unix
-- microseconds, UTC.
CREATE TABLE audit_checkpoints (
	origin   TEXT PRIMARY KEY,
	size     INTEGER NOT NULL CHECK (size >= 0),
	note     BLOB NOT NULL,
	saved_at INTEGER NOT NULL
) STRICT, WITHOUT ROWID;
