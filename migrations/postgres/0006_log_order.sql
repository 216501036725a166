-- Log positions that catch-up can trust (issue 13).
--
-- doc_updates.seq is a global BIGSERIAL: values are handed out when rows
-- are inserted, not when they commit, so a row with seq 7 can become
-- visible after one with seq 8. A node that catches up with
-- `seq > last_seen` after seeing 8 would skip 7 for good.
--
-- mseq is a position within one meeting's log, handed out from
-- meeting_log_heads under that meeting's row lock in the very transaction
-- that appends: a second writer of the meeting waits for the first to
-- commit (or roll back) before it gets its numbers, so for one meeting mseq
-- becomes visible in order and without holes, and `mseq > last_applied`
-- never skips a row. Snapshots' `upto` and compaction use mseq.

CREATE TABLE meeting_log_heads (
    meeting_id  UUID PRIMARY KEY REFERENCES meetings (id) ON DELETE CASCADE,
    head        BIGINT NOT NULL
);

ALTER TABLE doc_updates ADD COLUMN mseq BIGINT;
-- Positions so far: the global seq, which is increasing per meeting.
UPDATE doc_updates SET mseq = seq;
INSERT INTO meeting_log_heads (meeting_id, head)
SELECT m.id, GREATEST(
        COALESCE((SELECT MAX(u.seq) FROM doc_updates u WHERE u.meeting_id = m.id), 0),
        COALESCE((SELECT s.upto FROM doc_snapshots s WHERE s.meeting_id = m.id), 0))
FROM meetings m;

-- Appends that do not number their rows themselves (a single row from the
-- finalise code, say) are numbered here, the same way. The group commit
-- numbers whole batches in its statement.
CREATE FUNCTION protokoll_number_update() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.mseq IS NULL THEN
        INSERT INTO meeting_log_heads AS h (meeting_id, head) VALUES (NEW.meeting_id, 1)
            ON CONFLICT (meeting_id) DO UPDATE SET head = h.head + 1
            RETURNING head INTO NEW.mseq;
    END IF;
    RETURN NEW;
END
$$;
CREATE TRIGGER doc_updates_numbered BEFORE INSERT ON doc_updates
    FOR EACH ROW EXECUTE FUNCTION protokoll_number_update();

ALTER TABLE doc_updates ALTER COLUMN mseq SET NOT NULL;
CREATE UNIQUE INDEX doc_updates_by_meeting_mseq ON doc_updates (meeting_id, mseq);
DROP INDEX doc_updates_by_meeting;
