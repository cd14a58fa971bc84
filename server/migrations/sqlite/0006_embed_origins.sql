-- Origins allowed to frame a merchant's hosted checkout pages (CSP frame-ancestors):
-- a JSON array of "scheme://host[:port]" strings. Empty: nobody may frame them.
ALTER TABLE merchants ADD COLUMN embed_origins TEXT NOT NULL DEFAULT '[]';
