//! The one store everything uses: SQLite (a file, by default) or PostgreSQL, picked by
//! the database URL's scheme.
//!
//! Both backends go through sqlx's `Any` driver with one set of SQL: `$N` placeholders,
//! `BIGINT` times in unix milliseconds and `TEXT` ids mean the same on both. Only the
//! migrations differ (`migrations/sqlite`, `migrations/postgres`), and the same test
//! suite runs against both (`tests/store.rs`).
//!
//! State changes are conditional updates (`… WHERE status = 'pending'`) made in the same
//! transaction as the event that records them, so two racing writers cannot both win
//! and no change goes unrecorded.

mod accounts;
mod attempts;
mod credentials;
mod dashboard;
mod fx;
mod idempotency;
mod merchants;
mod outbox;
mod paybill;
mod recent;
mod refunds;
mod rescues;
mod sessions;
mod webhooks;

pub use accounts::{
    AuditEntry, MassAction, Member, NewUserSession, PendingInvite, SandboxMail, SessionListing,
    SignedIn, TeamChange, TokenPurpose, TokenRecord, UserRecord,
};
pub use attempts::{
    AttemptCaps, AttemptOutcome, AttemptRecord, AttemptStatus, Credited, Inserted, NewAttempt,
    Reconciled,
};
pub use credentials::SavedCredentials;
pub use dashboard::{ListStatus, PaymentFilter, PaymentRow};
pub use fx::RateRecord;
pub use idempotency::{IdempotencyBegin, KeyScope};
pub use merchants::{ApiKeyRecord, MerchantProfile, MerchantRecord, NewApiKey};
pub use outbox::{
    DeliveryAttempt, DeliveryNext, DeliveryRecord, DeliveryStatus, DueDelivery, EventFilter,
    StoredEvent,
};
pub use paybill::{PaybillClosed, PaybillRecorded, normalise_code};
pub use refunds::{OpenedRefund, RefundRecord, RefundStatus};
pub use rescues::RescueRecord;
pub use sessions::{Expiry, NewSession, PaymentStatus, ReceiptDue, SessionRecord, SessionStatus};
pub use webhooks::EndpointRecord;

use secrecy::{ExposeSecret, SecretString};
use sqlx::{
    AnyPool, Row,
    any::{AnyPoolOptions, AnyRow},
    migrate::Migrator,
};
use std::time::Duration;

use crate::sealing::MasterKey;

/// Creates an empty database named `{prefix}_{random}` on the PostgreSQL server at
/// `admin` (a URL whose user may create databases) and returns its name and its URL:
/// `admin` with the database swapped and its options kept. For throwaway databases
/// (the tests', the benchmark's); `prefix` is ours, never a caller's.
pub async fn create_postgres_database(
    admin: &str,
    prefix: &str,
) -> Result<(String, String), sqlx::Error> {
    use sqlx::Connection;
    sqlx::any::install_default_drivers();
    let mut conn = sqlx::AnyConnection::connect(admin).await?;
    let name = format!(
        "{prefix}_{}",
        crate::domain::ids::random_base62(12).to_lowercase()
    );
    let made = sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&mut conn)
        .await;
    let _ = conn.close().await;
    made?;
    let (base, query) = admin.split_once('?').unwrap_or((admin, ""));
    let base = base.rsplit_once('/').map_or(base, |(b, _)| b);
    let url = if query.is_empty() {
        format!("{base}/{name}")
    } else {
        format!("{base}/{name}?{query}")
    };
    Ok((name, url))
}

/// What an instance secret is sealed to: its name.
fn instance_secret_place(name: &str) -> String {
    format!("instance_secrets:{name}")
}

static SQLITE_MIGRATIONS: Migrator = sqlx::migrate!("./migrations/sqlite");
static POSTGRES_MIGRATIONS: Migrator = sqlx::migrate!("./migrations/postgres");

/// Which database is behind the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    pub fn as_str(self) -> &'static str {
        match self {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
        }
    }

    /// From a database URL's scheme.
    pub fn from_url(url: &str) -> Option<Backend> {
        if url.starts_with("sqlite:") {
            Some(Backend::Sqlite)
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Some(Backend::Postgres)
        } else {
            None
        }
    }
}

/// What can go wrong in the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("unsupported database URL: use sqlite://PATH or postgres://…")]
    UnsupportedUrl,
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error("database migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// A row that our own code wrote does not parse back: a bug or a hand edit.
    #[error("corrupt {table} row {id}: {what}")]
    Corrupt {
        table: &'static str,
        id: String,
        what: String,
    },
    /// A secret at rest could not be sealed or opened (wrong master key, damage).
    #[error(transparent)]
    Sealing(#[from] crate::sealing::SealError),
}

impl StoreError {
    /// True when a unique constraint refused the write.
    pub fn is_unique_violation(&self) -> bool {
        matches!(self, StoreError::Database(sqlx::Error::Database(e)) if e.is_unique_violation())
    }
}

/// The database, behind a connection pool. Cheap to clone.
#[derive(Clone)]
pub struct Store {
    pool: AnyPool,
    backend: Backend,
    /// Where hosted pages live, for the session objects written into events.
    public_url: std::sync::Arc<str>,
    /// Seals the secrets kept in the database (see [`crate::sealing`]). A new random key
    /// until [`Store::set_master_key`] installs the configured one.
    master: MasterKey,
    /// PostgreSQL's URL, for the connection that listens to other instances' changes
    /// ([`Store::listen_changes`]); `None` on SQLite.
    listen_url: Option<std::sync::Arc<SecretString>>,
    /// Secret-key hash → merchant and mode, for a moment (see [`recent`]).
    keys: std::sync::Arc<recent::Recent<String, MerchantMode>>,
    /// Merchant and mode → the rails it switched on, for a moment.
    rails: std::sync::Arc<recent::Recent<MerchantMode, Option<Vec<crate::connectors::RailId>>>>,
}

type MerchantMode = (crate::domain::MerchantId, crate::domain::Mode);

/// The PostgreSQL channel instances tell each other of changed sessions on.
const CHANGES_CHANNEL: &str = "malipo_changes";

impl Store {
    /// A random per-install secret called `name`, made on first use and kept in the
    /// database, so every instance of this install agrees on it and no two installs
    /// share one.
    pub async fn instance_secret(&self, name: &str) -> Result<SecretString, StoreError> {
        let place = instance_secret_place(name);
        sqlx::query(
            "INSERT INTO instance_secrets (name, value, created_at) VALUES ($1, $2, $3) \
             ON CONFLICT (name) DO NOTHING",
        )
        .bind(name)
        .bind(
            self.master
                .seal(&place, &crate::domain::ids::random_base62(43))?,
        )
        .bind(crate::time::now_ms())
        .execute(&self.pool)
        .await?;
        let value: String = sqlx::query("SELECT value FROM instance_secrets WHERE name = $1")
            .bind(name)
            .fetch_one(&self.pool)
            .await?
            .try_get("value")?;
        Ok(SecretString::from(self.master.open(&place, &value)?))
    }

    /// Connects (creating a SQLite file if missing). Does not migrate.
    pub async fn connect(url: &SecretString, max_connections: u32) -> Result<Store, StoreError> {
        sqlx::any::install_default_drivers();
        let url = url.expose_secret();
        let backend = Backend::from_url(url).ok_or(StoreError::UnsupportedUrl)?;
        let mut options = AnyPoolOptions::new()
            .max_connections(max_connections.max(1))
            .acquire_timeout(Duration::from_secs(5));
        let url = match backend {
            Backend::Sqlite => {
                // A SQLite connection is a file this process opened: nothing between
                // can break it, so it is not pinged before each use (by default sqlx
                // does, a round trip to the connection's thread on every query).
                options = options.test_before_acquire(false);
                options = options.after_connect(|conn, _meta| {
                    Box::pin(async move {
                        // WAL: readers never block the writer. NORMAL is durable in WAL
                        // mode except against power loss of the last commits.
                        for pragma in [
                            "PRAGMA journal_mode = WAL",
                            "PRAGMA synchronous = NORMAL",
                            "PRAGMA foreign_keys = ON",
                            "PRAGMA busy_timeout = 5000",
                        ] {
                            sqlx::Executor::execute(&mut *conn, pragma).await?;
                        }
                        Ok(())
                    })
                });
                sqlite_url_with_create(url)
            }
            Backend::Postgres => url.to_owned(),
        };
        let pool = options.connect(&url).await?;
        let listen_url = (backend == Backend::Postgres)
            .then(|| std::sync::Arc::new(SecretString::from(url.clone())));
        Ok(Store {
            pool,
            backend,
            public_url: "".into(),
            master: MasterKey::generate()?.0,
            listen_url,
            keys: Default::default(),
            rails: Default::default(),
        })
    }

    /// Whether other instances may share this database (PostgreSQL), so changes are
    /// told to them ([`Store::notify_change`]).
    pub fn shared(&self) -> bool {
        self.listen_url.is_some()
    }

    /// Tells every instance listening ([`Store::listen_changes`]) `payload` (on SQLite,
    /// which one instance serves alone: nothing to do).
    pub async fn notify_change(&self, payload: &str) -> Result<(), StoreError> {
        if !self.shared() {
            return Ok(());
        }
        sqlx::query("SELECT 1 AS told FROM (SELECT pg_notify($1, $2)) AS n")
            .bind(CHANGES_CHANNEL)
            .bind(payload)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// A connection of its own listening to every instance's changes (PostgreSQL's
    /// `LISTEN`); `None` on SQLite.
    pub async fn listen_changes(&self) -> Result<Option<sqlx::postgres::PgListener>, StoreError> {
        let Some(url) = &self.listen_url else {
            return Ok(None);
        };
        let mut listener = sqlx::postgres::PgListener::connect(url.expose_secret()).await?;
        listener.listen(CHANGES_CHANNEL).await?;
        Ok(Some(listener))
    }

    /// A token for `id` in `purpose`, derived from the master key (see
    /// [`MasterKey::derive_token`]).
    pub fn derived_token(&self, purpose: &str, id: &str) -> String {
        self.master.derive_token(purpose, id)
    }

    /// Installs the master key the secrets at rest are sealed under, after checking that
    /// every sealed secret in the database was sealed with it; then seals any secret
    /// still stored in clear (written before sealing existed).
    pub async fn set_master_key(&mut self, key: MasterKey) -> Result<(), StoreError> {
        for (table, column) in [
            ("instance_secrets", "value"),
            ("webhook_endpoints", "secret"),
            ("webhook_endpoints", "previous_secret"),
            ("merchant_rail_credentials", "sealed"),
        ] {
            let other: Option<String> = sqlx::query_scalar(&format!(
                "SELECT {column} FROM {table} WHERE {column} LIKE 'sealed:v1:%' \
                 AND {column} NOT LIKE $1 LIMIT 1"
            ))
            .bind(format!("sealed:v1:{}:%", key.id()))
            .fetch_optional(&self.pool)
            .await?;
            if let Some(found) = other.as_deref().and_then(crate::sealing::sealed_with) {
                return Err(crate::sealing::SealError::WrongKey {
                    found: found.to_owned(),
                    configured: key.id().to_owned(),
                }
                .into());
            }
        }
        self.master = key;
        self.seal_plain_secrets().await?;
        Ok(())
    }

    /// Seals every secret still stored in clear; returns how many it sealed.
    async fn seal_plain_secrets(&self) -> Result<usize, StoreError> {
        let mut sealed = 0;
        let rows = sqlx::query(
            "SELECT name, value FROM instance_secrets WHERE value NOT LIKE 'sealed:v1:%'",
        )
        .fetch_all(&self.pool)
        .await?;
        for row in rows {
            let name: String = row.try_get("name")?;
            let value: String = row.try_get("value")?;
            let place = instance_secret_place(&name);
            sqlx::query("UPDATE instance_secrets SET value = $2 WHERE name = $1 AND value = $3")
                .bind(&name)
                .bind(self.master.seal(&place, &value)?)
                .bind(&value)
                .execute(&self.pool)
                .await?;
            sealed += 1;
        }
        let rows = sqlx::query(
            "SELECT id, secret, previous_secret FROM webhook_endpoints \
             WHERE secret NOT LIKE 'sealed:v1:%' \
             OR (previous_secret IS NOT NULL AND previous_secret NOT LIKE 'sealed:v1:%')",
        )
        .fetch_all(&self.pool)
        .await?;
        for row in rows {
            let id: String = row.try_get("id")?;
            let place = webhooks::endpoint_secret_place(&id);
            let secret: String = row.try_get("secret")?;
            let previous: Option<String> = row.try_get("previous_secret")?;
            let seal = |v: &str| -> Result<String, StoreError> {
                Ok(if crate::sealing::is_sealed(v) {
                    v.to_owned()
                } else {
                    self.master.seal(&place, v)?
                })
            };
            // Only if neither changed meanwhile (a rotation on another instance).
            sqlx::query(
                "UPDATE webhook_endpoints SET secret = $2, previous_secret = $3 \
                 WHERE id = $1 AND secret = $4 AND previous_secret IS NOT DISTINCT FROM $5",
            )
            .bind(&id)
            .bind(seal(&secret)?)
            .bind(previous.as_deref().map(seal).transpose()?)
            .bind(&secret)
            .bind(previous.as_deref())
            .execute(&self.pool)
            .await?;
            sealed += 1;
        }
        if sealed > 0 {
            tracing::info!(
                sealed,
                key = self.master.id(),
                "sealed secrets stored in clear"
            );
        }
        Ok(sealed)
    }

    /// Sets the public URL that session objects inside events link to.
    pub fn set_public_url(&mut self, public_url: &str) {
        self.public_url = public_url.into();
    }

    /// Applies any migration not yet applied, for this backend.
    pub async fn migrate(&self) -> Result<(), StoreError> {
        match self.backend {
            Backend::Sqlite => SQLITE_MIGRATIONS.run(&self.pool).await?,
            Backend::Postgres => POSTGRES_MIGRATIONS.run(&self.pool).await?,
        }
        Ok(())
    }

    /// Round-trips to the database (for `/readyz`).
    pub async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    /// Takes a connection from the pool and gives it back (how long that waits is the
    /// pool's pressure); returns the pool's size and idle connections after.
    pub async fn pool_sample(&self) -> Result<(u32, usize), StoreError> {
        drop(self.pool.acquire().await?);
        Ok((self.pool.size(), self.pool.num_idle()))
    }

    /// Whether every connection the pool may open is open and in use.
    pub fn pool_saturated(&self) -> bool {
        self.pool.num_idle() == 0 && self.pool.size() >= self.pool.options().get_max_connections()
    }

    /// Webhook deliveries of `mode` waiting to be posted.
    pub async fn webhook_queue_depth(&self, mode: crate::domain::Mode) -> Result<i64, StoreError> {
        let row = sqlx::query(
            "SELECT COUNT(*) AS n FROM webhook_deliveries d JOIN events e ON e.id = d.event_id \
             WHERE d.status = 'pending' AND e.mode = $1",
        )
        .bind(mode.as_str())
        .fetch_one(&self.pool)
        .await?;
        Ok(row.try_get("n")?)
    }

    /// The pool itself, for tests and one-off tools. Application code goes through the
    /// methods, which keep state changes and their events together.
    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Waits for connections to be returned and closes them.
    pub async fn close(&self) {
        self.pool.close().await;
    }

    /// Every event recorded for a session, oldest first.
    pub async fn session_events(&self, session_id: &str) -> Result<Vec<EventRecord>, StoreError> {
        let rows = sqlx::query(
            "SELECT seq, session_id, attempt_id, kind, from_status, to_status, detail, created_at \
             FROM payment_events WHERE session_id = $1 ORDER BY seq",
        )
        .bind(session_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(EventRecord::from_row).collect()
    }
}

/// `sqlite://x.db` → `sqlite://x.db?mode=rwc`, so the file is created on first start.
fn sqlite_url_with_create(url: &str) -> String {
    if url.contains("mode=") || url.contains(":memory:") {
        url.to_owned()
    } else if url.contains('?') {
        format!("{url}&mode=rwc")
    } else {
        format!("{url}?mode=rwc")
    }
}

/// One line of the append-only event log.
#[derive(Debug, Clone, PartialEq)]
pub struct EventRecord {
    pub seq: i64,
    pub session_id: String,
    pub attempt_id: Option<String>,
    pub kind: String,
    pub from_status: Option<String>,
    pub to_status: Option<String>,
    pub detail: serde_json::Value,
    pub created_at: i64,
}

impl EventRecord {
    fn from_row(row: &AnyRow) -> Result<Self, StoreError> {
        let seq: i64 = row.try_get("seq")?;
        let detail: String = row.try_get("detail")?;
        Ok(EventRecord {
            seq,
            session_id: row.try_get("session_id")?,
            attempt_id: row.try_get("attempt_id")?,
            kind: row.try_get("kind")?,
            from_status: row.try_get("from_status")?,
            to_status: row.try_get("to_status")?,
            detail: serde_json::from_str(&detail).map_err(|e| StoreError::Corrupt {
                table: "payment_events",
                id: seq.to_string(),
                what: e.to_string(),
            })?,
            created_at: row.try_get("created_at")?,
        })
    }
}

/// What an event row is about to say; written with [`insert_event`] inside the caller's
/// transaction.
pub(crate) struct NewEvent<'a> {
    pub session_id: &'a str,
    pub attempt_id: Option<&'a str>,
    pub kind: &'a str,
    pub from_status: Option<&'a str>,
    pub to_status: Option<&'a str>,
    pub detail: serde_json::Value,
    pub at: i64,
}

pub(crate) async fn insert_event(
    conn: &mut sqlx::AnyConnection,
    event: NewEvent<'_>,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO payment_events \
         (session_id, attempt_id, kind, from_status, to_status, detail, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(event.session_id)
    .bind(event.attempt_id)
    .bind(event.kind)
    .bind(event.from_status)
    .bind(event.to_status)
    .bind(event.detail.to_string())
    .bind(event.at)
    .execute(conn)
    .await?;
    Ok(())
}

/// A column holding one of our enums, read back strictly.
pub(crate) fn parse_column<T>(
    row: &AnyRow,
    column: &'static str,
    table: &'static str,
    parse: impl Fn(&str) -> Option<T>,
) -> Result<T, StoreError> {
    let raw: String = row.try_get(column)?;
    parse(&raw).ok_or_else(|| StoreError::Corrupt {
        table,
        id: row.try_get::<String, _>("id").unwrap_or_default(),
        what: format!("{column} = {raw:?}"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backend_from_scheme() {
        assert_eq!(
            Backend::from_url("sqlite://malipo.db"),
            Some(Backend::Sqlite)
        );
        assert_eq!(Backend::from_url("sqlite::memory:"), Some(Backend::Sqlite));
        assert_eq!(
            Backend::from_url("postgres://u@h/db"),
            Some(Backend::Postgres)
        );
        assert_eq!(
            Backend::from_url("postgresql://u@h/db"),
            Some(Backend::Postgres)
        );
        assert_eq!(Backend::from_url("mysql://u@h/db"), None);
    }

    #[test]
    fn sqlite_urls_create_the_file() {
        assert_eq!(
            sqlite_url_with_create("sqlite://a.db"),
            "sqlite://a.db?mode=rwc"
        );
        assert_eq!(
            sqlite_url_with_create("sqlite://a.db?x=1"),
            "sqlite://a.db?x=1&mode=rwc"
        );
        assert_eq!(
            sqlite_url_with_create("sqlite://a.db?mode=ro"),
            "sqlite://a.db?mode=ro"
        );
    }

    /// Migration 9 moves the sandbox Daraja's pushes into every operator's table: a
    /// prompt waiting across the upgrade is still there, in cents, with its wire fields.
    #[tokio::test]
    async fn the_sandbox_migration_keeps_waiting_prompts() {
        let store = Store::connect(&SecretString::from("sqlite::memory:"), 1)
            .await
            .unwrap();
        let before = Migrator {
            migrations: SQLITE_MIGRATIONS.migrations[..8].to_vec().into(),
            ..Migrator::DEFAULT
        };
        before.run(&store.pool).await.unwrap();
        sqlx::query(
            "INSERT INTO sandbox_daraja_pushes (checkout_request_id, merchant_request_id, \
             short_code, amount, phone, account_reference, transaction_desc, callback_url, \
             state, auto_result_code, auto_at, callbacks_due, created_at) VALUES ('ws_CO_1', \
             '123-456-1', '174379', 1500, '254712345678', 'BK-1', 'Lodge', \
             'http://x/callbacks/mpesa/pa_1/t', 'pending', '1037', 9, 1, 1)",
        )
        .execute(&store.pool)
        .await
        .unwrap();
        store.migrate().await.unwrap();
        let p = store
            .sandbox_request(crate::connectors::RailId::Mpesa, "ws_CO_1")
            .await
            .unwrap()
            .unwrap();
        assert_eq!((p.amount, p.currency.code()), (150_000, "KES"));
        assert_eq!((p.payee.as_str(), p.reference.as_str()), ("Lodge", "BK-1"));
        assert_eq!(p.wire_str("merchant_request_id"), "123-456-1");
        assert_eq!(p.wire_str("short_code"), "174379");
        assert!(!p.decided);
        assert_eq!(p.auto_at, Some(9));
    }

    /// Migration 7 rebuilds `payment_attempts` on SQLite: a database with payments in
    /// it must come through with every row, every reference and the append-only log.
    #[tokio::test]
    async fn the_reconciliation_migration_keeps_every_payment() {
        let store = Store::connect(&SecretString::from("sqlite::memory:"), 1)
            .await
            .unwrap();
        let before = Migrator {
            migrations: SQLITE_MIGRATIONS.migrations[..6].to_vec().into(),
            ..Migrator::DEFAULT
        };
        before.run(&store.pool).await.unwrap();
        for sql in [
            "INSERT INTO merchants (id, name, created_at) VALUES ('mer_1', 'Lodge', 1)",
            "INSERT INTO checkout_sessions (id, merchant_id, mode, amount_minor, currency, \
             reference, description, status, payment_status, success_url, cancel_url, \
             expires_at, created_at, updated_at) VALUES ('cs_1', 'mer_1', 'test', 150000, \
             'KES', 'R', 'D', 'complete', 'paid', 'https://a/', 'https://a/', 9, 1, 1)",
            "INSERT INTO payment_attempts (id, session_id, rail, status, amount_minor, \
             currency, payer, operator_receipt, created_at, updated_at) VALUES \
             ('pa_1', 'cs_1', 'mpesa', 'succeeded', 150000, 'KES', '254712345678', \
             'QKJ4ABC123', 1, 2)",
            "INSERT INTO payment_events (session_id, attempt_id, kind, created_at) \
             VALUES ('cs_1', 'pa_1', 'attempt.succeeded', 2)",
        ] {
            sqlx::query(sql).execute(&store.pool).await.unwrap();
        }
        store.migrate().await.unwrap();
        let a = store
            .attempt(&crate::domain::AttemptId::from_db("pa_1".into()))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(a.status, AttemptStatus::Succeeded);
        assert_eq!(a.operator_receipt.as_deref(), Some("QKJ4ABC123"));
        assert_eq!((a.late_from, a.duplicate), (None, false));
        let n: i64 =
            sqlx::query("SELECT COUNT(*) AS n FROM payment_events WHERE attempt_id = 'pa_1'")
                .fetch_one(&store.pool)
                .await
                .unwrap()
                .try_get("n")
                .unwrap();
        assert_eq!(n, 1);
        // payment_events still references the (new) payment_attempts.
        let fks: Vec<String> =
            sqlx::query("SELECT \"table\" AS t FROM pragma_foreign_key_list('payment_events')")
                .fetch_all(&store.pool)
                .await
                .unwrap()
                .iter()
                .map(|r| r.try_get("t").unwrap())
                .collect();
        assert!(fks.contains(&"payment_attempts".to_string()), "{fks:?}");
        sqlx::query(
            "INSERT INTO payment_events (session_id, attempt_id, kind, created_at) \
                     VALUES ('cs_1', 'pa_1', 'attempt.checked', 3)",
        )
        .execute(&store.pool)
        .await
        .unwrap();
        // The rebuilt table enforces its constraints and the log is still append-only.
        assert!(
            sqlx::query("UPDATE payment_attempts SET status = 'bogus'")
                .execute(&store.pool)
                .await
                .is_err()
        );
        assert!(
            sqlx::query(
                "INSERT INTO payment_events (session_id, attempt_id, kind, created_at) \
                         VALUES ('cs_1', 'pa_missing', 'x', 3)"
            )
            .execute(&store.pool)
            .await
            .is_err(),
            "foreign keys are enforced again"
        );
        assert!(
            sqlx::query("DELETE FROM payment_events")
                .execute(&store.pool)
                .await
                .is_err()
        );
    }
}
