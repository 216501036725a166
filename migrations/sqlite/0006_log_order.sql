-- Log positions within one meeting (issue 13). SQLite has one writer at a
-- time, so its global seq already commits in order; mseq is the same
-- number under the name the Postgres schema uses, so that queries shared
-- by both backends read the log the same way.
ALTER TABLE doc_updates ADD COLUMN mseq INTEGER GENERATED ALWAYS AS (seq) VIRTUAL;
