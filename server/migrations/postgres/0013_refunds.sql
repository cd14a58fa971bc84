-- Refunds of a payment (an attempt that succeeded), whole or in part, on its own rail.
-- The amounts of a payment's refunds that did not fail never add up to more than it
-- paid: each is opened under the attempt's lock (see `Store::open_refund`).
CREATE TABLE refunds (
    id                  TEXT PRIMARY KEY,         -- re_…
    attempt_id          TEXT NOT NULL REFERENCES payment_attempts (id),
    session_id          TEXT NOT NULL REFERENCES checkout_sessions (id),
    amount_minor        BIGINT NOT NULL CHECK (amount_minor > 0),
    currency            TEXT NOT NULL CHECK (length(currency) = 3),
    status              TEXT NOT NULL CHECK (status IN ('pending', 'succeeded', 'failed')),
    reason              TEXT,
    operator_refund_id  TEXT,                     -- the operator's id for the refund
    failure_code        TEXT,                     -- our stable code, or the operator's
    idempotency_key     TEXT,                     -- the API request's, so a retry is this refund
    created_at          BIGINT NOT NULL,
    updated_at          BIGINT NOT NULL
);
CREATE INDEX refunds_attempt ON refunds (attempt_id, created_at);
CREATE INDEX refunds_pending ON refunds (updated_at) WHERE status = 'pending';
CREATE UNIQUE INDEX refunds_idempotency ON refunds (attempt_id, idempotency_key)
    WHERE idempotency_key IS NOT NULL;
