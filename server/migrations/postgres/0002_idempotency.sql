-- Idempotency keys of the merchant API (Stripe's semantics): the first response to a
-- key is stored and replayed for the same request; the same key with a different request
-- is refused; a key whose request is still running answers "in use". Kept ≥ 7 days.
CREATE TABLE idempotency_keys (
    merchant_id      TEXT NOT NULL REFERENCES merchants (id),
    mode             TEXT NOT NULL CHECK (mode IN ('test', 'live')),
    idem_key         TEXT NOT NULL CHECK (length(idem_key) BETWEEN 1 AND 255),
    request_hash     TEXT NOT NULL,             -- SHA-256 of method, path and canonical body
    state            TEXT NOT NULL CHECK (state IN ('in_flight', 'done')),
    response_status  BIGINT,
    response_body    TEXT,
    locked_until     BIGINT NOT NULL,           -- an in-flight claim older than this was abandoned
    created_at       BIGINT NOT NULL,
    PRIMARY KEY (merchant_id, mode, idem_key)
);
CREATE INDEX idempotency_keys_created ON idempotency_keys (created_at);
