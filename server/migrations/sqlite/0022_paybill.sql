-- Paying from the wallet's own menu (M-PESA's Lipa na M-PESA → Pay Bill) when the
-- prompt cannot reach the phone: a short account number per session, given out when
-- the page first offers it, and every payment the operator reported to the business
-- number, kept as it came (once per receipt), matched to a session or not.
ALTER TABLE checkout_sessions ADD COLUMN pay_code TEXT;
CREATE UNIQUE INDEX checkout_sessions_pay_code ON checkout_sessions (pay_code);
CREATE TABLE paybill_payments (
    receipt      TEXT PRIMARY KEY,
    rail         TEXT NOT NULL,
    business     TEXT NOT NULL,
    account      TEXT NOT NULL,
    amount_minor INTEGER NOT NULL,
    currency     TEXT NOT NULL,
    payer        TEXT,
    session_id   TEXT REFERENCES checkout_sessions(id),
    attempt_id   TEXT REFERENCES payment_attempts(id),
    body         TEXT NOT NULL,
    received_at  INTEGER NOT NULL
);
CREATE INDEX paybill_payments_unmatched ON paybill_payments (received_at) WHERE attempt_id IS NULL;
