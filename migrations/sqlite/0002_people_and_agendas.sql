-- Agencies, people, sign-in, and what each person may do in each meeting.
-- Ids are UUIDs (16-byte BLOBs); times are RFC 3339 text; secrets are stored
-- only as SHA-256 hashes (tokens) or Argon2id hashes (passwords).

CREATE TABLE agencies (
    id          BLOB PRIMARY KEY NOT NULL,
    name        TEXT NOT NULL UNIQUE,
    created_at  TEXT NOT NULL
);

CREATE TABLE users (
    id             BLOB PRIMARY KEY NOT NULL,
    username       TEXT NOT NULL UNIQUE,
    display_name   TEXT NOT NULL,
    agency_id      BLOB REFERENCES agencies (id),
    is_admin       INTEGER NOT NULL DEFAULT 0,
    password_hash  TEXT,
    created_at     TEXT NOT NULL
);

CREATE TABLE sessions (
    token_hash  BLOB PRIMARY KEY NOT NULL,
    user_id     BLOB NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at  TEXT NOT NULL,
    expires_at  TEXT NOT NULL
);
CREATE INDEX sessions_by_user ON sessions (user_id);

CREATE TABLE api_tokens (
    id          BLOB PRIMARY KEY NOT NULL,
    user_id     BLOB NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    name        TEXT NOT NULL,
    token_hash  BLOB NOT NULL UNIQUE,
    created_at  TEXT NOT NULL,
    revoked_at  TEXT
);
CREATE INDEX api_tokens_by_user ON api_tokens (user_id);

ALTER TABLE meetings ADD COLUMN body TEXT NOT NULL DEFAULT '';
ALTER TABLE meetings ADD COLUMN meeting_date TEXT;
ALTER TABLE meetings ADD COLUMN start_time TEXT;
ALTER TABLE meetings ADD COLUMN place TEXT NOT NULL DEFAULT '';

CREATE TABLE participants (
    meeting_id  BLOB NOT NULL REFERENCES meetings (id) ON DELETE CASCADE,
    user_id     BLOB NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    role        TEXT NOT NULL CHECK (role IN ('secretary', 'chair', 'justerare', 'member')),
    PRIMARY KEY (meeting_id, user_id)
);
CREATE INDEX participants_by_user ON participants (user_id);

-- The agenda: one row per section, ordered by position. A section is owned
-- by an agency, by a named user, or by the meeting's secretary.
CREATE TABLE sections (
    meeting_id       BLOB NOT NULL REFERENCES meetings (id) ON DELETE CASCADE,
    id               TEXT NOT NULL,
    position         INTEGER NOT NULL,
    number           TEXT NOT NULL,
    title            TEXT NOT NULL,
    owner_kind       TEXT NOT NULL CHECK (owner_kind IN ('agency', 'user', 'secretary')),
    owner_agency_id  BLOB REFERENCES agencies (id),
    owner_user_id    BLOB REFERENCES users (id),
    PRIMARY KEY (meeting_id, id)
);

CREATE TABLE invitations (
    token_hash    BLOB PRIMARY KEY NOT NULL,
    meeting_id    BLOB NOT NULL REFERENCES meetings (id) ON DELETE CASCADE,
    username      TEXT NOT NULL,
    display_name  TEXT NOT NULL,
    agency_id     BLOB REFERENCES agencies (id),
    role          TEXT NOT NULL CHECK (role IN ('secretary', 'chair', 'justerare', 'member')),
    created_by    BLOB NOT NULL REFERENCES users (id),
    created_at    TEXT NOT NULL,
    expires_at    TEXT NOT NULL,
    used_at       TEXT
);
