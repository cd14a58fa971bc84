-- Malipo's first schema (SQLite). Mirrors migrations/postgres/0001_init.sql exactly in
-- meaning: same tables, columns, constraints and indexes.
-- Times are unix milliseconds (UTC). Money is integer minor units + ISO 4217 code.

-- A business that sells through Malipo.
CREATE TABLE merchants (
    id          TEXT PRIMARY KEY,                 -- mer_…
    name        TEXT NOT NULL CHECK (length(name) BETWEEN 1 AND 100),
    created_at  BIGINT NOT NULL
);

-- API keys. Secret keys are stored only as SHA-256 hashes; publishable keys are public.
CREATE TABLE api_keys (
    id           TEXT PRIMARY KEY,                -- key_…
    merchant_id  TEXT NOT NULL REFERENCES merchants (id),
    kind         TEXT NOT NULL CHECK (kind IN ('secret', 'publishable')),
    mode         TEXT NOT NULL CHECK (mode IN ('test', 'live')),
    masked       TEXT NOT NULL,                   -- sk_test_…a1b2, safe to list
    secret_hash  TEXT UNIQUE,                     -- hex SHA-256, secret keys only
    token        TEXT UNIQUE,                     -- the key itself, publishable keys only
    created_at   BIGINT NOT NULL,
    revoked_at   BIGINT,
    CHECK ((kind = 'secret' AND secret_hash IS NOT NULL AND token IS NULL)
        OR (kind = 'publishable' AND token IS NOT NULL AND secret_hash IS NULL))
);
CREATE INDEX api_keys_merchant ON api_keys (merchant_id);

-- What a shopper is asked to pay, created by the merchant's server.
CREATE TABLE checkout_sessions (
    id              TEXT PRIMARY KEY,             -- cs_…
    merchant_id     TEXT NOT NULL REFERENCES merchants (id),
    mode            TEXT NOT NULL CHECK (mode IN ('test', 'live')),
    amount_minor    BIGINT NOT NULL CHECK (amount_minor > 0),
    currency        TEXT NOT NULL CHECK (length(currency) = 3),
    reference       TEXT NOT NULL,                -- the merchant's booking reference
    description     TEXT NOT NULL,
    status          TEXT NOT NULL CHECK (status IN ('open', 'complete', 'expired')),
    payment_status  TEXT NOT NULL CHECK (payment_status IN ('unpaid', 'paid')),
    success_url     TEXT NOT NULL,
    cancel_url      TEXT NOT NULL,
    customer_phone  TEXT,
    customer_email  TEXT,
    metadata        TEXT NOT NULL DEFAULT '{}',   -- JSON object of strings
    expires_at      BIGINT NOT NULL,
    created_at      BIGINT NOT NULL,
    updated_at      BIGINT NOT NULL,
    CHECK ((status = 'complete') = (payment_status = 'paid'))
);
CREATE INDEX checkout_sessions_merchant ON checkout_sessions (merchant_id, created_at);
CREATE INDEX checkout_sessions_open_expiry ON checkout_sessions (expires_at) WHERE status = 'open';

-- One try at paying a session on one rail (an STK push, a card charge, …).
CREATE TABLE payment_attempts (
    id                   TEXT PRIMARY KEY,        -- pa_…
    session_id           TEXT NOT NULL REFERENCES checkout_sessions (id),
    rail                 TEXT NOT NULL,           -- mpesa, airtel, mtn_momo, …
    status               TEXT NOT NULL
        CHECK (status IN ('pending', 'succeeded', 'failed', 'cancelled', 'expired')),
    amount_minor         BIGINT NOT NULL CHECK (amount_minor > 0),
    currency             TEXT NOT NULL CHECK (length(currency) = 3),
    payer                TEXT,                    -- MSISDN in international form, digits only
    operator_request_id  TEXT,                    -- e.g. Daraja CheckoutRequestID
    operator_receipt     TEXT,                    -- e.g. MpesaReceiptNumber
    failure_code         TEXT,                    -- our stable code (insufficient_funds, …)
    failure_detail       TEXT,                    -- the operator's own code and words
    callback_token_hash  TEXT,                    -- SHA-256 of the per-attempt callback token
    next_poll_at         BIGINT,                  -- when the status poller looks next
    poll_count           BIGINT NOT NULL DEFAULT 0,
    created_at           BIGINT NOT NULL,
    updated_at           BIGINT NOT NULL,
    finalized_at         BIGINT,
    UNIQUE (rail, operator_request_id),
    UNIQUE (rail, operator_receipt)
);
CREATE INDEX payment_attempts_session ON payment_attempts (session_id, created_at);
CREATE INDEX payment_attempts_due ON payment_attempts (next_poll_at) WHERE status = 'pending';

-- Append-only log of everything that happened to a session and its attempts.
CREATE TABLE payment_events (
    seq          INTEGER PRIMARY KEY AUTOINCREMENT,
    session_id   TEXT NOT NULL REFERENCES checkout_sessions (id),
    attempt_id   TEXT REFERENCES payment_attempts (id),
    kind         TEXT NOT NULL,                   -- session.created, attempt.succeeded, …
    from_status  TEXT,
    to_status    TEXT,
    detail       TEXT NOT NULL DEFAULT '{}',      -- JSON
    created_at   BIGINT NOT NULL
);
CREATE INDEX payment_events_session ON payment_events (session_id, seq);

-- The log is evidence: nothing may rewrite or erase it.
CREATE TRIGGER payment_events_no_update BEFORE UPDATE ON payment_events
BEGIN
    SELECT RAISE(ABORT, 'payment_events is append-only');
END;
CREATE TRIGGER payment_events_no_delete BEFORE DELETE ON payment_events
BEGIN
    SELECT RAISE(ABORT, 'payment_events is append-only');
END;
