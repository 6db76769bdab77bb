-- Tenant keys get versions, so that a tenant's key-encryption key can be
-- rotated: a rotation adds version N+1, rewraps every subject key of the
-- tenant under it, then deletes the older versions. The highest version is
-- the current one, the only one new subject keys are wrapped under. A
-- subject key's kek_id names the version: 'tenant:<tenant>:v<N>', or
-- 'tenant:<tenant>' for version 1 (the form from before versions, which
-- existing subject keys keep). Every existing key becomes version 1. The
-- default version lets an instance of the previous release that is still
-- running store a tenant's first key.
ALTER TABLE tenant_keys ADD COLUMN version integer NOT NULL DEFAULT 1 CHECK (version >= 1);
ALTER TABLE tenant_keys DROP CONSTRAINT tenant_keys_pkey;
ALTER TABLE tenant_keys ADD PRIMARY KEY (tenant, version);
