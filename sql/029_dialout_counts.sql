-- An account's dial-outs per second, for its max_dialouts_per_minute: dialout_grant sums the
-- owner's buckets of the window, a few dozen rows read by the primary key whatever the rest of
-- the system dials, where a count of the event log's 'participant.dialing' entries read every
-- account's entry of the window (and looked up its conference) under the system-wide lock every
-- claim takes. The statements that write 'participant.dialing' entries (engine/adapters/db/
-- conferences.py) add their dial-outs to the bucket of the second (date_trunc('second',
-- clock_timestamp()) at the claim) in the same statement; the engine's housekeeping deletes the
-- buckets older than twice the window (CallSlotRepository.purge_counts).
CREATE TABLE dialout_counts (
    owner_id    bigint NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    second      timestamptz NOT NULL,
    calls       integer NOT NULL CHECK (calls > 0),
    PRIMARY KEY (owner_id, second)
);

-- The dial-outs of the last two minutes, so the limits hold across the upgrade.
INSERT INTO dialout_counts (owner_id, second, calls)
SELECT c.owner_id, date_trunc('second', e.at), count(*)
  FROM conference_events e JOIN conferences c ON c.id = e.conference_id
 WHERE e.kind = 'participant.dialing' AND e.at > clock_timestamp() - interval '2 minutes'
 GROUP BY c.owner_id, date_trunc('second', e.at);

-- dialout_grant as sql/028_dialout_grant.sql describes it, its dial-outs of the window summed
-- from dialout_counts.
CREATE OR REPLACE FUNCTION dialout_grant(owner bigint, wanted integer, system_cap integer, system_lock bigint,
                                         window_seconds double precision, overlap_starts timestamptz,
                                         overlap_ends timestamptz, lease_name text, lease_token bigint,
                                         rules_stamp text)
    RETURNS TABLE (leased boolean, rules_current boolean, room integer, bound_by text,
                   max_concurrent_conferences integer, max_concurrent_calls integer,
                   max_dialouts_per_minute integer, overlapping bigint)
    LANGUAGE plpgsql VOLATILE ROWS 1
    -- planned once per connection: the counts stand between a start and its first Originate
    SET plan_cache_mode = force_generic_plan
AS $$
#variable_conflict use_column
DECLARE
    system_live bigint;
    account_live bigint;
    recent bigint;
    since timestamptz;
    rooms integer[];
    names text[] := ARRAY['max_dialouts_per_minute', 'max_concurrent_calls', 'system_concurrent_calls'];
    best integer;
BEGIN
    leased := true;
    IF lease_name IS NOT NULL THEN
        PERFORM 1 FROM engine_lease l
         WHERE l.name = lease_name AND l.token = lease_token AND l.expires_at > now() FOR SHARE;
        IF NOT FOUND THEN
            leased := false;
            RETURN NEXT;
            RETURN;
        END IF;
    END IF;
    SELECT a.max_concurrent_conferences, a.max_concurrent_calls, a.max_dialouts_per_minute,
           rules_stamp IS NULL OR account_rules_stamp(a.xmin, g.xmin) = rules_stamp
      INTO max_concurrent_conferences, max_concurrent_calls, max_dialouts_per_minute, rules_current
      FROM accounts a LEFT JOIN number_plan_groups g ON g.name = a.plan_group
     WHERE a.id = owner FOR NO KEY UPDATE OF a;
    rules_current := coalesce(rules_current, rules_stamp IS NULL);
    PERFORM pg_advisory_xact_lock(system_lock);
    -- The owner's dial-outs of the window are its buckets from the one the window starts in,
    -- which counts whole: a bucket partly outside the window makes the count higher than the
    -- exact one, by the dial-outs of under a second, never lower (the limit never lets more
    -- through). Taken as a value of its own, the start makes the read a range of the primary
    -- key; clock_timestamp() in the condition would make it a filter of every bucket the owner has.
    since := date_trunc('second', clock_timestamp() - make_interval(secs => window_seconds));
    SELECT (SELECT count(*) FROM participants p JOIN conferences c ON c.id = p.conference_id
             WHERE c.state = 'running' AND p.origin = 'dialout' AND p.state IN ('calling', 'ringing', 'connected')),
           (SELECT count(*) FROM participants p JOIN conferences c ON c.id = p.conference_id
             WHERE c.owner_id = owner AND c.state = 'running' AND p.origin = 'dialout'
               AND p.state IN ('calling', 'ringing', 'connected')),
           (SELECT coalesce(sum(d.calls), 0) FROM dialout_counts d WHERE d.owner_id = owner AND d.second >= since)
      INTO system_live, account_live, recent;
    overlapping := CASE WHEN overlap_starts IS NULL THEN 0
                        ELSE conferences_overlapping(owner, overlap_starts, overlap_ends, NULL) END;
    rooms := ARRAY[max_dialouts_per_minute - recent, max_concurrent_calls - account_live,
                   system_cap - system_live];
    best := 3;
    IF max_concurrent_calls IS NOT NULL THEN  -- the account exists: its limits count too
        FOR i IN 1..2 LOOP
            IF rooms[i] <= rooms[best] AND (rooms[i] < rooms[best] OR i < best) THEN
                best := i;
            END IF;
        END LOOP;
    END IF;
    room := greatest(0, rooms[best]);
    bound_by := CASE WHEN room < wanted THEN names[best] END;
    RETURN NEXT;
END $$;

-- Nothing reads the dialing entries by time any more.
DROP INDEX conference_events_dialing;
