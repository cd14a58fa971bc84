-- A merchant's own live credentials for a rail, saved on the dashboard: every field of
-- the rail's settings as JSON, sealed under the master key (the row's place is the
-- associated data, so a value moved to another row does not open). `summary` is all a
-- page may show again: no secret, identifiers cut to their last characters.
CREATE TABLE merchant_rail_credentials (
    merchant_id  TEXT NOT NULL REFERENCES merchants (id),
    rail         TEXT NOT NULL,
    sealed       TEXT NOT NULL,
    summary      TEXT NOT NULL,
    set_by       TEXT NOT NULL,                   -- the person's email
    updated_at   BIGINT NOT NULL,
    PRIMARY KEY (merchant_id, rail)
);
