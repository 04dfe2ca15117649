-- The captures and the owed conversions. Shared by SQLite and Postgres: plain types only.
-- Times are BIGINT milliseconds since the Unix epoch, always the caller's.

-- A landing's capture, under the visitor's key (an i128, in decimal).
CREATE TABLE sovendus_captures (
    visitor_key TEXT PRIMARY KEY NOT NULL,
    token TEXT NOT NULL,
    product_id TEXT NOT NULL,
    expires_at BIGINT NOT NULL
);

-- The purge removes the expired captures.
CREATE INDEX sovendus_captures_expires_at ON sovendus_captures (expires_at);

-- An order's conversion, by its ID (32 lowercase hexadecimal digits). One per token, ever,
-- while it is kept. `due_at` is when it may be claimed: the later of its next attempt and
-- the end of its lease while it is owed or parked, NULL once it is settled (dead, delivered,
-- voided). `calls` is when its last ten calls to Sovendus ended, each `,` and 13 digits of
-- milliseconds, oldest first; `lease_until` is shown to the staff as how long a delivery holds it.
CREATE TABLE sovendus_conversions (
    id TEXT PRIMARY KEY NOT NULL,
    token TEXT NOT NULL UNIQUE,
    product_id TEXT NOT NULL,
    order_ref TEXT,
    ordered_at BIGINT NOT NULL,
    state TEXT NOT NULL,
    attempts BIGINT NOT NULL,
    next_attempt_at BIGINT,
    last_error TEXT,
    settled_at BIGINT,
    calls TEXT,
    lease_id TEXT,
    lease_until BIGINT,
    due_at BIGINT
);

-- A claim is one range of this index, the earliest due first.
CREATE INDEX sovendus_conversions_due_at ON sovendus_conversions (due_at, id) WHERE due_at IS NOT NULL;
-- `find`.
CREATE INDEX sovendus_conversions_order_ref ON sovendus_conversions (order_ref);
-- The staff's lists by order time, one range per state for the counts per day, the causes
-- of a state, and `counts` (the whole index, read alone).
CREATE INDEX sovendus_conversions_state_ordered_at ON sovendus_conversions (state, ordered_at, id);
-- The staff's lists by settlement time. Partial, as the next: an order's insert (not settled)
-- touches neither.
CREATE INDEX sovendus_conversions_state_settled_at ON sovendus_conversions (state, settled_at, id)
    WHERE settled_at IS NOT NULL;
-- The purge removes the conversions settled before the retention.
CREATE INDEX sovendus_conversions_settled_at ON sovendus_conversions (settled_at) WHERE settled_at IS NOT NULL;

-- The database's identity, one row given by the first migration: a transaction that joins a
-- conversion to an order is checked to run on the store's database.
CREATE TABLE sovendus_database (
    one INTEGER PRIMARY KEY NOT NULL CHECK (one = 1),
    id TEXT NOT NULL
);
