-- The sandbox Daraja's own state: every STK push it accepted, what the handset (or a
-- scripted test number) answered, and the callbacks still to deliver. Kept in the
-- database so a pending push survives a restart, as it would at Safaricom.
CREATE TABLE sandbox_daraja_pushes (
    checkout_request_id  TEXT PRIMARY KEY,
    merchant_request_id  TEXT NOT NULL,
    short_code           TEXT NOT NULL,
    amount               BIGINT NOT NULL,
    phone                TEXT NOT NULL,
    account_reference    TEXT NOT NULL,
    transaction_desc     TEXT NOT NULL,
    callback_url         TEXT NOT NULL,
    state                TEXT NOT NULL CHECK (state IN ('pending', 'decided')),
    result_code          TEXT,
    result_desc          TEXT,
    receipt              TEXT UNIQUE,
    auto_result_code     TEXT,                    -- scripted outcome for test numbers
    auto_at              BIGINT,                  -- when the scripted outcome happens
    callbacks_due        BIGINT NOT NULL,         -- 1 normally, 0 lost, 2 duplicated
    callbacks_sent       BIGINT NOT NULL DEFAULT 0,
    callback_at          BIGINT,                  -- when the next callback goes out
    query_hidden_until   BIGINT,                  -- the query says "processing" until then
    created_at           BIGINT NOT NULL,
    decided_at           BIGINT
);
CREATE INDEX sandbox_daraja_pushes_phone ON sandbox_daraja_pushes (phone, state);
CREATE INDEX sandbox_daraja_pushes_auto ON sandbox_daraja_pushes (auto_at) WHERE state = 'pending';
CREATE INDEX sandbox_daraja_pushes_callback ON sandbox_daraja_pushes (callback_at) WHERE callback_at IS NOT NULL;
