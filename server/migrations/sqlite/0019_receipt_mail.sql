-- The shopper's language when they paid (for their receipt), and the receipt mail to
-- `customer_email`: sent once the session is paid (`receipt_mailed_at`), tried at most
-- five times (`receipt_mail_tries`), not before `receipt_mail_next` after a failure.
ALTER TABLE checkout_sessions ADD COLUMN locale TEXT;
ALTER TABLE checkout_sessions ADD COLUMN receipt_mailed_at INTEGER;
ALTER TABLE checkout_sessions ADD COLUMN receipt_mail_tries INTEGER NOT NULL DEFAULT 0;
ALTER TABLE checkout_sessions ADD COLUMN receipt_mail_next INTEGER;
-- Sessions paid before receipts were mailed get none now.
UPDATE checkout_sessions SET receipt_mailed_at = updated_at
    WHERE payment_status = 'paid' AND customer_email IS NOT NULL;
CREATE INDEX checkout_sessions_receipt_due ON checkout_sessions (receipt_mail_next)
    WHERE payment_status = 'paid' AND customer_email IS NOT NULL AND receipt_mailed_at IS NULL;
