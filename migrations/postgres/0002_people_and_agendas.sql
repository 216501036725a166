-- Agencies, people, sign-in, and what each person may do in each meeting.
-- Secrets are stored
-- only as SHA-256 hashes (tokens) or Argon2id hashes (passwords).

CREATE TABLE agencies (
    id          UUID PRIMARY KEY,
    name        TEXT NOT NULL UNIQUE,
    created_at  TIMESTAMPTZ NOT NULL
);

CREATE TABLE users (
    id             UUID PRIMARY KEY,
    username       TEXT NOT NULL UNIQUE,
    display_name   TEXT NOT NULL,
    agency_id      UUID REFERENCES agencies (id),
    is_admin       BOOLEAN NOT NULL DEFAULT FALSE,
    password_hash  TEXT,
    created_at     TIMESTAMPTZ NOT NULL
);

CREATE TABLE sessions (
    token_hash  BYTEA PRIMARY KEY,
    user_id     UUID NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at  TIMESTAMPTZ NOT NULL,
    expires_at  TIMESTAMPTZ NOT NULL
);
CREATE INDEX sessions_by_user ON sessions (user_id);

CREATE TABLE api_tokens (
    id          UUID PRIMARY KEY,
    user_id     UUID NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    name        TEXT NOT NULL,
    token_hash  BYTEA NOT NULL UNIQUE,
    created_at  TIMESTAMPTZ NOT NULL,
    revoked_at  TIMESTAMPTZ
);
CREATE INDEX api_tokens_by_user ON api_tokens (user_id);

ALTER TABLE meetings ADD COLUMN body TEXT NOT NULL DEFAULT '';
ALTER TABLE meetings ADD COLUMN meeting_date TEXT;
ALTER TABLE meetings ADD COLUMN start_time TEXT;
ALTER TABLE meetings ADD COLUMN place TEXT NOT NULL DEFAULT '';

CREATE TABLE participants (
    meeting_id  UUID NOT NULL REFERENCES meetings (id) ON DELETE CASCADE,
    user_id     UUID NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    role        TEXT NOT NULL CHECK (role IN ('secretary', 'chair', 'justerare', 'member')),
    PRIMARY KEY (meeting_id, user_id)
);
CREATE INDEX participants_by_user ON participants (user_id);

-- The agenda: one row per section, ordered by position. A section is owned
-- by an agency, by a named user, or by the meeting's secretary.
CREATE TABLE sections (
    meeting_id       UUID NOT NULL REFERENCES meetings (id) ON DELETE CASCADE,
    id               TEXT NOT NULL,
    position         INTEGER NOT NULL,
    number           TEXT NOT NULL,
    title            TEXT NOT NULL,
    owner_kind       TEXT NOT NULL CHECK (owner_kind IN ('agency', 'user', 'secretary')),
    owner_agency_id  UUID REFERENCES agencies (id),
    owner_user_id    UUID REFERENCES users (id),
    PRIMARY KEY (meeting_id, id)
);

CREATE TABLE invitations (
    token_hash    BYTEA PRIMARY KEY,
    meeting_id    UUID NOT NULL REFERENCES meetings (id) ON DELETE CASCADE,
    username      TEXT NOT NULL,
    display_name  TEXT NOT NULL,
    agency_id     UUID REFERENCES agencies (id),
    role          TEXT NOT NULL CHECK (role IN ('secretary', 'chair', 'justerare', 'member')),
    created_by    UUID NOT NULL REFERENCES users (id),
    created_at    TIMESTAMPTZ NOT NULL,
    expires_at    TIMESTAMPTZ NOT NULL,
    used_at       TIMESTAMPTZ
);
