-- Media nodes: every Asterisk node the engines drive, as configured (AMI link without its
-- secret, SIP address, capacity in participants) and as last seen: up (takes new rooms),
-- draining (an operator's choice: its running rooms finish, no new ones) or down (its AMI link is
-- lost). seen_at is the last time an engine reached the node; boot stays NULL until recovery
-- first reads the node's boot time.
ALTER TABLE asterisk_nodes ALTER COLUMN boot DROP NOT NULL;
ALTER TABLE asterisk_nodes
    ADD COLUMN ami_url text NOT NULL DEFAULT '',
    ADD COLUMN sip_address text NOT NULL DEFAULT '',
    ADD COLUMN capacity integer NOT NULL DEFAULT 300 CHECK (capacity > 0),
    ADD COLUMN state text NOT NULL DEFAULT 'up' CHECK (state IN ('up', 'draining', 'down'));
