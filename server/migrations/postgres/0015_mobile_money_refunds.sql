-- Refunds on the mobile-money rails: the sandbox operators take refunds (Daraja's
-- reversals, MTN's refunds, Airtel's, Vodacom's) as requests of their own, tied to the
-- payment they return. `refund_of` is that payment's request id; NULL for a push.
ALTER TABLE sandbox_requests ADD COLUMN refund_of TEXT;
CREATE INDEX sandbox_requests_refund_of ON sandbox_requests (operator, refund_of);

-- Mass actions may now refund (the dashboard's bulk refund).
ALTER TABLE mass_actions DROP CONSTRAINT mass_actions_kind_check;
ALTER TABLE mass_actions ADD CONSTRAINT mass_actions_kind_check
    CHECK (kind IN ('resend_webhooks', 'refund'));
-- The runner's last sign of life: a bulk refund whose runner died is taken up again.
ALTER TABLE mass_actions ADD COLUMN claimed_at BIGINT;

-- How many times a refund was sent: an operator's refusal posted later decides only a
-- refund never sent again (a refusal may be of a resend while the first went through).
ALTER TABLE refunds ADD COLUMN sends BIGINT NOT NULL DEFAULT 1;

-- The merchant's logo on its hosted page (set in the dashboard): a small PNG, JPEG or
-- WebP, base64 in the row (at most 16 KiB of image), served from this origin by its
-- digest, so a new logo is a new URL and browsers may keep one for good.
CREATE TABLE merchant_logos (
    merchant_id   TEXT PRIMARY KEY REFERENCES merchants (id),
    digest        TEXT NOT NULL UNIQUE,            -- hex SHA-256 of the bytes (first 32)
    content_type  TEXT NOT NULL CHECK (content_type IN ('image/png', 'image/jpeg', 'image/webp')),
    data          TEXT NOT NULL,                   -- base64 of the image
    updated_at    BIGINT NOT NULL
);
