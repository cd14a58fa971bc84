-- A shopper's "I paid, here is the code": each check of an M-PESA receipt with the
-- operator (Transaction Status), for the attempt it would settle. Nothing is believed
-- until the operator's answer matches the attempt (status, amount, shortcode, payer).
CREATE TABLE rescues (
    id          TEXT PRIMARY KEY,
    session_id  TEXT NOT NULL REFERENCES checkout_sessions(id),
    attempt_id  TEXT NOT NULL REFERENCES payment_attempts(id),
    rail        TEXT NOT NULL,
    receipt     TEXT NOT NULL,
    -- checking | confirmed | refused
    status      TEXT NOT NULL,
    detail      TEXT,
    created_at  INTEGER NOT NULL,
    decided_at  INTEGER
);
CREATE INDEX rescues_by_session ON rescues (session_id, created_at);
