-- The dial-out limits, decided in the server: a claim of dial-out slots (engine/adapters/db/
-- conferences.py, CallSlotRepository) calls dialout_grant once, inside the statement or the
-- transaction that then takes the slots. An immediate conference is thereby stored and its calls
-- claimed in one statement, one round trip between a start and its first Originate.

-- An account's live conferences (scheduled or running) overlapping [starts, ends), but the one
-- being changed (exclude). Its plan and a replan are refused at max_concurrent_conferences; the
-- index keeps the count to the live ones however many the account held before.
CREATE INDEX conferences_owner_live ON conferences (owner_id, starts_at) WHERE state IN ('scheduled', 'running');
CREATE FUNCTION conferences_overlapping(owner bigint, starts timestamptz, ends timestamptz, exclude bigint)
    RETURNS bigint LANGUAGE sql STABLE AS $$
    SELECT count(*) FROM conferences c
     WHERE c.owner_id = owner AND c.state IN ('scheduled', 'running')
       AND c.starts_at < ends AND c.ends_at > starts AND c.id IS DISTINCT FROM exclude
$$;

-- The version of an account's rules (its limits, language and number-plan group, read from its
-- row and its group's): the transaction ids that wrote the two rows (xmin), which change with
-- every write of either row.
CREATE FUNCTION account_rules_stamp(account_xmin xid, group_xmin xid) RETURNS text
    LANGUAGE sql IMMUTABLE AS $$ SELECT account_xmin::text || '/' || coalesce(group_xmin::text, '') $$;

-- How many of `wanted` dial-outs the limits leave room for, and which limit binds (bound_by:
-- NULL when all fit; the tightest limit, on a tie the account's own one). In order:
--  * with lease_name, the leader lease must be held with lease_token (share-locked: the lease
--    cannot change hands before the caller's transaction ends), else leased is false and
--    nothing else is done;
--  * the account row is locked, then the system-wide count (advisory lock system_lock), so
--    parallel claims take turns;
--  * with rules_stamp (the row versions the caller's account rules were read from, as
--    account_rules_stamp gives them), rules_current says whether they are still those: rules
--    kept in memory are only trusted by a write that checks them under this lock;
--  * the counts run after both locks, each statement with a snapshot of its own (this function
--    is volatile), so they see every claim committed before this one: live dial-outs of the
--    system and of the account, the account's dial-outs in the last window_seconds and, with
--    overlap_starts, its conferences overlapping [overlap_starts, overlap_ends).
-- Without the account (no such row) only the system-wide cap applies, and the limit columns
-- are NULL. The live states are those of the partial index participants_live_dialout.
CREATE FUNCTION dialout_grant(owner bigint, wanted integer, system_cap integer, system_lock bigint,
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
    SELECT (SELECT count(*) FROM participants p JOIN conferences c ON c.id = p.conference_id
             WHERE c.state = 'running' AND p.origin = 'dialout' AND p.state IN ('calling', 'ringing', 'connected')),
           (SELECT count(*) FROM participants p JOIN conferences c ON c.id = p.conference_id
             WHERE c.owner_id = owner AND c.state = 'running' AND p.origin = 'dialout'
               AND p.state IN ('calling', 'ringing', 'connected')),
           -- each recent dial-out's conference looked up by its key: a plan made while the
           -- tables were small must not turn into a scan of the owner's conferences per event
           (SELECT count(*) FROM conference_events e
             WHERE e.kind = 'participant.dialing'
               AND e.at > clock_timestamp() - make_interval(secs => window_seconds)
               AND (SELECT c.owner_id FROM conferences c WHERE c.id = e.conference_id) = owner)
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
