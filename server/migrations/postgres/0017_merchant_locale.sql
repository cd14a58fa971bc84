-- The language a merchant's payment page speaks when the shopper's request names none
-- Malipo speaks (no `?lang=`, no cookie, no matching Accept-Language): `en`, `sw`, `fr`.
ALTER TABLE merchants ADD COLUMN default_locale TEXT NOT NULL DEFAULT 'en';
