-- conferences_overlapping as sql/028_dialout_grant.sql describes it, in PL/pgSQL: a function in
-- SQL that the planner cannot inline (its body reads a table) is planned again at every call of
-- the statement calling it, 0.2-0.4 ms of each dial-out claim (dialout_grant calls it once per
-- claim); PL/pgSQL keeps the plan of its query for the session.
CREATE OR REPLACE FUNCTION conferences_overlapping(owner bigint, starts timestamptz, ends timestamptz, exclude bigint)
    RETURNS bigint LANGUAGE plpgsql STABLE AS $$
BEGIN
    RETURN (SELECT count(*) FROM conferences c
             WHERE c.owner_id = owner AND c.state IN ('scheduled', 'running')
               AND c.starts_at < ends AND c.ends_at > starts AND c.id IS DISTINCT FROM exclude);
END $$;
