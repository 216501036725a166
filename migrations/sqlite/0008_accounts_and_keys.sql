-- Who vouches for an account, what a sign-off records about its signer,
-- which signing key is in use, and the rule that a locked meeting's
-- participants and invitations are frozen (issue 24).

-- An account's identity is vouched for by an administrator, or not yet.
-- Accounts an administrator creates (API, command line, demo) are vouched
-- for at creation; an account made by accepting an invitation is not until
-- an administrator confirms it. `vouched_via`: `api` (by the administrator
-- `vouched_by`), `cli` (an operator at the command line), `demo`, or
-- `upgrade` (an account that existed before this migration and did not come
-- from an invitation). `invited_by`: the sender of the invitation the
-- account was made from.
ALTER TABLE users ADD COLUMN vouched_at TEXT;
ALTER TABLE users ADD COLUMN vouched_by BLOB REFERENCES users (id);
ALTER TABLE users ADD COLUMN vouched_via TEXT
    CHECK (vouched_via IN ('api', 'cli', 'demo', 'upgrade'));
ALTER TABLE users ADD COLUMN invited_by BLOB REFERENCES users (id);

-- Accepting an invitation creates the account under the invitation's
-- username in the transaction that marks the invitation used (a taken
-- username rolls both back), so a used invitation with an account's
-- username is the invitation it came from.
UPDATE users SET invited_by = (
    SELECT i.created_by FROM invitations i
    WHERE i.username = users.username AND i.used_at IS NOT NULL
    ORDER BY i.used_at LIMIT 1);
UPDATE users SET vouched_at = created_at, vouched_via = 'upgrade' WHERE invited_by IS NULL;

-- Account events: creation, acceptance of an invitation, confirmation by
-- an administrator. Append-only, like the meetings' audit log.
CREATE TABLE account_audit (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id     BLOB NOT NULL REFERENCES users (id),
    at          TEXT NOT NULL,
    actor_id    BLOB REFERENCES users (id),
    actor_name  TEXT NOT NULL,
    action      TEXT NOT NULL CHECK (action IN ('create', 'accept_invitation', 'confirm')),
    via         TEXT NOT NULL CHECK (via IN ('api', 'cli', 'demo'))
);
CREATE INDEX account_audit_by_user ON account_audit (user_id, id);
CREATE TRIGGER account_audit_no_update BEFORE UPDATE ON account_audit
BEGIN SELECT RAISE(ABORT, 'the account audit log is append-only'); END;
CREATE TRIGGER account_audit_no_delete BEFORE DELETE ON account_audit
BEGIN SELECT RAISE(ABORT, 'the account audit log is append-only'); END;

-- A sign-off names its account (username, agency), how it signed in (JSON
-- with `method`: `password`, `api_token`, `command_line`, ...) and who
-- vouched for the account (JSON). Sign-offs recorded before have NULLs.
ALTER TABLE signoffs ADD COLUMN username TEXT;
ALTER TABLE signoffs ADD COLUMN agency TEXT;
ALTER TABLE signoffs ADD COLUMN signed_in_with TEXT;
ALTER TABLE signoffs ADD COLUMN vouched_by TEXT;

-- The signing key in use (at most one: `in_use` is 1 or NULL, and unique),
-- so that a process that would sign with another key refuses; and retired
-- keys, which never sign again (their secret is erased) while their past
-- signatures still verify. A database with one key uses it; with several
-- (the command line could add one beside the server's file key), the next
-- process that signs records its key, and the others stay listed until an
-- operator retires them.
ALTER TABLE signing_keys ADD COLUMN in_use INTEGER CHECK (in_use = 1);
ALTER TABLE signing_keys ADD COLUMN retired_at TEXT;
CREATE UNIQUE INDEX signing_keys_one_in_use ON signing_keys (in_use);
UPDATE signing_keys SET in_use = 1 WHERE (SELECT COUNT(*) FROM signing_keys) = 1;

-- While a meeting's protocol is locked or verified, its participants and
-- roles cannot change and no invitation to it can be made or used (the
-- agenda, details and document are frozen by migration 0004). Revoking an
-- invitation stays possible: it can only take a way in away.
CREATE TRIGGER participants_frozen_insert BEFORE INSERT ON participants
WHEN (SELECT state FROM meetings WHERE id = NEW.meeting_id) <> 'draft'
BEGIN SELECT RAISE(ABORT, 'the protocol is locked'); END;
CREATE TRIGGER participants_frozen_update BEFORE UPDATE ON participants
WHEN (SELECT state FROM meetings WHERE id = OLD.meeting_id) <> 'draft'
BEGIN SELECT RAISE(ABORT, 'the protocol is locked'); END;
CREATE TRIGGER participants_frozen_delete BEFORE DELETE ON participants
WHEN (SELECT state FROM meetings WHERE id = OLD.meeting_id) <> 'draft'
BEGIN SELECT RAISE(ABORT, 'the protocol is locked'); END;
CREATE TRIGGER invitations_frozen_insert BEFORE INSERT ON invitations
WHEN (SELECT state FROM meetings WHERE id = NEW.meeting_id) <> 'draft'
BEGIN SELECT RAISE(ABORT, 'the protocol is locked'); END;
CREATE TRIGGER invitations_frozen_use BEFORE UPDATE OF used_at ON invitations
WHEN NEW.used_at IS NOT NULL AND (SELECT state FROM meetings WHERE id = NEW.meeting_id) <> 'draft'
BEGIN SELECT RAISE(ABORT, 'the protocol is locked'); END;
