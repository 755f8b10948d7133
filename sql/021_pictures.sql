-- Pictures: who talked when (one row per talking span, from ConfbridgeTalking), network numbers
-- of each connected participant sampled every VECHE_QUALITY_SAMPLE_SECONDS, and the system's load
-- (running conferences, calls, connected participants) sampled every minute; samples are kept
-- VECHE_SAMPLE_RETENTION_DAYS days.

CREATE TABLE talk_spans (
    id              bigserial PRIMARY KEY,
    conference_id   bigint NOT NULL REFERENCES conferences (id) ON DELETE CASCADE,
    participant_id  bigint NOT NULL REFERENCES participants (id) ON DELETE CASCADE,
    started_at      timestamptz NOT NULL DEFAULT now(),
    ended_at        timestamptz
);
CREATE INDEX talk_spans_conference ON talk_spans (conference_id);
CREATE UNIQUE INDEX talk_spans_open ON talk_spans (participant_id) WHERE ended_at IS NULL;

CREATE TABLE quality_samples (
    id              bigserial PRIMARY KEY,
    conference_id   bigint NOT NULL REFERENCES conferences (id) ON DELETE CASCADE,
    participant_id  bigint NOT NULL REFERENCES participants (id) ON DELETE CASCADE,
    at              timestamptz NOT NULL DEFAULT now(),
    jitter_ms       double precision NOT NULL CHECK (jitter_ms >= 0),
    loss_percent    double precision NOT NULL CHECK (loss_percent BETWEEN 0 AND 100),
    rtt_ms          double precision,
    mos             double precision
);
CREATE INDEX quality_samples_conference ON quality_samples (conference_id, at);
CREATE INDEX quality_samples_at ON quality_samples (at);

CREATE TABLE load_samples (
    at              timestamptz PRIMARY KEY DEFAULT now(),
    conferences     integer NOT NULL CHECK (conferences >= 0),
    calls           integer NOT NULL CHECK (calls >= 0),
    participants    integer NOT NULL CHECK (participants >= 0)
);
