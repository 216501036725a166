-- Security hardening (issue 10).
--
-- Who may create meetings: administrators, and those an administrator has
-- given the right. Nobody has it after the upgrade; administrators grant it.
ALTER TABLE users ADD COLUMN can_create_meetings BOOLEAN NOT NULL DEFAULT FALSE;

-- Invitations get an id (to list and revoke them without their secret) and
-- can be revoked.
ALTER TABLE invitations ADD COLUMN id UUID;
ALTER TABLE invitations ADD COLUMN revoked_at TIMESTAMPTZ;
UPDATE invitations SET id = gen_random_uuid() WHERE id IS NULL;
ALTER TABLE invitations ALTER COLUMN id SET NOT NULL;
CREATE UNIQUE INDEX invitations_by_id ON invitations (id);
CREATE INDEX invitations_by_meeting ON invitations (meeting_id);
