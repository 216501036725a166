-- Keys that authenticate what nodes tell each other through Redis (issue
-- 24): every message between nodes carries an HMAC-SHA256 under one of
-- these. Postgres holds them because every node already trusts it and
-- nothing else: whoever can reach Redis but not Postgres can forge nothing.
--
-- Nodes sign with the newest key that is not retired and accept every key
-- that is not retired. The first node to start with --redis-url creates
-- one; `protokoll cluster rotate-key` adds one and retires the older ones.
-- Only Postgres has this table: several nodes need Postgres.

CREATE TABLE cluster_keys (
    id          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    secret      BYTEA NOT NULL CHECK (octet_length(secret) = 32),
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    retired_at  TIMESTAMPTZ
);
