-- Meetings and the durable state of their Yjs documents.

CREATE TABLE meetings (
    id          UUID PRIMARY KEY,
    title       TEXT NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL
);

-- Append-only log of accepted Yjs v1 updates. seq is global and increasing;
-- a snapshot folds a prefix of one meeting's log into a single state.
CREATE TABLE doc_updates (
    seq         BIGSERIAL PRIMARY KEY,
    meeting_id  UUID NOT NULL REFERENCES meetings (id) ON DELETE CASCADE,
    data        BYTEA NOT NULL
);
CREATE INDEX doc_updates_by_meeting ON doc_updates (meeting_id, seq);

CREATE TABLE doc_snapshots (
    meeting_id  UUID PRIMARY KEY REFERENCES meetings (id) ON DELETE CASCADE,
    state       BYTEA NOT NULL,
    upto        BIGINT NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL
);
