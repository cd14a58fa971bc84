-- Paying in another currency than the price.
-- The exchange rates a merchant maintains (`malipo rates set`, `malipo rates import`), per
-- mode: one `base` buys `rate` of `quote` (the pair base/quote), the decimal exactly as
-- the merchant wrote it. They win over any rates provider.
CREATE TABLE fx_rates (
    merchant_id TEXT NOT NULL REFERENCES merchants (id),
    mode        TEXT NOT NULL CHECK (mode IN ('test', 'live')),
    base        TEXT NOT NULL,
    quote       TEXT NOT NULL,
    rate        TEXT NOT NULL,
    updated_at  BIGINT NOT NULL,
    PRIMARY KEY (merchant_id, mode, base, quote)
);
-- Whether a merchant's sessions may be paid on rails in another currency (at a quote),
-- per mode; 0: only rails that take the session's own currency are offered.
ALTER TABLE merchants ADD COLUMN conversion_test BIGINT NOT NULL DEFAULT 1;
ALTER TABLE merchants ADD COLUMN conversion_live BIGINT NOT NULL DEFAULT 1;
-- The quote an attempt pays at, when its rail charges another currency than the
-- session's price (`amount_minor`/`currency` are then the quote's target): a JSON object
-- with both amounts, the rate, its source and the quote's expiry.
ALTER TABLE payment_attempts ADD COLUMN quote TEXT;
