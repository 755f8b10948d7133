-- Concurrent outbound calls: a cap per account (operator-editable beside the other account
-- limits). The system-wide cap is the setting VECHE_MAX_CONCURRENT_CALLS. A dial-out holds its
-- slot while its participant is calling, ringing or connected in a running conference, so a
-- slot is released by the very state change that records the hangup or the failure (or by the
-- end of the conference), and recovery's corrections of participant states re-count it.
ALTER TABLE accounts
    ADD COLUMN max_concurrent_calls integer NOT NULL DEFAULT 50 CHECK (max_concurrent_calls > 0);

-- The slot count: live dial-out participants, by conference (the owner is one join away).
CREATE INDEX participants_live_dialout ON participants (conference_id)
    WHERE origin = 'dialout' AND state IN ('calling', 'ringing', 'connected');
-- Dial-outs per minute count the owner's recent participant.dialing events.
CREATE INDEX conference_events_dialing ON conference_events (at)
    WHERE kind = 'participant.dialing';
