-- Finalising a protocol: the meeting's state, the locked protocol with its
-- hash, sign-offs (justering), the server's signature, the hashes of every
-- export handed out, and an audit log. What is recorded here is never
-- rewritten: triggers refuse UPDATE, DELETE and TRUNCATE on all of it, and
-- the update log refuses appends for a meeting that is not a draft.

ALTER TABLE meetings ADD COLUMN state TEXT NOT NULL DEFAULT 'draft'
    CHECK (state IN ('draft', 'locked', 'verified'));

-- One row per lock. A rejection sends the meeting back to draft; the next
-- lock makes a new row with the next version. `canonical` is the canonical
-- JSON of the protocol; `hash` its SHA-256 in hex.
CREATE TABLE protocols (
    id          UUID PRIMARY KEY,
    meeting_id  UUID NOT NULL REFERENCES meetings (id),
    version     INTEGER NOT NULL,
    hash        TEXT NOT NULL UNIQUE,
    canonical   TEXT NOT NULL,
    locked_at   TIMESTAMPTZ NOT NULL,
    locked_by   UUID REFERENCES users (id),
    UNIQUE (meeting_id, version)
);

CREATE TABLE signoffs (
    protocol_id  UUID NOT NULL REFERENCES protocols (id),
    user_id      UUID NOT NULL REFERENCES users (id),
    name         TEXT NOT NULL,
    role         TEXT NOT NULL CHECK (role IN ('chair', 'justerare')),
    hash         TEXT NOT NULL,
    signed_at    TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (protocol_id, user_id)
);

-- Ed25519 keys. `secret_key` is NULL when the key is kept in a file
-- (`--signing-key-file`); the public half is always here so that every
-- signature ever made can be checked.
CREATE TABLE signing_keys (
    key_id      TEXT PRIMARY KEY,
    public_key  BYTEA NOT NULL,
    secret_key  BYTEA,
    created_at  TIMESTAMPTZ NOT NULL
);

CREATE TABLE protocol_signatures (
    protocol_id  UUID PRIMARY KEY REFERENCES protocols (id),
    key_id       TEXT NOT NULL REFERENCES signing_keys (key_id),
    record       TEXT NOT NULL,
    signature    BYTEA NOT NULL,
    verified_at  TIMESTAMPTZ NOT NULL
);

-- SHA-256 of every export file handed out, so that a file can be verified.
CREATE TABLE protocol_exports (
    sha256       TEXT PRIMARY KEY,
    protocol_id  UUID NOT NULL REFERENCES protocols (id),
    stage        TEXT NOT NULL CHECK (stage IN ('locked', 'verified')),
    format       TEXT NOT NULL CHECK (format IN ('json', 'html', 'md', 'pdf')),
    created_at   TIMESTAMPTZ NOT NULL
);

CREATE TABLE audit (
    id          BIGSERIAL PRIMARY KEY,
    meeting_id  UUID NOT NULL REFERENCES meetings (id),
    at          TIMESTAMPTZ NOT NULL,
    actor_id    UUID REFERENCES users (id),
    actor_name  TEXT NOT NULL,
    action      TEXT NOT NULL CHECK (action IN ('lock', 'reopen', 'signoff', 'reject', 'verify')),
    reason      TEXT,
    hash        TEXT,
    via         TEXT NOT NULL CHECK (via IN ('api', 'cli'))
);
CREATE INDEX audit_by_meeting ON audit (meeting_id, id);

CREATE FUNCTION protokoll_immutable() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '% is append-only: % refused', TG_TABLE_NAME, TG_OP
        USING ERRCODE = 'P0423';
END
$$;

CREATE TRIGGER protocols_immutable BEFORE UPDATE OR DELETE ON protocols
    FOR EACH ROW EXECUTE FUNCTION protokoll_immutable();
CREATE TRIGGER protocols_no_truncate BEFORE TRUNCATE ON protocols
    FOR EACH STATEMENT EXECUTE FUNCTION protokoll_immutable();
CREATE TRIGGER signoffs_immutable BEFORE UPDATE OR DELETE ON signoffs
    FOR EACH ROW EXECUTE FUNCTION protokoll_immutable();
CREATE TRIGGER signoffs_no_truncate BEFORE TRUNCATE ON signoffs
    FOR EACH STATEMENT EXECUTE FUNCTION protokoll_immutable();
CREATE TRIGGER protocol_signatures_immutable BEFORE UPDATE OR DELETE ON protocol_signatures
    FOR EACH ROW EXECUTE FUNCTION protokoll_immutable();
CREATE TRIGGER protocol_signatures_no_truncate BEFORE TRUNCATE ON protocol_signatures
    FOR EACH STATEMENT EXECUTE FUNCTION protokoll_immutable();
CREATE TRIGGER protocol_exports_immutable BEFORE UPDATE OR DELETE ON protocol_exports
    FOR EACH ROW EXECUTE FUNCTION protokoll_immutable();
CREATE TRIGGER protocol_exports_no_truncate BEFORE TRUNCATE ON protocol_exports
    FOR EACH STATEMENT EXECUTE FUNCTION protokoll_immutable();
CREATE TRIGGER audit_immutable BEFORE UPDATE OR DELETE ON audit
    FOR EACH ROW EXECUTE FUNCTION protokoll_immutable();
CREATE TRIGGER audit_no_truncate BEFORE TRUNCATE ON audit
    FOR EACH STATEMENT EXECUTE FUNCTION protokoll_immutable();
CREATE TRIGGER signing_keys_immutable BEFORE UPDATE OF key_id, public_key ON signing_keys
    FOR EACH ROW EXECUTE FUNCTION protokoll_immutable();

-- The lock is decided here: the update log takes no rows for a meeting
-- whose protocol is locked or verified. One check per statement (a group
-- commit inserts many meetings' rows at once). The meeting rows are taken
-- FOR SHARE, in id order, so that this serialises with a lock, which takes
-- its meeting FOR UPDATE: an append either commits before the lock reads
-- the document or waits for it and then sees the new state.
CREATE FUNCTION protokoll_appends_only_while_draft() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    locked UUID;
BEGIN
    PERFORM 1 FROM meetings
        WHERE id IN (SELECT DISTINCT meeting_id FROM new_rows)
        ORDER BY id FOR SHARE;
    SELECT m.id INTO locked FROM meetings m
        WHERE m.id IN (SELECT DISTINCT meeting_id FROM new_rows) AND m.state <> 'draft'
        LIMIT 1;
    IF locked IS NOT NULL THEN
        RAISE EXCEPTION 'the protocol is locked (meeting %)', locked USING ERRCODE = 'P0423';
    END IF;
    RETURN NULL;
END
$$;
CREATE TRIGGER doc_updates_only_while_draft AFTER INSERT ON doc_updates
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION protokoll_appends_only_while_draft();

-- draft -> locked -> verified; locked -> draft (rejection, reopening).
-- What the protocol shows is frozen while it is not a draft.
CREATE FUNCTION protokoll_meeting_changes() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF OLD.state <> NEW.state AND NOT (
        (OLD.state = 'draft' AND NEW.state = 'locked')
        OR (OLD.state = 'locked' AND NEW.state IN ('draft', 'verified'))) THEN
        RAISE EXCEPTION 'the protocol cannot go from % to %', OLD.state, NEW.state
            USING ERRCODE = 'P0423';
    END IF;
    IF OLD.state <> 'draft' AND (OLD.title, OLD.body, OLD.meeting_date, OLD.start_time, OLD.place)
        IS DISTINCT FROM (NEW.title, NEW.body, NEW.meeting_date, NEW.start_time, NEW.place) THEN
        RAISE EXCEPTION 'the protocol is locked' USING ERRCODE = 'P0423';
    END IF;
    RETURN NEW;
END
$$;
CREATE TRIGGER meetings_changes BEFORE UPDATE ON meetings
    FOR EACH ROW EXECUTE FUNCTION protokoll_meeting_changes();

CREATE FUNCTION protokoll_sections_frozen() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    meeting UUID := CASE WHEN TG_OP = 'INSERT' THEN NEW.meeting_id ELSE OLD.meeting_id END;
BEGIN
    IF (SELECT state FROM meetings WHERE id = meeting) <> 'draft' THEN
        RAISE EXCEPTION 'the protocol is locked' USING ERRCODE = 'P0423';
    END IF;
    IF TG_OP = 'DELETE' THEN
        RETURN OLD;
    END IF;
    RETURN NEW;
END
$$;
CREATE TRIGGER sections_frozen BEFORE INSERT OR UPDATE OR DELETE ON sections
    FOR EACH ROW EXECUTE FUNCTION protokoll_sections_frozen();
