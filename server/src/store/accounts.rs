//! Dashboard accounts: people, memberships, sign-in sessions, mailed single-use tokens,
//! recovery codes, failed sign-ins, the audit log and the sandbox mailbox.
//!
//! Tokens (session cookies, mailed links, recovery codes) are stored by hash only: a
//! copy of the database does not sign anyone in. TOTP secrets are sealed under the
//! master key (see [`crate::sealing`]).

use sqlx::{Row, any::AnyRow};

use super::{MerchantRecord, Store, StoreError, merchants::insert_merchant_in};
use crate::{
    accounts::Role,
    domain::{
        MerchantId, Mode,
        ids::{AuditId, UserId},
    },
};

/// A person, as stored (never the password hash outside this module's callers that
/// need it).
#[derive(Debug, Clone)]
pub struct UserRecord {
    pub id: UserId,
    pub email: String,
    pub password_hash: String,
    pub email_verified: bool,
    pub totp_enabled: bool,
    pub totp_last_step: Option<i64>,
    pub created_at: i64,
}

const USER_COLUMNS: &str = "id, email, password_hash, email_verified_at, \
     totp_secret IS NOT NULL AS totp_on, totp_last_step, created_at";

impl UserRecord {
    fn from_row(row: &AnyRow) -> Result<Self, StoreError> {
        Ok(UserRecord {
            id: UserId::from_db(row.try_get("id")?),
            email: row.try_get("email")?,
            password_hash: row.try_get("password_hash")?,
            email_verified: row
                .try_get::<Option<i64>, _>("email_verified_at")?
                .is_some(),
            totp_enabled: bool_col(row, "totp_on")?,
            totp_last_step: row.try_get("totp_last_step")?,
            created_at: row.try_get("created_at")?,
        })
    }
}

/// A boolean expression's column: SQLite answers an integer, PostgreSQL a boolean.
fn bool_col(row: &AnyRow, name: &str) -> Result<bool, StoreError> {
    match row.try_get::<bool, _>(name) {
        Ok(b) => Ok(b),
        Err(_) => Ok(row.try_get::<i64, _>(name)? != 0),
    }
}

/// A sign-in session with the person and their role for the session's merchant.
#[derive(Debug, Clone)]
pub struct SignedIn {
    pub token_hash: String,
    pub user: UserRecord,
    pub merchant: MerchantRecord,
    pub role: Role,
    pub mode: Mode,
    /// False while a second factor is still owed.
    pub full: bool,
    pub reauth_at: i64,
    pub created_at: i64,
}

/// A sign-in session as listed to its owner.
#[derive(Debug, Clone)]
pub struct SessionListing {
    pub token_hash: String,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    pub created_at: i64,
    pub last_seen_at: Option<i64>,
}

/// What a mailed link is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenPurpose {
    VerifyEmail,
    ResetPassword,
    Invite,
}

impl TokenPurpose {
    fn as_str(self) -> &'static str {
        match self {
            TokenPurpose::VerifyEmail => "verify_email",
            TokenPurpose::ResetPassword => "reset_password",
            TokenPurpose::Invite => "invite",
        }
    }
}

/// A mailed link's record.
#[derive(Debug, Clone)]
pub struct TokenRecord {
    pub user_id: Option<UserId>,
    pub email: String,
    pub merchant_id: Option<MerchantId>,
    pub role: Option<Role>,
    /// Who made it (an invitation's inviter).
    pub created_by: Option<UserId>,
}

/// A new sign-in session.
pub struct NewUserSession<'a> {
    pub token_hash: &'a str,
    pub user_id: &'a UserId,
    pub merchant_id: &'a MerchantId,
    pub full: bool,
    pub ip: Option<&'a str>,
    pub user_agent: Option<&'a str>,
    pub now: i64,
    pub expires_at: i64,
}

/// One line of the audit log.
#[derive(Debug, Clone)]
pub struct AuditEntry {
    pub actor: String,
    pub action: String,
    pub detail: String,
    pub ip: Option<String>,
    pub at: i64,
}

/// A mail the sandbox mailbox shows.
#[derive(Debug, Clone)]
pub struct SandboxMail {
    pub id: String,
    pub to: String,
    pub subject: String,
    pub body: String,
    pub created_at: i64,
}

fn totp_place(column: &str, user: &UserId) -> String {
    format!("users.{column}:{user}")
}

impl Store {
    /// Creates a person with a new merchant they own, all or nothing. `Ok(false)` when
    /// the address already has an account.
    pub async fn insert_user_with_merchant(
        &self,
        user_id: &UserId,
        email: &str,
        password_hash: &str,
        merchant: &MerchantRecord,
    ) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin().await?;
        let inserted = sqlx::query(
            "INSERT INTO users (id, email, password_hash, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $4) ON CONFLICT (email) DO NOTHING",
        )
        .bind(user_id.as_str())
        .bind(email)
        .bind(password_hash)
        .bind(merchant.created_at)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if inserted == 0 {
            return Ok(false);
        }
        insert_merchant_in(&mut tx, merchant, &[]).await?;
        sqlx::query(
            "INSERT INTO memberships (merchant_id, user_id, role, created_at) \
             VALUES ($1, $2, 'owner', $3)",
        )
        .bind(merchant.id.as_str())
        .bind(user_id.as_str())
        .bind(merchant.created_at)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(true)
    }

    pub async fn user_by_email(&self, email: &str) -> Result<Option<UserRecord>, StoreError> {
        let row = sqlx::query(&format!(
            "SELECT {USER_COLUMNS} FROM users WHERE email = $1"
        ))
        .bind(email)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(UserRecord::from_row).transpose()
    }

    pub async fn user(&self, id: &UserId) -> Result<Option<UserRecord>, StoreError> {
        let row = sqlx::query(&format!("SELECT {USER_COLUMNS} FROM users WHERE id = $1"))
            .bind(id.as_str())
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(UserRecord::from_row).transpose()
    }

    /// The merchants a person belongs to, oldest membership first.
    pub async fn memberships(
        &self,
        user: &UserId,
    ) -> Result<Vec<(MerchantRecord, Role)>, StoreError> {
        let rows = sqlx::query(
            "SELECT m.id, m.name, m.created_at, ms.role FROM memberships ms \
             JOIN merchants m ON m.id = ms.merchant_id WHERE ms.user_id = $1 \
             ORDER BY ms.created_at, m.id",
        )
        .bind(user.as_str())
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                let merchant = MerchantRecord {
                    id: MerchantId::from_db(row.try_get("id")?),
                    name: row.try_get("name")?,
                    created_at: row.try_get("created_at")?,
                };
                let role: String = row.try_get("role")?;
                let role = Role::parse(&role).ok_or_else(|| StoreError::Corrupt {
                    table: "memberships",
                    id: merchant.id.to_string(),
                    what: format!("role {role:?}"),
                })?;
                Ok((merchant, role))
            })
            .collect()
    }

    /// Whether a merchant takes live payments: any unrevoked live key, or live operator
    /// credentials of its own.
    pub async fn merchant_is_live(&self, merchant: &MerchantId) -> Result<bool, StoreError> {
        let row = sqlx::query(
            "SELECT (SELECT COUNT(*) FROM api_keys \
             WHERE merchant_id = $1 AND mode = 'live' AND revoked_at IS NULL) \
             + (SELECT COUNT(*) FROM merchant_rail_credentials WHERE merchant_id = $1) AS n",
        )
        .bind(merchant.as_str())
        .fetch_one(&self.pool)
        .await?;
        Ok(row.try_get::<i64, _>("n")? > 0)
    }

    // --- mailed single-use tokens -------------------------------------------------

    /// Stores a mailed link's token (by hash). Earlier unused links of the same purpose
    /// for the same person stop working: only the newest mail counts.
    #[allow(clippy::too_many_arguments)]
    pub async fn insert_user_token(
        &self,
        token_hash: &str,
        purpose: TokenPurpose,
        user: Option<&UserId>,
        email: &str,
        merchant: Option<&MerchantId>,
        role: Option<Role>,
        created_by: Option<&UserId>,
        now: i64,
        expires_at: i64,
    ) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        if let Some(user) = user {
            sqlx::query(
                "UPDATE user_tokens SET used_at = $1 \
                 WHERE user_id = $2 AND purpose = $3 AND used_at IS NULL",
            )
            .bind(now)
            .bind(user.as_str())
            .bind(purpose.as_str())
            .execute(&mut *tx)
            .await?;
        }
        sqlx::query(
            "INSERT INTO user_tokens (token_hash, purpose, user_id, email, merchant_id, role, \
             created_by, created_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        )
        .bind(token_hash)
        .bind(purpose.as_str())
        .bind(user.map(UserId::as_str))
        .bind(email)
        .bind(merchant.map(MerchantId::as_str))
        .bind(role.map(Role::as_str))
        .bind(created_by.map(UserId::as_str))
        .bind(now)
        .bind(expires_at)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// A mailed link's record if it is unused and unexpired (without using it).
    pub async fn peek_user_token(
        &self,
        token_hash: &str,
        purpose: TokenPurpose,
        now: i64,
    ) -> Result<Option<TokenRecord>, StoreError> {
        let row = sqlx::query(
            "SELECT user_id, email, merchant_id, role, created_by FROM user_tokens \
             WHERE token_hash = $1 AND purpose = $2 AND used_at IS NULL AND expires_at > $3",
        )
        .bind(token_hash)
        .bind(purpose.as_str())
        .bind(now)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|row| {
            Ok(TokenRecord {
                user_id: row
                    .try_get::<Option<String>, _>("user_id")?
                    .map(UserId::from_db),
                email: row.try_get("email")?,
                merchant_id: row
                    .try_get::<Option<String>, _>("merchant_id")?
                    .map(MerchantId::from_db),
                role: row
                    .try_get::<Option<String>, _>("role")?
                    .as_deref()
                    .and_then(Role::parse),
                created_by: row
                    .try_get::<Option<String>, _>("created_by")?
                    .map(UserId::from_db),
            })
        })
        .transpose()
    }

    /// A person's role in one business, if they are a member.
    pub async fn role_in(
        &self,
        user: &UserId,
        merchant: &MerchantId,
    ) -> Result<Option<Role>, StoreError> {
        let row =
            sqlx::query("SELECT role FROM memberships WHERE user_id = $1 AND merchant_id = $2")
                .bind(user.as_str())
                .bind(merchant.as_str())
                .fetch_optional(&self.pool)
                .await?;
        Ok(match row {
            Some(row) => Role::parse(&row.try_get::<String, _>("role")?),
            None => None,
        })
    }

    /// Withdraws a pending invitation of `merchant` (by its link's hash): false if there
    /// is none (used, expired or withdrawn already).
    pub async fn cancel_invite(
        &self,
        merchant: &MerchantId,
        token_hash: &str,
        now: i64,
    ) -> Result<bool, StoreError> {
        Ok(sqlx::query(
            "UPDATE user_tokens SET used_at = $3 WHERE token_hash = $1 AND merchant_id = $2 \
             AND purpose = 'invite' AND used_at IS NULL AND expires_at > $3",
        )
        .bind(token_hash)
        .bind(merchant.as_str())
        .bind(now)
        .execute(&self.pool)
        .await?
        .rows_affected()
            == 1)
    }

    /// Uses a mailed link once: of two requests racing with it, one gets the record.
    pub async fn take_user_token(
        &self,
        token_hash: &str,
        purpose: TokenPurpose,
        now: i64,
    ) -> Result<Option<TokenRecord>, StoreError> {
        let Some(record) = self.peek_user_token(token_hash, purpose, now).await? else {
            return Ok(None);
        };
        let taken = sqlx::query(
            "UPDATE user_tokens SET used_at = $1 \
             WHERE token_hash = $2 AND purpose = $3 AND used_at IS NULL AND expires_at > $1",
        )
        .bind(now)
        .bind(token_hash)
        .bind(purpose.as_str())
        .execute(&self.pool)
        .await?
        .rows_affected();
        Ok((taken == 1).then_some(record))
    }

    pub async fn mark_email_verified(&self, user: &UserId, now: i64) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE users SET email_verified_at = COALESCE(email_verified_at, $1), updated_at = $1 \
             WHERE id = $2",
        )
        .bind(now)
        .bind(user.as_str())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Sets a new password and ends every sign-in session the person has, and every
    /// other unused reset link.
    pub async fn set_password(
        &self,
        user: &UserId,
        password_hash: &str,
        now: i64,
    ) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("UPDATE users SET password_hash = $1, updated_at = $2 WHERE id = $3")
            .bind(password_hash)
            .bind(now)
            .bind(user.as_str())
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "UPDATE user_sessions SET revoked_at = $1 WHERE user_id = $2 AND revoked_at IS NULL",
        )
        .bind(now)
        .bind(user.as_str())
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "UPDATE user_tokens SET used_at = $1 \
             WHERE user_id = $2 AND purpose = 'reset_password' AND used_at IS NULL",
        )
        .bind(now)
        .bind(user.as_str())
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    // --- sign-in sessions ---------------------------------------------------------

    pub async fn insert_user_session(&self, s: NewUserSession<'_>) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO user_sessions (token_hash, user_id, merchant_id, mode, stage, ip, \
             user_agent, created_at, last_seen_at, reauth_at, expires_at) \
             VALUES ($1, $2, $3, 'test', $4, $5, $6, $7, $7, $7, $8)",
        )
        .bind(s.token_hash)
        .bind(s.user_id.as_str())
        .bind(s.merchant_id.as_str())
        .bind(if s.full { "full" } else { "password" })
        .bind(s.ip)
        .bind(s.user_agent)
        .bind(s.now)
        .bind(s.expires_at)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// The live sign-in session with this token hash: unrevoked, unexpired, and idle for
    /// less than `idle_ms`; its last-seen time is moved on.
    pub async fn signed_in(
        &self,
        token_hash: &str,
        now: i64,
        idle_ms: i64,
    ) -> Result<Option<SignedIn>, StoreError> {
        let row = sqlx::query(
            "SELECT s.token_hash, s.mode, s.stage, s.reauth_at, s.created_at AS s_created, \
             s.last_seen_at, u.id, u.email, u.password_hash, u.email_verified_at, \
             u.totp_secret IS NOT NULL AS totp_on, u.totp_last_step, u.created_at, \
             m.id AS merchant_id, m.name AS merchant_name, m.created_at AS merchant_created, \
             ms.role FROM user_sessions s \
             JOIN users u ON u.id = s.user_id \
             JOIN merchants m ON m.id = s.merchant_id \
             JOIN memberships ms ON ms.user_id = s.user_id AND ms.merchant_id = s.merchant_id \
             WHERE s.token_hash = $1 AND s.revoked_at IS NULL AND s.expires_at > $2 \
             AND s.last_seen_at > $3",
        )
        .bind(token_hash)
        .bind(now)
        .bind(now - idle_ms)
        .fetch_optional(&self.pool)
        .await?;
        let Some(row) = row else { return Ok(None) };
        let role: String = row.try_get("role")?;
        let mode: String = row.try_get("mode")?;
        let signed_in = SignedIn {
            token_hash: row.try_get("token_hash")?,
            user: UserRecord::from_row(&row)?,
            merchant: MerchantRecord {
                id: MerchantId::from_db(row.try_get("merchant_id")?),
                name: row.try_get("merchant_name")?,
                created_at: row.try_get("merchant_created")?,
            },
            role: Role::parse(&role).ok_or_else(|| StoreError::Corrupt {
                table: "memberships",
                id: token_hash.chars().take(8).collect(),
                what: format!("role {role:?}"),
            })?,
            mode: if mode == "live" {
                Mode::Live
            } else {
                Mode::Test
            },
            full: row.try_get::<String, _>("stage")? == "full",
            reauth_at: row.try_get("reauth_at")?,
            created_at: row.try_get("s_created")?,
        };
        // Touch at most once a minute (a page load is not worth a write each time).
        let last_seen: i64 = row.try_get("last_seen_at")?;
        if now - last_seen > 60_000 {
            sqlx::query("UPDATE user_sessions SET last_seen_at = $1 WHERE token_hash = $2")
                .bind(now)
                .bind(token_hash)
                .execute(&self.pool)
                .await?;
        }
        Ok(Some(signed_in))
    }

    /// The second factor was given: the session is signed in fully, under a new token,
    /// for a full session's lifetime. False if it was not waiting for one (a second
    /// request with the same code lost the race).
    pub async fn complete_user_session(
        &self,
        token_hash: &str,
        new_token_hash: &str,
        now: i64,
        expires_at: i64,
    ) -> Result<bool, StoreError> {
        Ok(sqlx::query(
            "UPDATE user_sessions SET token_hash = $2, stage = 'full', reauth_at = $3, \
             last_seen_at = $3, expires_at = $4 \
             WHERE token_hash = $1 AND stage = 'password' AND revoked_at IS NULL",
        )
        .bind(token_hash)
        .bind(new_token_hash)
        .bind(now)
        .bind(expires_at)
        .execute(&self.pool)
        .await?
        .rows_affected()
            == 1)
    }

    /// The person proved it is them again (password or TOTP) just now.
    pub async fn reauthenticated(&self, token_hash: &str, now: i64) -> Result<(), StoreError> {
        sqlx::query("UPDATE user_sessions SET reauth_at = $1 WHERE token_hash = $2")
            .bind(now)
            .bind(token_hash)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    pub async fn set_session_mode(&self, token_hash: &str, mode: Mode) -> Result<(), StoreError> {
        sqlx::query("UPDATE user_sessions SET mode = $1 WHERE token_hash = $2")
            .bind(mode.as_str())
            .bind(token_hash)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Ends one session.
    pub async fn revoke_user_session(&self, token_hash: &str, now: i64) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE user_sessions SET revoked_at = $1 WHERE token_hash = $2 AND revoked_at IS NULL",
        )
        .bind(now)
        .bind(token_hash)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Ends every session of a person but `keep` (if given). Returns how many ended.
    pub async fn revoke_user_sessions(
        &self,
        user: &UserId,
        keep: Option<&str>,
        now: i64,
    ) -> Result<u64, StoreError> {
        Ok(sqlx::query(
            "UPDATE user_sessions SET revoked_at = $1 \
             WHERE user_id = $2 AND revoked_at IS NULL AND token_hash <> $3",
        )
        .bind(now)
        .bind(user.as_str())
        .bind(keep.unwrap_or(""))
        .execute(&self.pool)
        .await?
        .rows_affected())
    }

    /// A person's live sessions, newest first.
    pub async fn user_sessions(
        &self,
        user: &UserId,
        now: i64,
    ) -> Result<Vec<SessionListing>, StoreError> {
        let rows = sqlx::query(
            "SELECT token_hash, ip, user_agent, created_at, last_seen_at FROM user_sessions \
             WHERE user_id = $1 AND revoked_at IS NULL AND expires_at > $2 \
             ORDER BY created_at DESC LIMIT 50",
        )
        .bind(user.as_str())
        .bind(now)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                Ok(SessionListing {
                    token_hash: row.try_get("token_hash")?,
                    ip: row.try_get("ip")?,
                    user_agent: row.try_get("user_agent")?,
                    created_at: row.try_get("created_at")?,
                    last_seen_at: row.try_get("last_seen_at")?,
                })
            })
            .collect()
    }

    // --- two-factor ---------------------------------------------------------------

    /// Keeps a secret being set up (shown as a QR code until confirmed).
    pub async fn set_totp_pending(&self, user: &UserId, secret: &str) -> Result<(), StoreError> {
        let sealed = self
            .master
            .seal(&totp_place("totp_pending", user), secret)?;
        sqlx::query("UPDATE users SET totp_pending = $1 WHERE id = $2")
            .bind(sealed)
            .bind(user.as_str())
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// The secret being set up, if any.
    pub async fn totp_pending(&self, user: &UserId) -> Result<Option<String>, StoreError> {
        let row = sqlx::query("SELECT totp_pending FROM users WHERE id = $1")
            .bind(user.as_str())
            .fetch_optional(&self.pool)
            .await?;
        let Some(sealed) = row
            .map(|r| r.try_get::<Option<String>, _>("totp_pending"))
            .transpose()?
            .flatten()
        else {
            return Ok(None);
        };
        Ok(Some(
            self.master
                .open(&totp_place("totp_pending", user), &sealed)?,
        ))
    }

    /// The confirmed secret, if 2FA is on.
    pub async fn totp_secret(&self, user: &UserId) -> Result<Option<String>, StoreError> {
        let row = sqlx::query("SELECT totp_secret FROM users WHERE id = $1")
            .bind(user.as_str())
            .fetch_optional(&self.pool)
            .await?;
        let Some(sealed) = row
            .map(|r| r.try_get::<Option<String>, _>("totp_secret"))
            .transpose()?
            .flatten()
        else {
            return Ok(None);
        };
        Ok(Some(
            self.master
                .open(&totp_place("totp_secret", user), &sealed)?,
        ))
    }

    /// Turns 2FA on with `secret` (its first code accepted at `step`) and these recovery
    /// codes (replacing any earlier ones).
    pub async fn enable_totp(
        &self,
        user: &UserId,
        secret: &str,
        step: i64,
        recovery_hashes: &[String],
        now: i64,
    ) -> Result<(), StoreError> {
        let sealed = self.master.seal(&totp_place("totp_secret", user), secret)?;
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "UPDATE users SET totp_secret = $1, totp_pending = NULL, totp_last_step = $2, \
             updated_at = $3 WHERE id = $4",
        )
        .bind(sealed)
        .bind(step)
        .bind(now)
        .bind(user.as_str())
        .execute(&mut *tx)
        .await?;
        sqlx::query("DELETE FROM recovery_codes WHERE user_id = $1")
            .bind(user.as_str())
            .execute(&mut *tx)
            .await?;
        for hash in recovery_hashes {
            sqlx::query("INSERT INTO recovery_codes (user_id, code_hash) VALUES ($1, $2)")
                .bind(user.as_str())
                .bind(hash)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Records that the code of `step` was used, unless that step (or a later one) was
    /// already: of two requests with the same code, one wins.
    pub async fn use_totp_step(&self, user: &UserId, step: i64) -> Result<bool, StoreError> {
        Ok(sqlx::query(
            "UPDATE users SET totp_last_step = $1 \
             WHERE id = $2 AND (totp_last_step IS NULL OR totp_last_step < $1)",
        )
        .bind(step)
        .bind(user.as_str())
        .execute(&self.pool)
        .await?
        .rows_affected()
            == 1)
    }

    /// Uses a recovery code once.
    pub async fn use_recovery_code(
        &self,
        user: &UserId,
        code_hash: &str,
        now: i64,
    ) -> Result<bool, StoreError> {
        Ok(sqlx::query(
            "UPDATE recovery_codes SET used_at = $1 \
             WHERE user_id = $2 AND code_hash = $3 AND used_at IS NULL",
        )
        .bind(now)
        .bind(user.as_str())
        .bind(code_hash)
        .execute(&self.pool)
        .await?
        .rows_affected()
            == 1)
    }

    pub async fn unused_recovery_codes(&self, user: &UserId) -> Result<i64, StoreError> {
        Ok(sqlx::query(
            "SELECT COUNT(*) AS n FROM recovery_codes WHERE user_id = $1 AND used_at IS NULL",
        )
        .bind(user.as_str())
        .fetch_one(&self.pool)
        .await?
        .try_get("n")?)
    }

    // --- throttling ---------------------------------------------------------------

    /// Failures in `scope` since `since`, and the oldest of them (when the count falls).
    pub async fn auth_failures(
        &self,
        scope: &str,
        since: i64,
    ) -> Result<(i64, Option<i64>), StoreError> {
        let row = sqlx::query(
            "SELECT COUNT(*) AS n, MIN(at) AS oldest FROM auth_failures \
             WHERE scope = $1 AND at > $2",
        )
        .bind(scope)
        .bind(since)
        .fetch_one(&self.pool)
        .await?;
        Ok((row.try_get("n")?, row.try_get("oldest")?))
    }

    pub async fn record_auth_failure(&self, scope: &str, now: i64) -> Result<(), StoreError> {
        sqlx::query("INSERT INTO auth_failures (scope, at) VALUES ($1, $2)")
            .bind(scope)
            .bind(now)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Forgets one counted attempt (it succeeded).
    pub async fn forget_auth_failure(&self, scope: &str, at: i64) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM auth_failures WHERE scope = $1 AND at = $2")
            .bind(scope)
            .bind(at)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    pub async fn clear_auth_failures(&self, scope: &str) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM auth_failures WHERE scope = $1")
            .bind(scope)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Forgets failures, sessions and links older than `before` (the sweeper).
    pub async fn prune_auth(&self, before: i64) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM auth_failures WHERE at < $1")
            .bind(before)
            .execute(&self.pool)
            .await?;
        sqlx::query("DELETE FROM user_sessions WHERE expires_at < $1 OR revoked_at < $1")
            .bind(before)
            .execute(&self.pool)
            .await?;
        sqlx::query("DELETE FROM user_tokens WHERE expires_at < $1")
            .bind(before)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    // --- audit log ----------------------------------------------------------------

    /// Records a sensitive action (who, what, when, from where).
    #[allow(clippy::too_many_arguments)]
    pub async fn audit(
        &self,
        merchant: Option<&MerchantId>,
        user: Option<&UserId>,
        actor: &str,
        action: &str,
        detail: &str,
        ip: Option<&str>,
        now: i64,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO audit_log (id, merchant_id, user_id, actor, action, detail, ip, at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(AuditId::generate().as_str())
        .bind(merchant.map(MerchantId::as_str))
        .bind(user.map(UserId::as_str))
        .bind(actor)
        .bind(action)
        .bind(detail)
        .bind(ip)
        .bind(now)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// A merchant's audit log, newest first.
    pub async fn audit_log(
        &self,
        merchant: &MerchantId,
        limit: i64,
    ) -> Result<Vec<AuditEntry>, StoreError> {
        let rows = sqlx::query(
            "SELECT actor, action, detail, ip, at FROM audit_log WHERE merchant_id = $1 \
             ORDER BY at DESC, id DESC LIMIT $2",
        )
        .bind(merchant.as_str())
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                Ok(AuditEntry {
                    actor: row.try_get("actor")?,
                    action: row.try_get("action")?,
                    detail: row.try_get("detail")?,
                    ip: row.try_get("ip")?,
                    at: row.try_get("at")?,
                })
            })
            .collect()
    }

    // --- sandbox mailbox ----------------------------------------------------------

    pub async fn insert_sandbox_mail(
        &self,
        to: &str,
        subject: &str,
        body: &str,
        now: i64,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO sandbox_mail (id, to_addr, subject, body, created_at) \
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(crate::domain::ids::random_base62(16))
        .bind(to)
        .bind(subject)
        .bind(body)
        .bind(now)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// The newest sandbox mail, newest first.
    pub async fn sandbox_mail(&self, limit: i64) -> Result<Vec<SandboxMail>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, to_addr, subject, body, created_at FROM sandbox_mail \
             ORDER BY created_at DESC, id DESC LIMIT $1",
        )
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                Ok(SandboxMail {
                    id: row.try_get("id")?,
                    to: row.try_get("to_addr")?,
                    subject: row.try_get("subject")?,
                    body: row.try_get("body")?,
                    created_at: row.try_get("created_at")?,
                })
            })
            .collect()
    }
}

/// A member of a merchant's team, as listed.
#[derive(Debug, Clone)]
pub struct Member {
    pub user_id: UserId,
    pub email: String,
    pub role: Role,
    pub two_factor: bool,
    pub since: i64,
}

/// An invitation not yet taken.
#[derive(Debug, Clone)]
pub struct PendingInvite {
    /// The link's hash: what withdrawing it names (the link itself is never stored).
    pub token_hash: String,
    pub email: String,
    pub role: Option<Role>,
    pub expires_at: i64,
}

/// Why a team change was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TeamChange {
    Done,
    /// No such member.
    NotMember,
    /// It would leave the merchant without an owner.
    LastOwner,
}

impl Store {
    /// A merchant's team, owners first.
    pub async fn members(&self, merchant: &MerchantId) -> Result<Vec<Member>, StoreError> {
        let rows = sqlx::query(
            "SELECT u.id, u.email, u.totp_secret IS NOT NULL AS totp_on, ms.role, ms.created_at \
             FROM memberships ms JOIN users u ON u.id = ms.user_id WHERE ms.merchant_id = $1 \
             ORDER BY ms.created_at, u.email",
        )
        .bind(merchant.as_str())
        .fetch_all(&self.pool)
        .await?;
        let mut out = rows
            .iter()
            .map(|row| {
                let role: String = row.try_get("role")?;
                Ok(Member {
                    user_id: UserId::from_db(row.try_get("id")?),
                    email: row.try_get("email")?,
                    role: Role::parse(&role).ok_or_else(|| StoreError::Corrupt {
                        table: "memberships",
                        id: merchant.to_string(),
                        what: format!("role {role:?}"),
                    })?,
                    two_factor: bool_col(row, "totp_on")?,
                    since: row.try_get("created_at")?,
                })
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        out.sort_by_key(|m| (Role::ALL.iter().position(|r| *r == m.role), m.since));
        Ok(out)
    }

    /// Invitations of a merchant still waiting, newest first.
    pub async fn pending_invites(
        &self,
        merchant: &MerchantId,
        now: i64,
    ) -> Result<Vec<PendingInvite>, StoreError> {
        let rows = sqlx::query(
            "SELECT token_hash, email, role, expires_at FROM user_tokens WHERE merchant_id = $1 \
             AND purpose = 'invite' AND used_at IS NULL AND expires_at > $2 \
             ORDER BY created_at DESC LIMIT 100",
        )
        .bind(merchant.as_str())
        .bind(now)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                Ok(PendingInvite {
                    token_hash: row.try_get("token_hash")?,
                    email: row.try_get("email")?,
                    role: row
                        .try_get::<Option<String>, _>("role")?
                        .as_deref()
                        .and_then(Role::parse),
                    expires_at: row.try_get("expires_at")?,
                })
            })
            .collect()
    }

    /// Adds a person to a merchant's team (an existing member keeps their role).
    pub async fn add_membership(
        &self,
        merchant: &MerchantId,
        user: &UserId,
        role: Role,
        now: i64,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO memberships (merchant_id, user_id, role, created_at) \
             VALUES ($1, $2, $3, $4) ON CONFLICT (merchant_id, user_id) DO NOTHING",
        )
        .bind(merchant.as_str())
        .bind(user.as_str())
        .bind(role.as_str())
        .bind(now)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Creates a person whose address is proven (by an invitation link), as a member of
    /// `merchant`. `Ok(false)` when the address has an account already.
    pub async fn insert_invited_user(
        &self,
        user: &UserId,
        email: &str,
        password_hash: &str,
        merchant: &MerchantId,
        role: Role,
        now: i64,
    ) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin().await?;
        let inserted = sqlx::query(
            "INSERT INTO users (id, email, password_hash, email_verified_at, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $4, $4) ON CONFLICT (email) DO NOTHING",
        )
        .bind(user.as_str())
        .bind(email)
        .bind(password_hash)
        .bind(now)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if inserted == 0 {
            return Ok(false);
        }
        sqlx::query(
            "INSERT INTO memberships (merchant_id, user_id, role, created_at) VALUES ($1, $2, $3, $4)",
        )
        .bind(merchant.as_str())
        .bind(user.as_str())
        .bind(role.as_str())
        .bind(now)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(true)
    }

    /// Changes a member's role, or removes them (`None`), never leaving the merchant
    /// without an owner. A removed member's sign-in sessions for this merchant end.
    pub async fn change_membership(
        &self,
        merchant: &MerchantId,
        user: &UserId,
        role: Option<Role>,
        now: i64,
    ) -> Result<TeamChange, StoreError> {
        let mut tx = self.pool.begin().await?;
        // Write first (SQLite takes its lock here; PostgreSQL locks the merchant's row),
        // so two owners demoting each other at once cannot both succeed.
        sqlx::query("UPDATE merchants SET name = name WHERE id = $1")
            .bind(merchant.as_str())
            .execute(&mut *tx)
            .await?;
        let current: Option<String> =
            sqlx::query("SELECT role FROM memberships WHERE merchant_id = $1 AND user_id = $2")
                .bind(merchant.as_str())
                .bind(user.as_str())
                .fetch_optional(&mut *tx)
                .await?
                .map(|r| r.try_get("role"))
                .transpose()?;
        let Some(current) = current else {
            return Ok(TeamChange::NotMember);
        };
        if current == "owner" && role != Some(Role::Owner) {
            let owners: i64 = sqlx::query(
                "SELECT COUNT(*) AS n FROM memberships WHERE merchant_id = $1 AND role = 'owner'",
            )
            .bind(merchant.as_str())
            .fetch_one(&mut *tx)
            .await?
            .try_get("n")?;
            if owners <= 1 {
                return Ok(TeamChange::LastOwner);
            }
        }
        match role {
            Some(role) => {
                sqlx::query(
                    "UPDATE memberships SET role = $3 WHERE merchant_id = $1 AND user_id = $2",
                )
                .bind(merchant.as_str())
                .bind(user.as_str())
                .bind(role.as_str())
                .execute(&mut *tx)
                .await?;
            }
            None => {
                sqlx::query("DELETE FROM memberships WHERE merchant_id = $1 AND user_id = $2")
                    .bind(merchant.as_str())
                    .bind(user.as_str())
                    .execute(&mut *tx)
                    .await?;
                sqlx::query(
                    "UPDATE user_sessions SET revoked_at = $3 \
                     WHERE merchant_id = $1 AND user_id = $2 AND revoked_at IS NULL",
                )
                .bind(merchant.as_str())
                .bind(user.as_str())
                .bind(now)
                .execute(&mut *tx)
                .await?;
            }
        }
        tx.commit().await?;
        Ok(TeamChange::Done)
    }

    /// Moves a sign-in session to another merchant the person belongs to (test mode).
    pub async fn set_session_merchant(
        &self,
        token_hash: &str,
        merchant: &MerchantId,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE user_sessions SET merchant_id = $1, mode = 'test' WHERE token_hash = $2",
        )
        .bind(merchant.as_str())
        .bind(token_hash)
        .execute(&self.pool)
        .await?;
        Ok(())
    }
}

/// A mass action as stored.
#[derive(Debug, Clone)]
pub struct MassAction {
    pub id: String,
    pub merchant_id: MerchantId,
    pub mode: Mode,
    /// `resend_webhooks` (items: events) or `refund` (items: payments).
    pub kind: String,
    pub items: Vec<String>,
    pub actor: String,
    pub status: String,
    pub run_at: i64,
    pub outcome: Option<String>,
    /// While running: when its runner last said it was alive.
    pub claimed_at: Option<i64>,
}

impl MassAction {
    fn from_row(row: &AnyRow) -> Result<Self, StoreError> {
        let id: String = row.try_get("id")?;
        let items: String = row.try_get("items")?;
        let mode: String = row.try_get("mode")?;
        Ok(MassAction {
            items: serde_json::from_str(&items).map_err(|e| StoreError::Corrupt {
                table: "mass_actions",
                id: id.clone(),
                what: e.to_string(),
            })?,
            id,
            merchant_id: MerchantId::from_db(row.try_get("merchant_id")?),
            mode: if mode == "live" {
                Mode::Live
            } else {
                Mode::Test
            },
            actor: row.try_get("actor")?,
            kind: row.try_get("kind")?,
            status: row.try_get("status")?,
            run_at: row.try_get("run_at")?,
            outcome: row.try_get("outcome")?,
            claimed_at: row.try_get("claimed_at")?,
        })
    }
}

const MASS_COLUMNS: &str =
    "id, merchant_id, mode, kind, items, actor, status, run_at, outcome, claimed_at";

impl Store {
    /// Events of a merchant in one mode with a delivery that failed for good (at most
    /// `limit`, newest first).
    pub async fn failed_delivery_events(
        &self,
        merchant: &MerchantId,
        mode: Mode,
        limit: i64,
    ) -> Result<Vec<String>, StoreError> {
        let rows = sqlx::query(
            "SELECT e.id, MAX(e.created_at) AS at FROM events e \
             JOIN webhook_deliveries d ON d.event_id = e.id \
             WHERE e.merchant_id = $1 AND e.mode = $2 AND d.status = 'failed' \
             GROUP BY e.id ORDER BY at DESC LIMIT $3",
        )
        .bind(merchant.as_str())
        .bind(mode.as_str())
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(|r| Ok(r.try_get("id")?)).collect()
    }

    /// Schedules a mass action of `kind` (resend these events, refund these payments)
    /// for `run_at`.
    #[allow(clippy::too_many_arguments)]
    pub async fn insert_mass_action(
        &self,
        id: &str,
        merchant: &MerchantId,
        mode: Mode,
        kind: &str,
        items: &[String],
        actor: &str,
        run_at: i64,
        now: i64,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO mass_actions (id, merchant_id, mode, kind, items, item_count, actor, \
             status, run_at, created_at) VALUES ($1, $2, $3, $9, $4, $5, $6, \
             'scheduled', $7, $8)",
        )
        .bind(id)
        .bind(merchant.as_str())
        .bind(mode.as_str())
        .bind(serde_json::Value::from(items.to_vec()).to_string())
        .bind(items.len() as i64)
        .bind(actor)
        .bind(run_at)
        .bind(now)
        .bind(kind)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    pub async fn mass_action(&self, id: &str) -> Result<Option<MassAction>, StoreError> {
        let row = sqlx::query(&format!(
            "SELECT {MASS_COLUMNS} FROM mass_actions WHERE id = $1"
        ))
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(MassAction::from_row).transpose()
    }

    /// The action of this merchant and mode still waiting or running, if any.
    pub async fn active_mass_action(
        &self,
        merchant: &MerchantId,
        mode: Mode,
    ) -> Result<Option<String>, StoreError> {
        let row = sqlx::query(
            "SELECT id FROM mass_actions WHERE merchant_id = $1 AND mode = $2 \
             AND status IN ('scheduled', 'running') ORDER BY created_at LIMIT 1",
        )
        .bind(merchant.as_str())
        .bind(mode.as_str())
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| r.try_get("id")).transpose().map_err(Into::into)
    }

    /// Cancels a scheduled action; false once it has started (or was cancelled).
    pub async fn cancel_mass_action(&self, id: &str, now: i64) -> Result<bool, StoreError> {
        Ok(sqlx::query(
            "UPDATE mass_actions SET status = 'cancelled', finished_at = $2 \
             WHERE id = $1 AND status = 'scheduled'",
        )
        .bind(id)
        .bind(now)
        .execute(&self.pool)
        .await?
        .rows_affected()
            == 1)
    }

    /// Claims the actions whose delay is over (each by one instance only).
    /// Claims the mass actions due by `now`, and the bulk refunds whose runner has not
    /// said it was alive since `stale_before` (it died midway: each refund is idempotent
    /// by the action's id, so running it again refunds nothing twice).
    pub async fn claim_due_mass_actions(
        &self,
        now: i64,
        stale_before: i64,
    ) -> Result<Vec<MassAction>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {MASS_COLUMNS} FROM mass_actions WHERE (status = 'scheduled' AND run_at <= $1) \
             OR (status = 'running' AND kind = 'refund' AND claimed_at < $2) \
             ORDER BY run_at LIMIT 10"
        ))
        .bind(now)
        .bind(stale_before)
        .fetch_all(&self.pool)
        .await?;
        let mut claimed = Vec::new();
        for row in &rows {
            let mut action = MassAction::from_row(row)?;
            let won = sqlx::query(
                "UPDATE mass_actions SET status = 'running', claimed_at = $2 WHERE id = $1 \
                 AND (status = 'scheduled' OR (status = 'running' AND claimed_at = $3))",
            )
            .bind(&action.id)
            .bind(now)
            .bind(action.claimed_at)
            .execute(&self.pool)
            .await?
            .rows_affected()
                == 1;
            action.claimed_at = Some(now);
            if won {
                claimed.push(action);
            }
        }
        Ok(claimed)
    }

    /// The runner of a running action is alive (so it is not taken up again).
    pub async fn mass_action_alive(&self, id: &str, now: i64) -> Result<(), StoreError> {
        sqlx::query("UPDATE mass_actions SET claimed_at = $2 WHERE id = $1 AND status = 'running'")
            .bind(id)
            .bind(now)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    pub async fn finish_mass_action(
        &self,
        id: &str,
        outcome: &str,
        now: i64,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE mass_actions SET status = 'done', outcome = $2, finished_at = $3 WHERE id = $1",
        )
        .bind(id)
        .bind(outcome)
        .bind(now)
        .execute(&self.pool)
        .await?;
        Ok(())
    }
}
