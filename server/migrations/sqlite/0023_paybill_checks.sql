-- A Pay Bill confirmation is checked with M-PESA (Transaction Status) before it settles
-- anything: a confirmation URL that leaked pays for nothing. `status` is verifying,
-- settling, settled, unmatched, refused (M-PESA said it has no such payment, or another
-- one), unverified (M-PESA could not be asked for a day: for a person) or unreadable;
-- `detail` says why; `checked_at` is when M-PESA was last asked (asked again while no
-- answer came); `misses` counts its answers that it has no completed payment with the
-- receipt (refused only after several, some minutes apart: M-PESA may lag).
ALTER TABLE paybill_payments ADD COLUMN status TEXT NOT NULL DEFAULT 'settled';
ALTER TABLE paybill_payments ADD COLUMN detail TEXT;
ALTER TABLE paybill_payments ADD COLUMN checked_at INTEGER;
ALTER TABLE paybill_payments ADD COLUMN misses INTEGER NOT NULL DEFAULT 0;
UPDATE paybill_payments SET status = 'unmatched' WHERE attempt_id IS NULL;
UPDATE paybill_payments SET status = 'unreadable' WHERE receipt LIKE 'unreadable:%';
CREATE INDEX paybill_payments_verifying ON paybill_payments (checked_at) WHERE status = 'verifying';
