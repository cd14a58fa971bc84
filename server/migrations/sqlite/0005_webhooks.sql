-- Webhooks (SQLite; mirrors postgres/0005_webhooks.sql).
--
-- `events` is the durable outbox: an event row and one delivery row per subscribed
-- endpoint are written in the same transaction as the state change that causes them,
-- so a crash can lose neither the change nor its announcement.

-- Orders the events of one session: bumped (and so row-locked) by every transaction
-- that writes an event for the session.
ALTER TABLE checkout_sessions ADD COLUMN event_seq BIGINT NOT NULL DEFAULT 0;

-- Where a merchant wants events, per mode.
CREATE TABLE webhook_endpoints (
    id                   TEXT PRIMARY KEY,          -- we_…
    merchant_id          TEXT NOT NULL REFERENCES merchants (id),
    mode                 TEXT NOT NULL CHECK (mode IN ('test', 'live')),
    url                  TEXT NOT NULL,
    description          TEXT NOT NULL DEFAULT '',
    enabled_events       TEXT NOT NULL,             -- JSON array of event types, or ["*"]
    secret               TEXT NOT NULL,             -- whsec_…: needed in clear to sign
    previous_secret      TEXT,                      -- still signs until it expires
    previous_expires_at  BIGINT,
    created_at           BIGINT NOT NULL,
    deleted_at           BIGINT
);
CREATE INDEX webhook_endpoints_merchant ON webhook_endpoints (merchant_id, mode);

-- What happened, as the merchant sees it. `payload` is the exact JSON body delivered.
CREATE TABLE events (
    id           TEXT PRIMARY KEY,                  -- evt_…
    merchant_id  TEXT NOT NULL REFERENCES merchants (id),
    mode         TEXT NOT NULL CHECK (mode IN ('test', 'live')),
    type         TEXT NOT NULL,
    session_id   TEXT REFERENCES checkout_sessions (id),
    sequence     BIGINT NOT NULL,
    payload      TEXT NOT NULL,
    created_at   BIGINT NOT NULL,
    UNIQUE (session_id, sequence)
);
CREATE INDEX events_merchant ON events (merchant_id, mode, created_at);

-- One event owed to one endpoint. `pending` until a 2xx (`succeeded`) or until the
-- retry window closes (`failed`); a redelivery makes it `pending` again.
CREATE TABLE webhook_deliveries (
    id               TEXT PRIMARY KEY,              -- whd_…
    event_id         TEXT NOT NULL REFERENCES events (id),
    endpoint_id      TEXT NOT NULL REFERENCES webhook_endpoints (id),
    status           TEXT NOT NULL CHECK (status IN ('pending', 'succeeded', 'failed')),
    attempt_count    BIGINT NOT NULL DEFAULT 0,
    next_attempt_at  BIGINT,                        -- NULL once no longer pending
    retry_from       BIGINT NOT NULL,               -- the retry window counts from here
    created_at       BIGINT NOT NULL,
    updated_at       BIGINT NOT NULL,
    UNIQUE (event_id, endpoint_id)
);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (next_attempt_at) WHERE status = 'pending';

-- Every POST we made, for the merchant's delivery log.
CREATE TABLE webhook_delivery_attempts (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    delivery_id  TEXT NOT NULL REFERENCES webhook_deliveries (id),
    attempted_at BIGINT NOT NULL,
    status_code  BIGINT,                            -- NULL when no HTTP answer came
    latency_ms   BIGINT NOT NULL,
    error        TEXT                               -- timeout, connection refused, …
);
CREATE INDEX webhook_delivery_attempts_delivery ON webhook_delivery_attempts (delivery_id, id);
