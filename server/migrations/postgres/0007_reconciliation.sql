-- Reconciliation (PostgreSQL; mirrors sqlite/0007_reconciliation.sql).
--
-- An attempt whose outcome we could not learn is `unknown`, never "failed": the shopper
-- may have paid. An operator's success is authoritative even after we closed the attempt
-- (`late_from` keeps what it was), and a second payment for an already-paid session is
-- recorded as a `duplicate` the merchant must refund. Every raw callback is kept.
ALTER TABLE payment_attempts DROP CONSTRAINT payment_attempts_status_check;
ALTER TABLE payment_attempts ADD CONSTRAINT payment_attempts_status_check
    CHECK (status IN ('pending', 'unknown', 'succeeded', 'failed', 'cancelled', 'expired'));
ALTER TABLE payment_attempts ADD COLUMN late_from TEXT;
ALTER TABLE payment_attempts ADD COLUMN duplicate BIGINT NOT NULL DEFAULT 0;
DROP INDEX payment_attempts_due;
CREATE INDEX payment_attempts_due ON payment_attempts (next_poll_at)
    WHERE status IN ('pending', 'unknown');
CREATE INDEX payment_attempts_reconcile ON payment_attempts (created_at)
    WHERE status = 'unknown' OR duplicate = 1;

CREATE TABLE operator_callbacks (
    id           BIGSERIAL PRIMARY KEY,
    rail         TEXT NOT NULL,
    attempt_id   TEXT NOT NULL REFERENCES payment_attempts (id),
    body         TEXT NOT NULL,
    received_at  BIGINT NOT NULL
);
CREATE INDEX operator_callbacks_attempt ON operator_callbacks (attempt_id, id);
CREATE FUNCTION operator_callbacks_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'operator_callbacks is append-only';
END;
$$;
CREATE TRIGGER operator_callbacks_no_update BEFORE UPDATE OR DELETE ON operator_callbacks
    FOR EACH ROW EXECUTE FUNCTION operator_callbacks_append_only();

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
