-- A Pay Bill confirmation is checked with M-PESA (Transaction Status) before it settles
-- anything: a confirmation URL that leaked pays for nothing. `status` is verifying,
-- settling, settled, unmatched, refused (M-PESA did not confirm it) or unreadable;
-- `detail` says why a payment was refused; `checked_at` is when M-PESA was last asked
-- (asked again while no answer came).
ALTER TABLE paybill_payments ADD COLUMN status TEXT NOT NULL DEFAULT 'settled';
ALTER TABLE paybill_payments ADD COLUMN detail TEXT;
ALTER TABLE paybill_payments ADD COLUMN checked_at BIGINT;
UPDATE paybill_payments SET status = 'unmatched' WHERE attempt_id IS NULL;
UPDATE paybill_payments SET status = 'unreadable' WHERE receipt LIKE 'unreadable:%';
CREATE INDEX paybill_payments_verifying ON paybill_payments (checked_at) WHERE status = 'verifying';
