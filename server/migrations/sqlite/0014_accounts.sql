-- The merchant's dashboard: people, their sign-in sessions, the single-use links mailed
-- to them, two-factor recovery codes, failed sign-ins (for throttling), the audit log,
-- and the sandbox mailbox. Times are unix milliseconds.

-- A person who signs in to the dashboard. The email is stored lower-cased; it is the
-- only address any mail for this person ever goes to.
CREATE TABLE users (
    id                  TEXT PRIMARY KEY,         -- usr_…
    email               TEXT NOT NULL UNIQUE,
    password_hash       TEXT NOT NULL,            -- argon2id PHC string
    email_verified_at   BIGINT,
    totp_secret         TEXT,                     -- sealed; set once 2FA is on
    totp_pending        TEXT,                     -- sealed; shown as a QR code, not yet confirmed
    totp_last_step      BIGINT,                   -- the last accepted time step (no replays)
    created_at          BIGINT NOT NULL,
    updated_at          BIGINT NOT NULL
);

-- Who may act for which merchant, and how.
CREATE TABLE memberships (
    merchant_id  TEXT NOT NULL REFERENCES merchants (id),
    user_id      TEXT NOT NULL REFERENCES users (id),
    role         TEXT NOT NULL CHECK (role IN ('owner', 'admin', 'developer', 'viewer')),
    created_at   BIGINT NOT NULL,
    PRIMARY KEY (merchant_id, user_id)
);
CREATE INDEX memberships_user ON memberships (user_id);

-- Sign-in sessions, by the SHA-256 of the cookie's random token (the token itself is
-- never stored). `stage` is 'password' after the password when a second factor is
-- still owed, and 'full' once signed in.
CREATE TABLE user_sessions (
    token_hash    TEXT PRIMARY KEY,
    user_id       TEXT NOT NULL REFERENCES users (id),
    merchant_id   TEXT NOT NULL REFERENCES merchants (id),
    mode          TEXT NOT NULL CHECK (mode IN ('test', 'live')),
    stage         TEXT NOT NULL CHECK (stage IN ('password', 'full')),
    ip            TEXT,
    user_agent    TEXT,
    created_at    BIGINT NOT NULL,
    last_seen_at  BIGINT NOT NULL,
    reauth_at     BIGINT NOT NULL,
    expires_at    BIGINT NOT NULL,
    revoked_at    BIGINT
);
CREATE INDEX user_sessions_user ON user_sessions (user_id);

-- Single-use links mailed to a person (verify the address, reset the password, join a
-- team), by the SHA-256 of the token. `email` is the address it was sent to.
CREATE TABLE user_tokens (
    token_hash   TEXT PRIMARY KEY,
    purpose      TEXT NOT NULL CHECK (purpose IN ('verify_email', 'reset_password', 'invite')),
    user_id      TEXT REFERENCES users (id),
    email        TEXT NOT NULL,
    merchant_id  TEXT REFERENCES merchants (id),
    role         TEXT,
    created_by   TEXT,
    created_at   BIGINT NOT NULL,
    expires_at   BIGINT NOT NULL,
    used_at      BIGINT
);
CREATE INDEX user_tokens_user ON user_tokens (user_id, purpose);

-- Two-factor recovery codes, by their SHA-256; each works once.
CREATE TABLE recovery_codes (
    user_id    TEXT NOT NULL REFERENCES users (id),
    code_hash  TEXT NOT NULL,
    used_at    BIGINT,
    PRIMARY KEY (user_id, code_hash)
);

-- Failed sign-ins (and sign-ups, and second factors) by scope: 'account:{email}',
-- 'ip:{address}', 'signup:{address}'. Counted over a window to throttle guessing.
CREATE TABLE auth_failures (
    scope  TEXT NOT NULL,
    at     BIGINT NOT NULL
);
CREATE INDEX auth_failures_scope ON auth_failures (scope, at);

-- Every sensitive action: who, what, when, from where.
CREATE TABLE audit_log (
    id           TEXT PRIMARY KEY,                -- aud_…
    merchant_id  TEXT REFERENCES merchants (id),
    user_id      TEXT,
    actor        TEXT NOT NULL,                   -- the person's email at the time
    action       TEXT NOT NULL,
    detail       TEXT NOT NULL DEFAULT '',
    ip           TEXT,
    at           BIGINT NOT NULL
);
CREATE INDEX audit_log_merchant ON audit_log (merchant_id, at);

-- Mail a server without SMTP would have sent (test installs only: live mode refuses to
-- start without SMTP), shown on the sandbox mailbox page.
CREATE TABLE sandbox_mail (
    id          TEXT PRIMARY KEY,
    to_addr     TEXT NOT NULL,
    subject     TEXT NOT NULL,
    body        TEXT NOT NULL,
    created_at  BIGINT NOT NULL
);
CREATE INDEX sandbox_mail_created ON sandbox_mail (created_at);

-- Actions on many things at once (resend many webhooks), confirmed by a person, run
-- after a delay during which they can be cancelled. `status` moves scheduled → running
-- → done, or scheduled → cancelled; each move is a compare-and-swap.
CREATE TABLE mass_actions (
    id           TEXT PRIMARY KEY,                -- ma_…
    merchant_id  TEXT NOT NULL REFERENCES merchants (id),
    mode         TEXT NOT NULL CHECK (mode IN ('test', 'live')),
    kind         TEXT NOT NULL CHECK (kind IN ('resend_webhooks')),
    items        TEXT NOT NULL,                   -- JSON array of ids (events)
    item_count   BIGINT NOT NULL,
    actor        TEXT NOT NULL,                   -- the person's email
    status       TEXT NOT NULL CHECK (status IN ('scheduled', 'cancelled', 'running', 'done')),
    run_at       BIGINT NOT NULL,
    created_at   BIGINT NOT NULL,
    finished_at  BIGINT,
    outcome      TEXT
);
CREATE INDEX mass_actions_due ON mass_actions (run_at) WHERE status = 'scheduled';

-- What the hosted page shows of the merchant besides its name: how a stuck shopper
-- reaches them, and the brand colour.
ALTER TABLE merchants ADD COLUMN support_phone TEXT;
ALTER TABLE merchants ADD COLUMN support_email TEXT;
ALTER TABLE merchants ADD COLUMN support_whatsapp TEXT;
ALTER TABLE merchants ADD COLUMN brand_color TEXT;
