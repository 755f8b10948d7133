-- PIN-guessing guard shared by every engine: failures are counted per conference number (known
-- or not, so an unknown number behaves like a real one), and a number that saw too many wrong
-- PINs has PIN entry closed until its cool-down ends. A lock-out of a conference number that
-- exists also tells its owner by e-mail (mail_outbox kind 'pin_lockout').

CREATE INDEX dialin_failures_number ON dialin_failures (conference_number, at);

CREATE TABLE dialin_lockouts (
    conference_number   text PRIMARY KEY,
    conference_id       bigint REFERENCES conferences (id) ON DELETE SET NULL,
    started_at          timestamptz NOT NULL,
    until               timestamptz NOT NULL,
    failures            integer NOT NULL              -- wrong PINs counted when it started
);

ALTER TABLE mail_outbox DROP CONSTRAINT mail_outbox_kind_check;
ALTER TABLE mail_outbox ADD CONSTRAINT mail_outbox_kind_check
    CHECK (kind IN ('invitation', 'reminder', 'update', 'cancellation', 'pin_lockout'));
