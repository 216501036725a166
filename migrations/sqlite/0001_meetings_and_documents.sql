-- Meetings and the durable state of their Yjs documents.

CREATE TABLE meetings (
    id          BLOB PRIMARY KEY NOT NULL,  -- UUID, 16 bytes
    title       TEXT NOT NULL,
    created_at  TEXT NOT NULL
);

-- Append-only log of accepted Yjs v1 updates. seq is global and increasing;
-- a snapshot folds a prefix of one meeting's log into a single state.
CREATE TABLE doc_updates (
    seq         INTEGER PRIMARY KEY AUTOINCREMENT,
    meeting_id  BLOB NOT NULL REFERENCES meetings (id) ON DELETE CASCADE,
    data        BLOB NOT NULL
);
CREATE INDEX doc_updates_by_meeting ON doc_updates (meeting_id, seq);

CREATE TABLE doc_snapshots (
    meeting_id  BLOB PRIMARY KEY NOT NULL REFERENCES meetings (id) ON DELETE CASCADE,
    state       BLOB NOT NULL,
    upto        INTEGER NOT NULL,
    created_at  TEXT NOT NULL
);
