-- The customer portal: server-side web sessions, login attempts (rate limits), CAPTCHAs,
-- and each account's address book (contacts, conference rooms) and planning templates.

CREATE TABLE web_sessions (
    token_hash      text PRIMARY KEY,              -- sha256 of the cookie value; the value itself is never stored
    account_id      bigint REFERENCES accounts (id) ON DELETE CASCADE,
    data            jsonb NOT NULL DEFAULT '{}'::jsonb,
    created_at      timestamptz NOT NULL DEFAULT now(),
    last_seen_at    timestamptz NOT NULL DEFAULT now(),
    expires_at      timestamptz NOT NULL,          -- absolute timeout
    revoked_at      timestamptz
);
CREATE INDEX web_sessions_account ON web_sessions (account_id) WHERE revoked_at IS NULL;
CREATE INDEX web_sessions_expiry ON web_sessions (expires_at);

CREATE TABLE login_attempts (
    id          bigserial PRIMARY KEY,
    phone       text NOT NULL,
    address     text,
    succeeded   boolean NOT NULL,
    at          timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX login_attempts_phone ON login_attempts (phone, at DESC);
CREATE INDEX login_attempts_address ON login_attempts (address, at DESC);

CREATE TABLE captchas (
    id          text PRIMARY KEY,
    answer      text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    expires_at  timestamptz NOT NULL
);
CREATE INDEX captchas_expiry ON captchas (expires_at);

CREATE TABLE contacts (
    id          bigserial PRIMARY KEY,
    owner_id    bigint NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    name        text NOT NULL CHECK (length(name) BETWEEN 1 AND 100),
    number      text NOT NULL CHECK (number ~ '^[0-9]{2,15}$'),
    email       text,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX contacts_owner ON contacts (owner_id, lower(name));

CREATE TABLE rooms (
    id          bigserial PRIMARY KEY,
    owner_id    bigint NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    name        text NOT NULL CHECK (length(name) BETWEEN 1 AND 100),
    number      text NOT NULL CHECK (number ~ '^[0-9]{2,15}$'),
    location    text NOT NULL DEFAULT '',
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX rooms_owner ON rooms (owner_id, lower(name));

CREATE TABLE templates (
    id                  bigserial PRIMARY KEY,
    owner_id            bigint NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    name                text NOT NULL CHECK (length(name) BETWEEN 1 AND 100),
    subject             text NOT NULL DEFAULT '',
    duration_minutes    integer NOT NULL DEFAULT 60 CHECK (duration_minutes BETWEEN 1 AND 720),
    max_participants    integer NOT NULL DEFAULT 10 CHECK (max_participants > 0),
    auto_invite         boolean NOT NULL DEFAULT true,
    auto_extend_minutes integer NOT NULL DEFAULT 0 CHECK (auto_extend_minutes IN (0, 15, 30, 45, 60)),
    guest_pin_required  boolean NOT NULL DEFAULT true,
    reminder_minutes    integer CHECK (reminder_minutes IS NULL OR reminder_minutes BETWEEN 1 AND 1440),
    participants        jsonb NOT NULL DEFAULT '[]'::jsonb,   -- [{"number", "name", "email"}]
    is_default          boolean NOT NULL DEFAULT false,
    created_at          timestamptz NOT NULL DEFAULT now(),
    updated_at          timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX templates_owner ON templates (owner_id, lower(name));
-- At most one default template per account.
CREATE UNIQUE INDEX templates_one_default ON templates (owner_id) WHERE is_default;
