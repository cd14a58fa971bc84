-- At most one pending attempt per session: a double-tapped Pay (or two tabs) can never
-- send two STK pushes for one checkout.
CREATE UNIQUE INDEX payment_attempts_one_pending ON payment_attempts (session_id) WHERE status = 'pending';
