-- The leader lease of an engine pair on one database (engine/adapters/db/lease.py): one row,
-- held by the active engine until expires_at (PostgreSQL's clock, so the engines' clocks never
-- matter). token grows by one at every change of holder: it is the fencing token that every
-- dial-out claim checks in its own transaction, so an engine that lost the lease cannot dial.
CREATE TABLE engine_lease (
    name        text PRIMARY KEY,
    holder      text NOT NULL,
    token       bigint NOT NULL,
    acquired_at timestamptz NOT NULL,
    expires_at  timestamptz NOT NULL
);
