-- A person looked at an attempt left for reconciliation (an unknown outcome, a duplicate
-- payment) and said what they found: `malipo reconcile --resolve`. The attempt's status
-- is not changed by it (only the operator's word changes that); it leaves the to-do list.
ALTER TABLE payment_attempts ADD COLUMN reconciled_at BIGINT;
ALTER TABLE payment_attempts ADD COLUMN reconciled_note TEXT;
