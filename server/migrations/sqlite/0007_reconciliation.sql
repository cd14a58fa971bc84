-- Reconciliation (SQLite; mirrors postgres/0007_reconciliation.sql).
--
-- An attempt whose outcome we could not learn is `unknown`, never "failed": the shopper
-- may have paid. An operator's success is authoritative even after we closed the attempt
-- (`late_from` keeps what it was), and a second payment for an already-paid session is
-- recorded as a `duplicate` the merchant must refund. Every raw callback is kept.
--
-- SQLite cannot change a CHECK constraint in place, so payment_attempts is rebuilt
-- (https://sqlite.org/lang_altertable.html#otheralter) in the migration's own
-- transaction, where `foreign_keys = OFF` cannot be set. Renaming the old table aside
-- rewrites payment_events' REFERENCES to follow it, so payment_events (its only child)
-- is rebuilt too, referencing the new table: every step keeps every reference valid.
-- The test in store/mod.rs migrates a database holding payments.
DROP INDEX payment_attempts_session;
DROP INDEX payment_attempts_due;
DROP INDEX payment_attempts_one_pending;
ALTER TABLE payment_attempts RENAME TO payment_attempts_old;
CREATE TABLE payment_attempts (
    id                   TEXT PRIMARY KEY,        -- pa_…
    session_id           TEXT NOT NULL REFERENCES checkout_sessions (id),
    rail                 TEXT NOT NULL,           -- mpesa, airtel, mtn_momo, …
    status               TEXT NOT NULL
        CHECK (status IN ('pending', 'unknown', 'succeeded', 'failed', 'cancelled', 'expired')),
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
    late_from            TEXT,                    -- status before a late success
    duplicate            BIGINT NOT NULL DEFAULT 0, -- 1: paid a session already paid: refund
    UNIQUE (rail, operator_request_id),
    UNIQUE (rail, operator_receipt)
);
INSERT INTO payment_attempts (id, session_id, rail, status, amount_minor, currency, payer,
    operator_request_id, operator_receipt, failure_code, failure_detail, callback_token_hash,
    next_poll_at, poll_count, created_at, updated_at, finalized_at)
SELECT id, session_id, rail, status, amount_minor, currency, payer, operator_request_id,
    operator_receipt, failure_code, failure_detail, callback_token_hash, next_poll_at,
    poll_count, created_at, updated_at, finalized_at
FROM payment_attempts_old;

CREATE TABLE payment_events_new (
    seq          INTEGER PRIMARY KEY AUTOINCREMENT,
    session_id   TEXT NOT NULL REFERENCES checkout_sessions (id),
    attempt_id   TEXT REFERENCES payment_attempts (id),
    kind         TEXT NOT NULL,                   -- session.created, attempt.succeeded, …
    from_status  TEXT,
    to_status    TEXT,
    detail       TEXT NOT NULL DEFAULT '{}',      -- JSON
    created_at   BIGINT NOT NULL
);
INSERT INTO payment_events_new (seq, session_id, attempt_id, kind, from_status, to_status,
    detail, created_at)
SELECT seq, session_id, attempt_id, kind, from_status, to_status, detail, created_at
FROM payment_events ORDER BY seq;
DROP TABLE payment_events;
ALTER TABLE payment_events_new RENAME TO payment_events;
CREATE INDEX payment_events_session ON payment_events (session_id, seq);
CREATE TRIGGER payment_events_no_update BEFORE UPDATE ON payment_events
BEGIN
    SELECT RAISE(ABORT, 'payment_events is append-only');
END;
CREATE TRIGGER payment_events_no_delete BEFORE DELETE ON payment_events
BEGIN
    SELECT RAISE(ABORT, 'payment_events is append-only');
END;
DROP TABLE payment_attempts_old;

CREATE INDEX payment_attempts_session ON payment_attempts (session_id, created_at);
CREATE INDEX payment_attempts_due ON payment_attempts (next_poll_at)
    WHERE status IN ('pending', 'unknown');
CREATE UNIQUE INDEX payment_attempts_one_pending ON payment_attempts (session_id)
    WHERE status = 'pending';
-- Attempts a human must look at: unknown outcomes and duplicate payments.
CREATE INDEX payment_attempts_reconcile ON payment_attempts (created_at)
    WHERE status = 'unknown' OR duplicate = 1;

-- Every callback body an operator sent for an attempt, exactly as received.
CREATE TABLE operator_callbacks (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    rail         TEXT NOT NULL,
    attempt_id   TEXT NOT NULL REFERENCES payment_attempts (id),
    body         TEXT NOT NULL,
    received_at  BIGINT NOT NULL
);
CREATE INDEX operator_callbacks_attempt ON operator_callbacks (attempt_id, id);
CREATE TRIGGER operator_callbacks_no_update BEFORE UPDATE ON operator_callbacks
BEGIN
    SELECT RAISE(ABORT, 'operator_callbacks is append-only');
END;
CREATE TRIGGER operator_callbacks_no_delete BEFORE DELETE ON operator_callbacks
BEGIN
    SELECT RAISE(ABORT, 'operator_callbacks is append-only');
END;

-- Prompts sent to a number, across sessions and merchants: the push-bombing limit.
CREATE INDEX payment_attempts_payer ON payment_attempts (payer, created_at);

-- Random per-install secrets, made on first start (e.g. the key behind pay-form tokens,
-- the sandbox Daraja's consumer secret), so no two installs share one and none is
-- published.
CREATE TABLE instance_secrets (
    name        TEXT PRIMARY KEY,
    value       TEXT NOT NULL,
    created_at  BIGINT NOT NULL
);

-- Who may frame checkout pages is decided per mode: a test key must not change who may
-- frame live checkouts. Existing lists keep working in both modes.
ALTER TABLE merchants ADD COLUMN embed_origins_live TEXT NOT NULL DEFAULT '[]';
UPDATE merchants SET embed_origins_live = embed_origins;

-- The sandbox merchant site's own merchant, found by this flag and never by name (a real
-- merchant may be called anything).
ALTER TABLE merchants ADD COLUMN sandbox BIGINT NOT NULL DEFAULT 0;

-- Who holds an in-flight idempotency claim: only the holder may finish, abandon or
-- extend it, so a request that outlives its lease cannot overwrite its successor's.
ALTER TABLE idempotency_keys ADD COLUMN claim_id TEXT;
