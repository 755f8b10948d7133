-- E-mail consent and account self-service: a conference mails its participants only when its
-- owner asked for it; the owner's own copy is a switch of the account; password-reset and
-- e-mail-change links (only their SHA-256 is stored, each usable once); reset requests counted
-- per account and per client address for the rate limit.

ALTER TABLE conferences ADD COLUMN notify_participants boolean NOT NULL DEFAULT false;
-- Before this switch existed, the only e-mail choice a customer made was the reminder: a
-- conference planned with one counts as consent, one without does not.
UPDATE conferences SET notify_participants = reminder_minutes IS NOT NULL;
ALTER TABLE accounts ADD COLUMN mail_own_copy boolean NOT NULL DEFAULT true;

CREATE TABLE account_links (
    id              bigserial PRIMARY KEY,
    account_id      bigint NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    purpose         text NOT NULL CHECK (purpose IN ('password_reset', 'email_change')),
    token_hash      text NOT NULL UNIQUE,
    new_email       text,                                -- the address an e-mail change confirms
    expires_at      timestamptz NOT NULL,
    used_at         timestamptz,
    created_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX account_links_account ON account_links (account_id, purpose, created_at);

CREATE TABLE reset_requests (
    id              bigserial PRIMARY KEY,
    account_id      bigint REFERENCES accounts (id) ON DELETE CASCADE,
    address         text NOT NULL DEFAULT '',
    created_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX reset_requests_address ON reset_requests (address, created_at);
CREATE INDEX reset_requests_account ON reset_requests (account_id, created_at);
