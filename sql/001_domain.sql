-- Accounts, conferences, participants and the per-conference event log.

CREATE TABLE accounts (
    id                          bigserial PRIMARY KEY,
    phone                       text NOT NULL UNIQUE CHECK (phone ~ '^375[0-9]{9}$'),
    password_hash               text NOT NULL,
    name                        text NOT NULL DEFAULT '',
    email                       text,
    language                    text NOT NULL DEFAULT 'ru' CHECK (language IN ('ru', 'en')),
    timezone                    text NOT NULL DEFAULT 'Europe/Minsk',
    role                        text NOT NULL DEFAULT 'customer' CHECK (role IN ('customer', 'operator')),
    max_participants            integer NOT NULL DEFAULT 50 CHECK (max_participants > 0),
    max_concurrent_conferences  integer NOT NULL DEFAULT 3 CHECK (max_concurrent_conferences > 0),
    max_dialouts_per_minute     integer NOT NULL DEFAULT 120 CHECK (max_dialouts_per_minute > 0),
    blocked                     boolean NOT NULL DEFAULT false,
    created_at                  timestamptz NOT NULL DEFAULT now(),
    updated_at                  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE conferences (
    id                  bigserial PRIMARY KEY,
    owner_id            bigint NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    subject             text NOT NULL CHECK (length(subject) BETWEEN 1 AND 200),
    mode                text NOT NULL DEFAULT 'voice' CHECK (mode IN ('voice')),
    node_id             text NOT NULL,
    room                text NOT NULL UNIQUE,
    conference_number   text NOT NULL CHECK (conference_number ~ '^[0-9]{4,12}$'),
    chair_pin           text NOT NULL CHECK (chair_pin ~ '^[0-9]{4,12}$'),
    guest_pin           text NOT NULL CHECK (guest_pin ~ '^[0-9]{4,12}$'),
    guest_pin_required  boolean NOT NULL DEFAULT true,
    immediate           boolean NOT NULL DEFAULT false,
    starts_at           timestamptz NOT NULL,
    duration_minutes    integer NOT NULL CHECK (duration_minutes > 0),
    ends_at             timestamptz NOT NULL,
    timezone            text NOT NULL DEFAULT 'Europe/Minsk',
    max_participants    integer NOT NULL CHECK (max_participants > 0),
    auto_invite         boolean NOT NULL DEFAULT true,
    auto_extend_minutes integer NOT NULL DEFAULT 0 CHECK (auto_extend_minutes IN (0, 15, 30, 45, 60)),
    extend_cap_minutes  integer NOT NULL DEFAULT 120 CHECK (extend_cap_minutes >= 0),
    extended_minutes    integer NOT NULL DEFAULT 0,
    reminder_minutes    integer CHECK (reminder_minutes IS NULL OR reminder_minutes > 0),
    locked              boolean NOT NULL DEFAULT false,
    state               text NOT NULL DEFAULT 'scheduled'
                        CHECK (state IN ('scheduled', 'running', 'ended', 'cancelled', 'failed')),
    warned_at           timestamptz,
    started_at          timestamptz,
    ended_at            timestamptz,
    cancelled_at        timestamptz,
    end_reason          text,
    created_at          timestamptz NOT NULL DEFAULT now(),
    updated_at          timestamptz NOT NULL DEFAULT now(),
    CHECK (chair_pin <> guest_pin)
);
-- A conference number is unique among the conferences that are not over.
CREATE UNIQUE INDEX conferences_live_number ON conferences (conference_number)
    WHERE state IN ('scheduled', 'running');
CREATE INDEX conferences_due ON conferences (starts_at) WHERE state = 'scheduled';
CREATE INDEX conferences_running ON conferences (ends_at) WHERE state = 'running';
CREATE INDEX conferences_owner ON conferences (owner_id, starts_at DESC);

CREATE TABLE participants (
    id                  bigserial PRIMARY KEY,
    conference_id       bigint NOT NULL REFERENCES conferences (id) ON DELETE CASCADE,
    number              text NOT NULL CHECK (number ~ '^[0-9]{2,15}$'),
    name                text NOT NULL DEFAULT '',
    email               text,
    role                text NOT NULL DEFAULT 'guest' CHECK (role IN ('chair', 'guest')),
    origin              text NOT NULL DEFAULT 'dialout' CHECK (origin IN ('dialout', 'dialin')),
    state               text NOT NULL DEFAULT 'planned'
                        CHECK (state IN ('planned', 'calling', 'ringing', 'connected', 'left', 'failed')),
    failure_reason      text CHECK (failure_reason IS NULL OR failure_reason IN
                        ('busy', 'no_answer', 'congestion', 'rejected', 'invalid_number',
                         'cancelled', 'error')),
    hangup_cause        integer,
    call_id             text UNIQUE,
    channel             text,
    node_id             text,
    muted               boolean NOT NULL DEFAULT false,
    talking             boolean NOT NULL DEFAULT false,
    attempts            integer NOT NULL DEFAULT 0,
    joined_at           timestamptz,
    left_at             timestamptz,
    connected_seconds   integer NOT NULL DEFAULT 0,
    created_at          timestamptz NOT NULL DEFAULT now(),
    updated_at          timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX participants_conference ON participants (conference_id);

CREATE TABLE conference_events (
    id              bigserial PRIMARY KEY,
    conference_id   bigint NOT NULL REFERENCES conferences (id) ON DELETE CASCADE,
    at              timestamptz NOT NULL DEFAULT clock_timestamp(),
    kind            text NOT NULL,
    actor           text NOT NULL DEFAULT 'engine',
    participant_id  bigint REFERENCES participants (id) ON DELETE SET NULL,
    detail          jsonb NOT NULL DEFAULT '{}'::jsonb
);
CREATE INDEX conference_events_conference ON conference_events (conference_id, at);
