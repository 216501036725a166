-- Finalising a protocol: the meeting's state, the locked protocol with its
-- hash, sign-offs (justering), the server's signature, the hashes of every
-- export handed out, and an audit log. What is recorded here is never
-- rewritten: triggers refuse UPDATE and DELETE on all of it, and the update
-- log refuses appends for a meeting that is not a draft.

ALTER TABLE meetings ADD COLUMN state TEXT NOT NULL DEFAULT 'draft'
    CHECK (state IN ('draft', 'locked', 'verified'));

-- One row per lock. A rejection sends the meeting back to draft; the next
-- lock makes a new row with the next version. `canonical` is the canonical
-- JSON of the protocol; `hash` its SHA-256 in hex.
CREATE TABLE protocols (
    id          BLOB PRIMARY KEY NOT NULL,
    meeting_id  BLOB NOT NULL REFERENCES meetings (id),
    version     INTEGER NOT NULL,
    hash        TEXT NOT NULL UNIQUE,
    canonical   TEXT NOT NULL,
    locked_at   TEXT NOT NULL,
    locked_by   BLOB REFERENCES users (id),
    UNIQUE (meeting_id, version)
);

CREATE TABLE signoffs (
    protocol_id  BLOB NOT NULL REFERENCES protocols (id),
    user_id      BLOB NOT NULL REFERENCES users (id),
    name         TEXT NOT NULL,
    role         TEXT NOT NULL CHECK (role IN ('chair', 'justerare')),
    hash         TEXT NOT NULL,
    signed_at    TEXT NOT NULL,
    PRIMARY KEY (protocol_id, user_id)
);

-- Ed25519 keys. `secret_key` is NULL when the key is kept in a file
-- (`--signing-key-file`); the public half is always here so that every
-- signature ever made can be checked.
CREATE TABLE signing_keys (
    key_id      TEXT PRIMARY KEY NOT NULL,
    public_key  BLOB NOT NULL,
    secret_key  BLOB,
    created_at  TEXT NOT NULL
);

CREATE TABLE protocol_signatures (
    protocol_id  BLOB PRIMARY KEY NOT NULL REFERENCES protocols (id),
    key_id       TEXT NOT NULL REFERENCES signing_keys (key_id),
    record       TEXT NOT NULL,
    signature    BLOB NOT NULL,
    verified_at  TEXT NOT NULL
);

-- SHA-256 of every export file handed out, so that a file can be verified.
CREATE TABLE protocol_exports (
    sha256       TEXT PRIMARY KEY NOT NULL,
    protocol_id  BLOB NOT NULL REFERENCES protocols (id),
    stage        TEXT NOT NULL CHECK (stage IN ('locked', 'verified')),
    format       TEXT NOT NULL CHECK (format IN ('json', 'html', 'md', 'pdf')),
    created_at   TEXT NOT NULL
);

CREATE TABLE audit (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    meeting_id  BLOB NOT NULL REFERENCES meetings (id),
    at          TEXT NOT NULL,
    actor_id    BLOB REFERENCES users (id),
    actor_name  TEXT NOT NULL,
    action      TEXT NOT NULL CHECK (action IN ('lock', 'reopen', 'signoff', 'reject', 'verify')),
    reason      TEXT,
    hash        TEXT,
    via         TEXT NOT NULL CHECK (via IN ('api', 'cli'))
);
CREATE INDEX audit_by_meeting ON audit (meeting_id, id);

CREATE TRIGGER protocols_no_update BEFORE UPDATE ON protocols
BEGIN SELECT RAISE(ABORT, 'locked protocols are immutable'); END;
CREATE TRIGGER protocols_no_delete BEFORE DELETE ON protocols
BEGIN SELECT RAISE(ABORT, 'locked protocols are immutable'); END;
CREATE TRIGGER signoffs_no_update BEFORE UPDATE ON signoffs
BEGIN SELECT RAISE(ABORT, 'sign-offs are immutable'); END;
CREATE TRIGGER signoffs_no_delete BEFORE DELETE ON signoffs
BEGIN SELECT RAISE(ABORT, 'sign-offs are immutable'); END;
CREATE TRIGGER protocol_signatures_no_update BEFORE UPDATE ON protocol_signatures
BEGIN SELECT RAISE(ABORT, 'signatures are immutable'); END;
CREATE TRIGGER protocol_signatures_no_delete BEFORE DELETE ON protocol_signatures
BEGIN SELECT RAISE(ABORT, 'signatures are immutable'); END;
CREATE TRIGGER protocol_exports_no_update BEFORE UPDATE ON protocol_exports
BEGIN SELECT RAISE(ABORT, 'export records are immutable'); END;
CREATE TRIGGER protocol_exports_no_delete BEFORE DELETE ON protocol_exports
BEGIN SELECT RAISE(ABORT, 'export records are immutable'); END;
CREATE TRIGGER audit_no_update BEFORE UPDATE ON audit
BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
CREATE TRIGGER audit_no_delete BEFORE DELETE ON audit
BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
CREATE TRIGGER signing_keys_no_update BEFORE UPDATE OF key_id, public_key ON signing_keys
BEGIN SELECT RAISE(ABORT, 'a signing key cannot change'); END;

-- The lock is decided here: the update log takes no rows for a meeting
-- whose protocol is locked or verified.
CREATE TRIGGER doc_updates_only_while_draft BEFORE INSERT ON doc_updates
WHEN (SELECT state FROM meetings WHERE id = NEW.meeting_id) <> 'draft'
BEGIN SELECT RAISE(ABORT, 'the protocol is locked'); END;

-- draft -> locked -> verified; locked -> draft (rejection, reopening).
CREATE TRIGGER meetings_state_transitions BEFORE UPDATE OF state ON meetings
WHEN OLD.state <> NEW.state AND NOT (
    (OLD.state = 'draft' AND NEW.state = 'locked')
    OR (OLD.state = 'locked' AND NEW.state IN ('draft', 'verified')))
BEGIN SELECT RAISE(ABORT, 'this protocol state change is not allowed'); END;

-- What the protocol shows is frozen while it is not a draft.
CREATE TRIGGER meetings_frozen_details BEFORE UPDATE OF title, body, meeting_date, start_time, place ON meetings
WHEN OLD.state <> 'draft'
BEGIN SELECT RAISE(ABORT, 'the protocol is locked'); END;
CREATE TRIGGER sections_frozen_insert BEFORE INSERT ON sections
WHEN (SELECT state FROM meetings WHERE id = NEW.meeting_id) <> 'draft'
BEGIN SELECT RAISE(ABORT, 'the protocol is locked'); END;
CREATE TRIGGER sections_frozen_update BEFORE UPDATE ON sections
WHEN (SELECT state FROM meetings WHERE id = OLD.meeting_id) <> 'draft'
BEGIN SELECT RAISE(ABORT, 'the protocol is locked'); END;
CREATE TRIGGER sections_frozen_delete BEFORE DELETE ON sections
WHEN (SELECT state FROM meetings WHERE id = OLD.meeting_id) <> 'draft'
BEGIN SELECT RAISE(ABORT, 'the protocol is locked'); END;
