-- Security hardening (issue 10).
--
-- Who may create meetings: administrators, and those an administrator has
-- given the right. Nobody has it after the upgrade; administrators grant it.
ALTER TABLE users ADD COLUMN can_create_meetings INTEGER NOT NULL DEFAULT 0;

-- Invitations get an id (to list and revoke them without their secret) and
-- can be revoked.
ALTER TABLE invitations ADD COLUMN id BLOB;
ALTER TABLE invitations ADD COLUMN revoked_at TEXT;
UPDATE invitations SET id = randomblob(16) WHERE id IS NULL;
CREATE UNIQUE INDEX invitations_by_id ON invitations (id);
CREATE INDEX invitations_by_meeting ON invitations (meeting_id);
