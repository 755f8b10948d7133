-- Recording: a conference may ask to be recorded (the operator allows or forbids it per
-- account); each recording of a room is one row, its file kept in VECHE_RECORDING_DIR until
-- the retention period passes. recording_error keeps the last failure for the console card.

ALTER TABLE accounts ADD COLUMN recording_allowed boolean NOT NULL DEFAULT true;

ALTER TABLE conferences ADD COLUMN recording boolean NOT NULL DEFAULT false;
ALTER TABLE conferences ADD COLUMN recording_error text;
ALTER TABLE templates ADD COLUMN recording boolean NOT NULL DEFAULT false;

CREATE TABLE recordings (
    id                bigserial PRIMARY KEY,
    conference_id     bigint NOT NULL REFERENCES conferences(id) ON DELETE CASCADE,
    owner_id          bigint NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    call_id           text NOT NULL UNIQUE,
    node_id           text NOT NULL,
    state             text NOT NULL DEFAULT 'recording'
                      CHECK (state IN ('recording', 'converting', 'ready', 'failed')),
    raw_path          text,
    file_name         text,
    duration_seconds  double precision,
    size_bytes        bigint,
    error             text,
    started_at        timestamptz NOT NULL DEFAULT now(),
    stopped_at        timestamptz,
    created_at        timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX recordings_conference ON recordings (conference_id);
CREATE INDEX recordings_owner ON recordings (owner_id, created_at);
CREATE INDEX recordings_created ON recordings (created_at);
