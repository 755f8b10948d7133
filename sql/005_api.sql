-- JSON API bearer tokens: only a SHA-256 hash of each token is stored; a token can be revoked
-- and records when it was last used.

CREATE TABLE api_tokens (
    id              bigserial PRIMARY KEY,
    account_id      bigint NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    name            text NOT NULL DEFAULT '' CHECK (length(name) <= 100),
    token_hash      text NOT NULL UNIQUE,          -- sha256 hex of the token; the token itself is never stored
    prefix          text NOT NULL,                 -- the first characters, so a customer can tell tokens apart
    created_at      timestamptz NOT NULL DEFAULT now(),
    last_used_at    timestamptz,
    revoked_at      timestamptz
);
CREATE INDEX api_tokens_account ON api_tokens (account_id);
