-- What a card attempt keeps between the shopper's steps (the processor's session id,
-- the hosted page's success indicator, the card's brand and last four digits once
-- paid): a JSON object. Never a card number: Malipo never receives one.
ALTER TABLE payment_attempts ADD COLUMN rail_data TEXT;
