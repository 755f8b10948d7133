-- Failed dial-in entries (unknown conference number, wrong PIN), counted per caller number and
-- per conference over a sliding window so PIN guessing across many calls slows down and stops.

CREATE TABLE dialin_failures (
    id                  bigserial PRIMARY KEY,
    at                  timestamptz NOT NULL DEFAULT clock_timestamp(),
    caller              text NOT NULL,
    conference_id       bigint REFERENCES conferences (id) ON DELETE CASCADE,
    conference_number   text NOT NULL DEFAULT '',
    kind                text NOT NULL CHECK (kind IN ('number', 'pin', 'blocked')),
    call_id             text
);
CREATE INDEX dialin_failures_caller ON dialin_failures (caller, at);
CREATE INDEX dialin_failures_conference ON dialin_failures (conference_id, at)
    WHERE conference_id IS NOT NULL;
-- Dial-in looks conferences up by the number callers key in, live ones and recently ended ones.
CREATE INDEX conferences_number ON conferences (conference_number, starts_at DESC);

-- Recovery (same migration, same helper): the boot of each Asterisk node as last seen, so an
-- engine that starts after Asterisk restarted knows that calls were cut, not hung up.
CREATE TABLE asterisk_nodes (
    node_id     text PRIMARY KEY,
    boot        text NOT NULL,
    seen_at     timestamptz NOT NULL DEFAULT now()
);
