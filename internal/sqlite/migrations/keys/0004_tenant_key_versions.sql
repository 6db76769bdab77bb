-- Tenant keys get versions, so that a tenant's key-encryption key can be
-- rotated: a rotation adds version N+1, rewraps every subject key of the
-- tenant under it, then deletes the older versions. The highest version is
-- the current one, the only one new subject keys are wrapped under. A
-- subject key's kek_id names the version: 'tenant:<tenant>:v<N>', or
-- 'tenant:<tenant>' for version 1 (the form from before versions, which
-- existing subject keys keep). Every existing key becomes version 1.
--
-- SQLite cannot change a primary key, so the table is made again under a
-- new name, filled, and renamed, all in this migration's transaction. The
-- default version lets an instance of the previous release that is still
-- running store a tenant's first key.
CREATE TABLE tenant_keys_versioned (
	tenant     TEXT NOT NULL,
	version    INTEGER NOT NULL DEFAULT 1 CHECK (version >= 1),
	wrapped    BLOB NOT NULL,
	kek_id     TEXT NOT NULL,
	created_at INTEGER NOT NULL,
	PRIMARY KEY (tenant, version)
) STRICT, WITHOUT ROWID;

INSERT INTO tenant_keys_versioned (tenant, version, wrapped, kek_id, created_at)
	SELECT tenant, 1, wrapped, kek_id, created_at FROM tenant_keys;

DROP TABLE tenant_keys;

ALTER TABLE tenant_keys_versioned RENAME TO tenant_keys;
