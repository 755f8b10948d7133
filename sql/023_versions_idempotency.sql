-- Optimistic concurrency and safe retries.
-- conferences.version counts the changes of a conference: the trigger adds one in the very UPDATE
-- that changes the row, so every writer (portal, API, CLI, scheduler) moves it and an editor who
-- read an older version is refused (API ETag / If-Match, the portal's hidden "version" field).
-- idempotency_keys keeps, per account, the answer to a request sent with an Idempotency-Key header,
-- so that a retried or double-submitted create replays that answer instead of acting twice; rows
-- older than VECHE_IDEMPOTENCY_HOURS are purged.

ALTER TABLE conferences ADD COLUMN version integer NOT NULL DEFAULT 1;

CREATE FUNCTION conferences_next_version() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    NEW.version := OLD.version + 1;
    RETURN NEW;
END
$$;

CREATE TRIGGER conferences_version BEFORE UPDATE ON conferences
    FOR EACH ROW EXECUTE FUNCTION conferences_next_version();

CREATE TABLE idempotency_keys (
    account_id    bigint NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    key           text NOT NULL,
    operation     text NOT NULL,
    request_hash  text NOT NULL,
    status        integer,
    body          text,
    headers       jsonb NOT NULL DEFAULT '{}',
    created_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (account_id, key)
);
CREATE INDEX idempotency_keys_created ON idempotency_keys (created_at);

-- Template names are unique per account (ignoring case and surrounding spaces); duplicates saved
-- before this rule keep their data under a name made distinct by the template's id.
UPDATE templates t SET name = left(btrim(t.name), 80) || ' (' || t.id || ')'
 WHERE EXISTS (SELECT 1 FROM templates o WHERE o.owner_id = t.owner_id AND o.id < t.id
                AND lower(btrim(o.name)) = lower(btrim(t.name)));
CREATE UNIQUE INDEX templates_owner_name ON templates (owner_id, lower(btrim(name)));
