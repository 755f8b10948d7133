-- Operator edition: number-plan groups (which numbers an account may dial out) and the
-- append-only audit log of operator and customer actions.

CREATE TABLE number_plan_groups (
    name                text PRIMARY KEY CHECK (name ~ '^[a-z0-9][a-z0-9_-]{0,39}$'),
    description         text NOT NULL DEFAULT '' CHECK (length(description) <= 200),
    -- Asterisk-style dial patterns (e.g. _375XXXXXXXXX, _1XXX, 7000); empty = the engine's
    -- default plan (375 + 9 digits and internal short numbers)
    patterns            text[] NOT NULL DEFAULT '{}',
    allow_international boolean NOT NULL DEFAULT false,
    allow_premium       boolean NOT NULL DEFAULT false,
    created_at          timestamptz NOT NULL DEFAULT now(),
    updated_at          timestamptz NOT NULL DEFAULT now()
);
INSERT INTO number_plan_groups (name, description)
VALUES ('default', 'Belarus: 375 and 9 digits, and internal short numbers');

ALTER TABLE accounts
    ADD COLUMN plan_group text NOT NULL DEFAULT 'default'
        REFERENCES number_plan_groups (name) ON UPDATE CASCADE ON DELETE RESTRICT;

-- Who did what, when and from where. No foreign keys: the log outlives deleted accounts and
-- conferences. The application has no code path that changes or deletes a row, and the
-- trigger below refuses it for everybody (a superuser can still drop the trigger).
CREATE TABLE audit_log (
    id              bigserial PRIMARY KEY,
    at              timestamptz NOT NULL DEFAULT clock_timestamp(),
    actor           text NOT NULL,                  -- 'account:12', 'operator:3', 'engine', 'cli'
    actor_id        bigint,                         -- the acting account, when one acted
    action          text NOT NULL,                  -- e.g. login, account.blocked, conference.ended
    account_id      bigint,                         -- the account the action concerns
    conference_id   bigint,
    address         text,                           -- the client's remote address
    detail          jsonb NOT NULL DEFAULT '{}'::jsonb
);
CREATE INDEX audit_log_at ON audit_log (at DESC);
CREATE INDEX audit_log_account ON audit_log (account_id, at DESC);
CREATE INDEX audit_log_actor ON audit_log (actor_id, at DESC);

CREATE FUNCTION audit_log_is_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit_log is append-only: % is not allowed', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END
$$;
CREATE TRIGGER audit_log_no_update BEFORE UPDATE OR DELETE ON audit_log
    FOR EACH ROW EXECUTE FUNCTION audit_log_is_append_only();
CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log
    FOR EACH STATEMENT EXECUTE FUNCTION audit_log_is_append_only();
