-- Refunds on the mobile-money rails: the sandbox operators take refunds (Daraja's
-- reversals, MTN's refunds, Airtel's, Vodacom's) as requests of their own, tied to the
-- payment they return. `refund_of` is that payment's request id; NULL for a push.
ALTER TABLE sandbox_requests ADD COLUMN refund_of TEXT;
CREATE INDEX sandbox_requests_refund_of ON sandbox_requests (operator, refund_of);
