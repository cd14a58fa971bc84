-- Every sandbox operator's requests in one table (the sandbox Daraja's STK pushes, MTN
-- MoMo's requests to pay, …): what the handset (or a scripted test number) answered and
-- the callbacks still to deliver. Kept in the database so a pending request survives a
-- restart, as it would at the operator. What only one operator has (Daraja's
-- MerchantRequestID, MTN's externalId) is in `wire`, a JSON object.
CREATE TABLE sandbox_requests (
    operator             TEXT NOT NULL,           -- the rail: mpesa, mtn_momo, …
    id                   TEXT NOT NULL,           -- the operator's id for the request
    phone                TEXT NOT NULL,           -- international digits
    amount               BIGINT NOT NULL,         -- minor units of currency
    currency             TEXT NOT NULL,
    payee                TEXT NOT NULL,           -- whom the prompt says is paid
    reference            TEXT NOT NULL,           -- the account or note the prompt shows
    callback_url         TEXT,                    -- NULL: no callback is ever sent
    state                TEXT NOT NULL CHECK (state IN ('pending', 'decided')),
    result_code          TEXT,
    result_desc          TEXT,
    receipt              TEXT,
    auto_result_code     TEXT,                    -- scripted outcome for test numbers
    auto_at              BIGINT,                  -- when the scripted outcome happens
    callbacks_due        BIGINT NOT NULL,         -- 1 normally, 0 lost, 2 duplicated
    callbacks_sent       BIGINT NOT NULL DEFAULT 0,
    callback_at          BIGINT,                  -- when the next callback goes out
    query_hidden_until   BIGINT,                  -- the query says "processing" until then
    created_at           BIGINT NOT NULL,
    decided_at           BIGINT,
    wire                 TEXT NOT NULL DEFAULT '{}',
    PRIMARY KEY (operator, id),
    UNIQUE (operator, receipt)
);
CREATE INDEX sandbox_requests_phone ON sandbox_requests (phone, state);
CREATE INDEX sandbox_requests_auto ON sandbox_requests (auto_at) WHERE state = 'pending';
CREATE INDEX sandbox_requests_callback ON sandbox_requests (callback_at) WHERE callback_at IS NOT NULL;

-- Daraja counted whole shillings; the table counts cents.
INSERT INTO sandbox_requests (operator, id, phone, amount, currency, payee, reference,
    callback_url, state, result_code, result_desc, receipt, auto_result_code, auto_at,
    callbacks_due, callbacks_sent, callback_at, query_hidden_until, created_at, decided_at, wire)
SELECT 'mpesa', checkout_request_id, phone, amount * 100, 'KES', transaction_desc,
    account_reference, callback_url, state, result_code, result_desc, receipt,
    auto_result_code, auto_at, callbacks_due, callbacks_sent, callback_at,
    query_hidden_until, created_at, decided_at,
    json_build_object('merchant_request_id', merchant_request_id, 'short_code', short_code)::text
FROM sandbox_daraja_pushes;
DROP TABLE sandbox_daraja_pushes;
