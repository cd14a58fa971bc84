-- A travel booking's trip (`line_items`, `travelers`), as JSON: shown on the page and
-- returned with the session, its payment and their webhooks. NULL when the merchant
-- sent none.
ALTER TABLE checkout_sessions ADD COLUMN travel TEXT;
