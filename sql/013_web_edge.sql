-- The portal's edge: API tokens may expire; an operator account may carry the admin flag (only an
-- admin manages other operators); a login CAPTCHA keeps its rendered picture, so it is drawn once,
-- and the client address it was issued to (each address keeps only its newest few).
-- Anonymous visitors no longer have server-side session rows (their values live in a cookie).

ALTER TABLE api_tokens ADD COLUMN expires_at timestamptz;

ALTER TABLE accounts ADD COLUMN admin boolean NOT NULL DEFAULT false;

ALTER TABLE captchas ADD COLUMN image bytea;
ALTER TABLE captchas ADD COLUMN address text NOT NULL DEFAULT '';
CREATE INDEX captchas_created ON captchas (created_at);
CREATE INDEX captchas_address ON captchas (address, created_at);

DELETE FROM web_sessions WHERE account_id IS NULL;
