-- Which rails may take a payment. On a merchant, per mode: the rails it switched on
-- (`POST /v1/account` with that mode's key), a JSON array of rail ids (`["mpesa",
-- "airtel"]`); NULL: every rail this server has on in that mode. On a session: the
-- rails it may be paid with, fixed when it is created (its `payment_method_types`,
-- narrowed to the merchant's list for its mode); NULL: every rail that takes its
-- currency and amount.
ALTER TABLE merchants ADD COLUMN rails_test TEXT;
ALTER TABLE merchants ADD COLUMN rails_live TEXT;
ALTER TABLE checkout_sessions ADD COLUMN payment_method_types TEXT;
