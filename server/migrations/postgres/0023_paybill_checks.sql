-- A Pay Bill confirmation is checked with M-PESA (Transaction Status) before it settles
-- anything: a confirmation URL that leaked pays for nothing. `status` is verifying,
-- settling, settled, unmatched, refused (M-PESA named another payment, or did not confirm
-- it in a day), unverified (M-PESA could not be asked for a day) or unreadable; `detail`
-- says why; `checked_at` is when M-PESA was last asked; `misses` counts its answers that
-- did not confirm it; `asking_since` is when this round of asking began (when it came,
-- or when a person asked for it to be checked again).
ALTER TABLE paybill_payments ADD COLUMN status TEXT NOT NULL DEFAULT 'settled';
ALTER TABLE paybill_payments ADD COLUMN detail TEXT;
ALTER TABLE paybill_payments ADD COLUMN checked_at BIGINT;
ALTER TABLE paybill_payments ADD COLUMN misses INTEGER NOT NULL DEFAULT 0;
ALTER TABLE paybill_payments ADD COLUMN asking_since BIGINT;
UPDATE paybill_payments SET status = 'unmatched' WHERE attempt_id IS NULL;
UPDATE paybill_payments SET status = 'unreadable' WHERE receipt LIKE 'unreadable:%';
CREATE INDEX paybill_payments_verifying ON paybill_payments (checked_at) WHERE status = 'verifying';
