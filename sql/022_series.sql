-- Recurring conferences and permanent rooms. A series keeps the plan, the repeat rule and the
-- one conference number and PINs its occurrences share; each occurrence (or each session of a
-- permanent room) is an ordinary conference row, so the scheduler, the limits, dial-in and
-- History treat it like any other conference.

CREATE TABLE conference_series (
    id                  bigserial PRIMARY KEY,
    owner_id            bigint NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    kind                text NOT NULL CHECK (kind IN ('recurring', 'permanent')),
    state               text NOT NULL DEFAULT 'active' CHECK (state IN ('active', 'cancelled')),
    subject             text NOT NULL CHECK (length(subject) BETWEEN 1 AND 200),
    plan                jsonb NOT NULL,          -- the ConferencePlan fields every new occurrence gets
    recurrence          jsonb,                   -- engine.domain.recurrence.Recurrence; NULL for a room
    first_start         timestamptz,             -- the first occurrence's start (NULL for a room)
    timezone            text NOT NULL,
    conference_number   text NOT NULL CHECK (conference_number ~ '^[0-9]{4,12}$'),
    chair_pin           text NOT NULL CHECK (chair_pin ~ '^[0-9]{4,12}$'),
    guest_pin           text NOT NULL CHECK (guest_pin ~ '^[0-9]{4,12}$'),
    guests_wait_for_chair boolean NOT NULL DEFAULT false,
    mail_uid            text NOT NULL UNIQUE,    -- iCalendar UID of the whole series
    mail_sequence       integer NOT NULL DEFAULT 0,
    created_at          timestamptz NOT NULL DEFAULT now(),
    updated_at          timestamptz NOT NULL DEFAULT now(),
    CHECK (chair_pin <> guest_pin)
);
CREATE UNIQUE INDEX conference_series_live_number ON conference_series (conference_number)
    WHERE state = 'active';
CREATE INDEX conference_series_owner ON conference_series (owner_id, id DESC);

ALTER TABLE conferences ADD COLUMN series_id bigint REFERENCES conference_series (id) ON DELETE CASCADE;
ALTER TABLE conferences ADD COLUMN occurrence_at timestamptz;  -- the start the rule gave (RECURRENCE-ID)
ALTER TABLE conferences ADD COLUMN occurrence_changed boolean NOT NULL DEFAULT false;
CREATE INDEX conferences_series ON conferences (series_id, starts_at) WHERE series_id IS NOT NULL;
CREATE UNIQUE INDEX conferences_series_occurrence ON conferences (series_id, occurrence_at)
    WHERE occurrence_at IS NOT NULL;

-- A conference number belongs to one live conference, or to the live occurrences of one series
-- or room, and never at once to an active series of someone else. The unique index cannot say
-- "unless the same series", so a trigger checks it under a lock on the number.
DROP INDEX conferences_live_number;
CREATE FUNCTION conferences_number_free() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.state NOT IN ('scheduled', 'running') THEN
        RETURN NEW;
    END IF;
    PERFORM pg_advisory_xact_lock(hashtext('conference_number:' || NEW.conference_number));
    IF EXISTS (SELECT 1 FROM conferences c
                WHERE c.conference_number = NEW.conference_number AND c.id <> NEW.id
                  AND c.state IN ('scheduled', 'running')
                  AND (NEW.series_id IS NULL OR c.series_id IS DISTINCT FROM NEW.series_id))
       OR EXISTS (SELECT 1 FROM conference_series s
                   WHERE s.conference_number = NEW.conference_number AND s.state = 'active'
                     AND s.id IS DISTINCT FROM NEW.series_id) THEN
        RAISE unique_violation USING MESSAGE = 'conference number ' || NEW.conference_number || ' is in use';
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER conferences_number_free BEFORE INSERT OR UPDATE OF conference_number, state, series_id
    ON conferences FOR EACH ROW EXECUTE FUNCTION conferences_number_free();

CREATE FUNCTION conference_series_number_free() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.state <> 'active' THEN
        RETURN NEW;
    END IF;
    PERFORM pg_advisory_xact_lock(hashtext('conference_number:' || NEW.conference_number));
    IF EXISTS (SELECT 1 FROM conferences c
                WHERE c.conference_number = NEW.conference_number AND c.state IN ('scheduled', 'running')
                  AND c.series_id IS DISTINCT FROM NEW.id) THEN
        RAISE unique_violation USING MESSAGE = 'conference number ' || NEW.conference_number || ' is in use';
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER conference_series_number_free BEFORE INSERT OR UPDATE OF conference_number, state
    ON conference_series FOR EACH ROW EXECUTE FUNCTION conference_series_number_free();

-- A permanent room has at most one session (conference row) open at a time; guests of a room
-- with "guests wait for the chair" enter with the waiting profile.
ALTER TABLE conferences ADD COLUMN wait_for_chair boolean NOT NULL DEFAULT false;
CREATE UNIQUE INDEX conferences_room_session ON conferences (series_id)
    WHERE series_id IS NOT NULL AND occurrence_at IS NULL AND state IN ('scheduled', 'running');
