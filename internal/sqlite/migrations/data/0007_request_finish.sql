-- Who is finishing a request (lethe.RequestStore.ClaimFinish): one finish
-- job at a time, across instances, with a lease in case it dies.
ALTER TABLE requests ADD COLUMN finisher TEXT NOT NULL DEFAULT '';
ALTER TABLE requests ADD COLUMN finish_until INTEGER NOT NULL DEFAULT 0; -- unix microseconds
