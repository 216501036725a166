-- Every export of a locked protocol is rendered once and kept (issue 24):
-- the PDF of a large protocol costs the typesetter seconds and hundreds of
-- megabytes, so it must not be made again for every download. The locked
-- stage's HTML, Markdown and PDF are made inside the lock's transaction
-- (a protocol that cannot be typeset is not locked); the verified stage's
-- on the first download. Like the protocol itself, a rendition is never
-- changed or removed. The canonical JSON is `protocols.canonical` and is
-- not stored again.
CREATE TABLE protocol_renditions (
    protocol_id  BLOB NOT NULL REFERENCES protocols (id),
    stage        TEXT NOT NULL CHECK (stage IN ('locked', 'verified')),
    format       TEXT NOT NULL CHECK (format IN ('html', 'md', 'pdf')),
    sha256       TEXT NOT NULL,
    bytes        BLOB NOT NULL,
    created_at   TEXT NOT NULL,
    PRIMARY KEY (protocol_id, stage, format)
);

CREATE TRIGGER protocol_renditions_no_update BEFORE UPDATE ON protocol_renditions
BEGIN SELECT RAISE(ABORT, 'renditions are immutable'); END;
CREATE TRIGGER protocol_renditions_no_delete BEFORE DELETE ON protocol_renditions
BEGIN SELECT RAISE(ABORT, 'renditions are immutable'); END;
