-- Who is finishing a request (lethe.RequestStore.ClaimFinish): one finish
-- job at a time, across instances, with a lease in case it dies.
ALTER TABLE requests ADD COLUMN finisher text NOT NULL DEFAULT '';
ALTER TABLE requests ADD COLUMN finish_until timestamptz NOT NULL DEFAULT 'epoch';
