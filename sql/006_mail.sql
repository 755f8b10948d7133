-- Conference notifications: the outbox of e-mail messages (one row per message and recipient)
-- and, per conference, the calendar state the notifier last told the recipients about.

CREATE TABLE mail_calendar (
    conference_id       bigint PRIMARY KEY REFERENCES conferences (id) ON DELETE CASCADE,
    uid                 text NOT NULL UNIQUE,            -- iCalendar UID, stable for the conference
    sequence            integer NOT NULL DEFAULT 0,      -- iCalendar SEQUENCE, rises with every change
    -- what the recipients were last told (an update is due when the conference differs)
    starts_at           timestamptz NOT NULL,
    ends_at             timestamptz NOT NULL,
    subject             text NOT NULL,
    guest_pin           text,                            -- NULL when no guest PIN is required
    chair_pin           text NOT NULL,
    cancelled           boolean NOT NULL DEFAULT false,
    reminder_for        timestamptz,                     -- the start time whose reminder was handled
    reminder_outcome    text CHECK (reminder_outcome IS NULL OR reminder_outcome IN ('queued', 'skipped')),
    created_at          timestamptz NOT NULL DEFAULT now(),
    updated_at          timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE mail_outbox (
    id                  bigserial PRIMARY KEY,
    dedup_key           text NOT NULL UNIQUE,            -- the same message is never queued twice
    conference_id       bigint REFERENCES conferences (id) ON DELETE CASCADE,
    participant_id      bigint REFERENCES participants (id) ON DELETE SET NULL,
    channel             text NOT NULL DEFAULT 'email' CHECK (channel IN ('email', 'sms')),
    kind                text NOT NULL CHECK (kind IN ('invitation', 'reminder', 'update', 'cancellation')),
    recipient_role      text NOT NULL CHECK (recipient_role IN ('chair', 'guest')),
    recipient           text NOT NULL,
    sender              text NOT NULL,
    subject             text NOT NULL,
    message_id          text NOT NULL,
    message             bytea NOT NULL,                  -- the complete MIME message, sent as stored
    sequence            integer NOT NULL DEFAULT 0,
    status              text NOT NULL DEFAULT 'queued'
                        CHECK (status IN ('queued', 'sending', 'sent', 'retrying', 'failed')),
    attempts            integer NOT NULL DEFAULT 0,
    next_attempt_at     timestamptz NOT NULL DEFAULT now(),
    lease_until         timestamptz,                     -- while 'sending': after this another worker retries
    leased_by           text,
    last_error          text,                            -- the SMTP server's answer or the connection error
    sent_at             timestamptz,
    created_at          timestamptz NOT NULL DEFAULT now(),
    updated_at          timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX mail_outbox_due ON mail_outbox (next_attempt_at) WHERE status IN ('queued', 'retrying');
CREATE INDEX mail_outbox_leased ON mail_outbox (lease_until) WHERE status = 'sending';
CREATE INDEX mail_outbox_conference ON mail_outbox (conference_id, id);
