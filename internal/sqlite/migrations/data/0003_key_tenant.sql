-- An API key may be bound to one tenant ('' for any tenant).
ALTER TABLE api_keys ADD COLUMN tenant TEXT NOT NULL DEFAULT '';
