-- A participant whose media node failed under it: a dial-in caller is marked left with reason
-- node_failed (its call ended with the node); a dial-out one is called again from the node its
-- conference moved to.
ALTER TABLE participants DROP CONSTRAINT participants_failure_reason_check;
ALTER TABLE participants ADD CONSTRAINT participants_failure_reason_check CHECK (
    failure_reason IS NULL OR failure_reason IN ('busy', 'no_answer', 'congestion', 'rejected', 'invalid_number',
                                                 'cancelled', 'error', 'node_failed'));
