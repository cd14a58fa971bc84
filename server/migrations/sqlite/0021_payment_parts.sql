-- Paying a session in parts (above a wallet's per-payment limit, several phones, or a
-- Paybill payment of another amount): what the session has received so far, in its own
-- currency; what each payment counts towards it (its price share: NULL for payments
-- made before parts, which each paid the whole price); and what a payment brought
-- beyond the price, which the merchant owes back.
ALTER TABLE checkout_sessions ADD COLUMN amount_received_minor INTEGER NOT NULL DEFAULT 0;
ALTER TABLE payment_attempts ADD COLUMN credit_minor INTEGER;
ALTER TABLE payment_attempts ADD COLUMN overpaid_minor INTEGER;
UPDATE checkout_sessions SET amount_received_minor = amount_minor WHERE payment_status = 'paid';
