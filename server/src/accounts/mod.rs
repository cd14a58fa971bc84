//! Dashboard accounts: sign-up, address verification, sign-in with a second factor,
//! password reset, re-authentication and throttling. The HTTP side is
//! [`crate::dashboard`]; this module decides, and the store keeps.
//!
//! # The rules (the README's "Signing in and recovery")
//! - Mail goes only ever to the address stored on the account, which its owner proved
//!   by a mailed link before the account could sign in. A reset request names an
//!   address and nothing else; nothing in a request can redirect a mail (7pay).
//! - Mailed links, session cookies and recovery codes are random, stored by hash only,
//!   and work once (sessions: until they expire or are ended).
//! - Failed sign-ins are counted per account and per client address over a window;
//!   past the limit, sign-in is refused with the time to wait, whether the password
//!   was right or not.
//! - A password reset ends every sign-in session of the account, and does not turn off
//!   two-factor sign-in.

pub mod password;
pub mod roles;
pub mod totp;

pub use roles::{Permission, Role};

use secrecy::{ExposeSecret, SecretString};

use crate::{
    domain::{MerchantId, ids::UserId, keys::hash_token},
    mail::{Mail, Mailer},
    merchants::parse_name,
    store::{
        MerchantRecord, NewUserSession, SignedIn, Store, StoreError, TokenPurpose, UserRecord,
    },
    time::now_ms,
};

/// A sign-in session lasts at most this long.
pub const SESSION_TTL_MS: i64 = 12 * 3600 * 1000;
/// …and ends after this long unused.
pub const SESSION_IDLE_MS: i64 = 2 * 3600 * 1000;
/// A password or code typed this recently counts for sensitive actions.
pub const REAUTH_WINDOW_MS: i64 = 10 * 60 * 1000;
/// How long a sign-in may wait for its second factor.
pub const SECOND_FACTOR_TTL_MS: i64 = 10 * 60 * 1000;
/// An address-verification link works for a day.
pub const VERIFY_TTL_MS: i64 = 24 * 3600 * 1000;
/// A password-reset link works for 30 minutes.
pub const RESET_TTL_MS: i64 = 30 * 60 * 1000;
/// An invitation works for a week.
pub const INVITE_TTL_MS: i64 = 7 * 24 * 3600 * 1000;

/// Throttling windows and limits.
pub const FAILURE_WINDOW_MS: i64 = 15 * 60 * 1000;
/// Failed passwords (or codes) per account per window.
pub const FAILURES_PER_ACCOUNT: i64 = 5;
/// Failed sign-ins per client address per window.
pub const FAILURES_PER_IP: i64 = 30;
/// Sign-ups, verification and reset mails per client address per hour (the default of
/// `[dashboard] mails_per_ip_per_hour`).
pub const MAILS_PER_IP_PER_HOUR: i64 = 10;

/// What went wrong, in words a person can act on. No variant says whether an address
/// has an account.
#[derive(Debug, thiserror::Error)]
pub enum AccountError {
    #[error("Enter a valid email address.")]
    InvalidEmail,
    #[error("{0}")]
    WeakPassword(#[from] password::WeakPassword),
    #[error("Enter a business name of 1 to 100 characters.")]
    InvalidName,
    #[error("The email address or password is not right.")]
    WrongPassword,
    #[error("That code is not right, or was used already.")]
    WrongCode,
    #[error("Confirm your email address first: use the link we sent you, or ask for a new one.")]
    Unverified,
    #[error("This link has expired or was used already. Ask for a new one.")]
    BadLink,
    #[error("Too many attempts. Try again in {minutes} minutes, or reset your password.")]
    Throttled { minutes: i64 },
    #[error("This account has no access to a merchant any more.")]
    NoMembership,
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Other(#[from] anyhow::Error),
}

impl AccountError {
    /// The stable code shown with the message (and used by tests).
    pub fn code(&self) -> &'static str {
        match self {
            AccountError::InvalidEmail => "invalid_email",
            AccountError::WeakPassword(_) => "weak_password",
            AccountError::InvalidName => "invalid_name",
            AccountError::WrongPassword => "wrong_password",
            AccountError::WrongCode => "wrong_code",
            AccountError::Unverified => "email_unverified",
            AccountError::BadLink => "link_expired",
            AccountError::Throttled { .. } => "too_many_attempts",
            AccountError::NoMembership => "no_membership",
            AccountError::Store(_) | AccountError::Other(_) => "unavailable",
        }
    }
}

/// An address as stored and compared: trimmed, lower-cased, one plain address.
pub fn normalize_email(input: &str) -> Option<String> {
    let email = input.trim().to_lowercase();
    if email.len() > 254 || email.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return None;
    }
    let address: lettre::Address = email.parse().ok()?;
    // One address only: no display names, lists or comments.
    (address.to_string() == email && !email.contains([',', ';', '<', '>', '"', '(', ')']))
        .then_some(email)
}

/// A new random token for a cookie or a link, and its stored hash.
pub fn new_token() -> (SecretString, String) {
    let token = crate::domain::ids::random_base62(43);
    let hash = hash_token(&token);
    (SecretString::from(token), hash)
}

/// A started sign-in: the cookie's token and whether a second factor is owed.
pub struct SignInStarted {
    pub token: SecretString,
    pub needs_second_factor: bool,
}

/// The dashboard's account logic.
#[derive(Clone)]
pub struct Accounts {
    store: Store,
    mailer: Mailer,
    public_url: String,
    mails_per_ip_per_hour: i64,
    /// The dashboard's CSRF key (a per-install secret), read from the store once.
    csrf_key: std::sync::Arc<tokio::sync::OnceCell<SecretString>>,
}

impl Accounts {
    pub fn new(
        store: Store,
        mailer: Mailer,
        public_url: &str,
        mails_per_ip_per_hour: i64,
    ) -> Accounts {
        Accounts {
            store,
            mailer,
            public_url: public_url.trim_end_matches('/').to_owned(),
            mails_per_ip_per_hour,
            csrf_key: Default::default(),
        }
    }

    /// The key the dashboard's CSRF tokens are made with (read once, then kept).
    pub async fn csrf_key(&self) -> Result<&SecretString, StoreError> {
        self.csrf_key
            .get_or_try_init(|| self.store.instance_secret("dashboard_csrf"))
            .await
    }

    pub fn mailer(&self) -> &Mailer {
        &self.mailer
    }

    /// Counts this attempt in `scope` before it is checked (as a failure until it
    /// succeeds), so requests racing each other are all counted: refused when the window
    /// then holds more than `limit`. Returns the attempt's time, to forget it on success.
    async fn admit(&self, scope: &str, limit: i64, window: i64) -> Result<i64, AccountError> {
        let now = now_ms();
        self.store.record_auth_failure(scope, now).await?;
        let (count, oldest) = self.store.auth_failures(scope, now - window).await?;
        if count > limit {
            let free_at = oldest.unwrap_or(now) + window;
            let minutes = ((free_at - now).max(0) + 59_999) / 60_000;
            return Err(AccountError::Throttled {
                minutes: minutes.max(1),
            });
        }
        Ok(now)
    }

    /// An admitted attempt that succeeded is not a failure.
    async fn succeeded(&self, scope: &str, at: i64) -> Result<(), AccountError> {
        self.store.forget_auth_failure(scope, at).await?;
        Ok(())
    }

    /// Counts one mail caused by a client address, refusing past the hourly limit.
    async fn mail_budget(&self, ip: &str) -> Result<(), AccountError> {
        self.admit(
            &format!("mail:{ip}"),
            self.mails_per_ip_per_hour,
            3600 * 1000,
        )
        .await?;
        Ok(())
    }

    /// Signs up a person with a new merchant they own, and mails a link to confirm the
    /// address. An address with a confirmed account gets a mail saying so instead; one
    /// never confirmed takes this sign-up's password and gets a new link. The answer is
    /// the same either way.
    pub async fn sign_up(
        &self,
        business: &str,
        email: &str,
        password: SecretString,
        ip: &str,
    ) -> Result<(), AccountError> {
        let email = normalize_email(email).ok_or(AccountError::InvalidEmail)?;
        let business = parse_name(business).map_err(|_| AccountError::InvalidName)?;
        password::check_new(password.expose_secret(), &email)?;
        self.mail_budget(ip).await?;
        let hash = password::hash(password).await?;
        let now = now_ms();
        let user_id = UserId::generate();
        let merchant = MerchantRecord {
            id: MerchantId::generate(),
            name: business,
            created_at: now,
        };
        if self
            .store
            .insert_user_with_merchant(&user_id, &email, &hash, &merchant)
            .await?
        {
            self.store
                .audit(
                    Some(&merchant.id),
                    Some(&user_id),
                    &email,
                    "account.created",
                    "",
                    Some(ip),
                    now,
                )
                .await?;
            self.send_verification(&user_id, &email).await?;
        } else if let Some(existing) = self
            .store
            .user_by_email(&email)
            .await?
            .filter(|u| !u.email_verified)
        {
            // Never confirmed: nobody has proven this mailbox yet, so the newest sign-up
            // sets the password, and only its own link (which asks for that password)
            // confirms it. Someone who signed up first with another person's address
            // cannot keep a password the owner did not choose.
            self.store.set_password(&existing.id, &hash, now).await?;
            self.send_verification(&existing.id, &existing.email)
                .await?;
        } else {
            self.mailer.send(Mail {
                to: email.clone(),
                subject: "You already have a Malipo account".into(),
                body: format!(
                    "Someone (perhaps you) tried to sign up to Malipo with this address, which \
                     already has an account.\n\nSign in: {url}/dashboard/sign-in\nForgot your \
                     password? {url}/dashboard/forgot\n\nIf it was not you, you can ignore this \
                     mail: nothing has changed.\n",
                    url = self.public_url
                ),
            });
        }
        Ok(())
    }

    async fn send_verification(&self, user: &UserId, email: &str) -> Result<(), AccountError> {
        let (token, hash) = new_token();
        let now = now_ms();
        self.store
            .insert_user_token(
                &hash,
                TokenPurpose::VerifyEmail,
                Some(user),
                email,
                None,
                None,
                None,
                now,
                now + VERIFY_TTL_MS,
            )
            .await?;
        self.mailer.send(Mail {
            to: email.to_owned(),
            subject: "Confirm your email address for Malipo".into(),
            body: format!(
                "Welcome to Malipo.\n\nConfirm this address to finish signing up (the link \
                 works once, for 24 hours):\n\n{}/dashboard/verify/{}\n\nIf you did not sign \
                 up, ignore this mail.\n",
                self.public_url,
                token.expose_secret()
            ),
        });
        Ok(())
    }

    /// Mails a new confirmation link if the address has an unconfirmed account. The
    /// answer is the same whatever the address, and comes before any lookup (the work is
    /// done in the background, so its timing says nothing either).
    pub async fn resend_verification(&self, email: &str, ip: &str) -> Result<(), AccountError> {
        let email = normalize_email(email).ok_or(AccountError::InvalidEmail)?;
        self.mail_budget(ip).await?;
        let this = self.clone();
        tokio::spawn(async move {
            let sent = async {
                if let Some(user) = this.store.user_by_email(&email).await?
                    && !user.email_verified
                {
                    this.send_verification(&user.id, &user.email).await?;
                }
                Ok::<_, AccountError>(())
            };
            if let Err(e) = sent.await {
                tracing::warn!(error = %e, "confirmation link not sent");
            }
        });
        Ok(())
    }

    /// Whether a confirmation link is good (for the page that asks to confirm).
    pub async fn verification_link_ok(&self, token: &str) -> Result<bool, AccountError> {
        Ok(self
            .store
            .peek_user_token(&hash_token(token), TokenPurpose::VerifyEmail, now_ms())
            .await?
            .is_some())
    }

    /// Confirms an address with its link (once) and the account's password, and signs
    /// the person in. Both are needed: the link proves the mailbox, the password that
    /// this is the sign-up its owner made.
    pub async fn verify_email(
        &self,
        token: &str,
        password: SecretString,
        ip: &str,
        user_agent: Option<&str>,
    ) -> Result<SignInStarted, AccountError> {
        let now = now_ms();
        let hash = hash_token(token);
        let record = self
            .store
            .peek_user_token(&hash, TokenPurpose::VerifyEmail, now)
            .await?
            .ok_or(AccountError::BadLink)?;
        let user_id = record.user_id.ok_or(AccountError::BadLink)?;
        let user = self
            .store
            .user(&user_id)
            .await?
            .ok_or(AccountError::BadLink)?;
        // The link proves the address it was sent to, and only while it is the account's.
        if user.email != record.email {
            return Err(AccountError::BadLink);
        }
        let scope = format!("account:{}", user.email);
        let at = self
            .admit(&scope, FAILURES_PER_ACCOUNT, FAILURE_WINDOW_MS)
            .await?;
        if !password::verify(password, Some(user.password_hash.clone())).await {
            return Err(AccountError::WrongPassword);
        }
        self.succeeded(&scope, at).await?;
        self.store
            .take_user_token(&hash, TokenPurpose::VerifyEmail, now)
            .await?
            .ok_or(AccountError::BadLink)?;
        self.store.mark_email_verified(&user.id, now).await?;
        self.store.revoke_user_sessions(&user.id, None, now).await?;
        self.store
            .audit(
                None,
                Some(&user.id),
                &user.email,
                "email.verified",
                "",
                Some(ip),
                now,
            )
            .await?;
        self.start_session(&user, ip, user_agent).await
    }

    /// Checks an email and password (throttled per account and per client address:
    /// each attempt is counted before it is checked) and starts a sign-in session.
    pub async fn sign_in(
        &self,
        email: &str,
        password: SecretString,
        ip: &str,
        user_agent: Option<&str>,
    ) -> Result<SignInStarted, AccountError> {
        let email = normalize_email(email).unwrap_or_default();
        let account_scope = format!("account:{email}");
        let ip_scope = format!("ip:{ip}");
        let ip_at = self
            .admit(&ip_scope, FAILURES_PER_IP, FAILURE_WINDOW_MS)
            .await?;
        self.admit(&account_scope, FAILURES_PER_ACCOUNT, FAILURE_WINDOW_MS)
            .await?;
        let user = if email.is_empty() {
            None
        } else {
            self.store.user_by_email(&email).await?
        };
        let ok = password::verify(password, user.as_ref().map(|u| u.password_hash.clone())).await;
        let Some(user) = user.filter(|_| ok) else {
            return Err(AccountError::WrongPassword);
        };
        self.succeeded(&ip_scope, ip_at).await?;
        self.store.clear_auth_failures(&account_scope).await?;
        if !user.email_verified {
            return Err(AccountError::Unverified);
        }
        self.start_session(&user, ip, user_agent).await
    }

    async fn start_session(
        &self,
        user: &UserRecord,
        ip: &str,
        user_agent: Option<&str>,
    ) -> Result<SignInStarted, AccountError> {
        self.start_session_for(user, None, ip, user_agent).await
    }

    /// Starts a sign-in session on `merchant` (one of the person's), or on their first.
    async fn start_session_for(
        &self,
        user: &UserRecord,
        merchant: Option<&MerchantId>,
        ip: &str,
        user_agent: Option<&str>,
    ) -> Result<SignInStarted, AccountError> {
        let (merchant, _) = self
            .store
            .memberships(&user.id)
            .await?
            .into_iter()
            .find(|(m, _)| merchant.is_none_or(|want| m.id == *want))
            .ok_or(AccountError::NoMembership)?;
        let (token, hash) = new_token();
        let now = now_ms();
        let full = !user.totp_enabled;
        let user_agent: Option<String> = user_agent.map(|ua| ua.chars().take(200).collect());
        self.store
            .insert_user_session(NewUserSession {
                token_hash: &hash,
                user_id: &user.id,
                merchant_id: &merchant.id,
                full,
                ip: Some(ip),
                user_agent: user_agent.as_deref(),
                now,
                expires_at: now
                    + if full {
                        SESSION_TTL_MS
                    } else {
                        SECOND_FACTOR_TTL_MS
                    },
            })
            .await?;
        if full {
            self.store
                .audit(
                    Some(&merchant.id),
                    Some(&user.id),
                    &user.email,
                    "signed_in",
                    "",
                    Some(ip),
                    now,
                )
                .await?;
        }
        Ok(SignInStarted {
            token,
            needs_second_factor: !full,
        })
    }

    /// Checks a TOTP code, or a recovery code, for a person (throttled with the
    /// password: the same account budget, each attempt counted before it is checked).
    pub async fn check_second_factor(
        &self,
        user: &UserRecord,
        code: &str,
    ) -> Result<(), AccountError> {
        let scope = format!("account:{}", user.email);
        let at = self
            .admit(&scope, FAILURES_PER_ACCOUNT, FAILURE_WINDOW_MS)
            .await?;
        let now = now_ms();
        let code = code.trim();
        if let Some(secret) = self.store.totp_secret(&user.id).await? {
            if code.chars().filter(char::is_ascii_digit).count() == 6 && code.len() <= 8 {
                if let Some(step) = totp::accept(&secret, code, now / 1000, user.totp_last_step)
                    && self.store.use_totp_step(&user.id, step).await?
                {
                    self.succeeded(&scope, at).await?;
                    return Ok(());
                }
            } else if self
                .store
                .use_recovery_code(&user.id, &totp::recovery_code_hash(code), now)
                .await?
            {
                self.succeeded(&scope, at).await?;
                self.store
                    .audit(
                        None,
                        Some(&user.id),
                        &user.email,
                        "two_factor.recovery_code_used",
                        "",
                        None,
                        now,
                    )
                    .await?;
                return Ok(());
            }
        }
        Err(AccountError::WrongCode)
    }

    /// Completes a sign-in that owed a second factor: the session gets a new token (the
    /// cookie is replaced) and a full session's lifetime.
    pub async fn second_factor(
        &self,
        session: &SignedIn,
        code: &str,
        ip: &str,
    ) -> Result<SecretString, AccountError> {
        self.check_second_factor(&session.user, code).await?;
        let now = now_ms();
        let (token, hash) = new_token();
        if !self
            .store
            .complete_user_session(&session.token_hash, &hash, now, now + SESSION_TTL_MS)
            .await?
        {
            return Err(AccountError::BadLink);
        }
        self.store
            .audit(
                Some(&session.merchant.id),
                Some(&session.user.id),
                &session.user.email,
                "signed_in",
                "with two-factor",
                Some(ip),
                now,
            )
            .await?;
        Ok(token)
    }

    /// Re-authentication before a sensitive action: the password, or a current TOTP
    /// code when 2FA is on (throttled with sign-in).
    pub async fn reauthenticate(
        &self,
        session: &SignedIn,
        password: SecretString,
        code: &str,
    ) -> Result<(), AccountError> {
        if !code.trim().is_empty() && session.user.totp_enabled {
            self.check_second_factor(&session.user, code).await?;
        } else {
            let scope = format!("account:{}", session.user.email);
            let at = self
                .admit(&scope, FAILURES_PER_ACCOUNT, FAILURE_WINDOW_MS)
                .await?;
            if !password::verify(password, Some(session.user.password_hash.clone())).await {
                return Err(AccountError::WrongPassword);
            }
            self.succeeded(&scope, at).await?;
        }
        self.store
            .reauthenticated(&session.token_hash, now_ms())
            .await?;
        Ok(())
    }

    /// Mails a reset link to the account's own address, if there is such an account.
    /// Only the address is read from the request; the answer is the same for every
    /// address and comes before any lookup (the work is done in the background). An
    /// account whose address was never confirmed gets a reset link too: using it proves
    /// the mailbox, so it confirms the address as well.
    pub async fn forgot_password(&self, email: &str, ip: &str) -> Result<(), AccountError> {
        let email = normalize_email(email).ok_or(AccountError::InvalidEmail)?;
        self.mail_budget(ip).await?;
        let this = self.clone();
        let ip = ip.to_owned();
        tokio::spawn(async move {
            if let Err(e) = this.send_reset(&email, &ip).await {
                tracing::warn!(error = %e, "reset link not sent");
            }
        });
        Ok(())
    }

    async fn send_reset(&self, email: &str, ip: &str) -> Result<(), AccountError> {
        let Some(user) = self.store.user_by_email(email).await? else {
            return Ok(());
        };
        let (token, hash) = new_token();
        let now = now_ms();
        self.store
            .insert_user_token(
                &hash,
                TokenPurpose::ResetPassword,
                Some(&user.id),
                &user.email,
                None,
                None,
                None,
                now,
                now + RESET_TTL_MS,
            )
            .await?;
        self.store
            .audit(
                None,
                Some(&user.id),
                &user.email,
                "password.reset_requested",
                "",
                Some(ip),
                now,
            )
            .await?;
        // To the stored address, never to the one typed (they are equal here, but the
        // account's is the one that counts).
        self.mailer.send(Mail {
            to: user.email.clone(),
            subject: "Reset your Malipo password".into(),
            body: format!(
                "Someone asked to reset the password of your Malipo account.\n\nChoose a new \
                 password here (the link works once, for 30 minutes):\n\n{}/dashboard/reset/{}\n\n\
                 Resetting signs you out everywhere. It does not turn off two-factor sign-in.\n\
                 If you did not ask, ignore this mail: your password stays as it is.\n",
                self.public_url,
                token.expose_secret()
            ),
        });
        Ok(())
    }

    /// Whether a reset link is good (for the page with the new-password form).
    pub async fn reset_link_ok(&self, token: &str) -> Result<bool, AccountError> {
        Ok(self
            .store
            .peek_user_token(&hash_token(token), TokenPurpose::ResetPassword, now_ms())
            .await?
            .is_some())
    }

    /// Sets a new password with a reset link (once); every session of the account ends.
    pub async fn reset_password(
        &self,
        token: &str,
        new_password: SecretString,
        ip: &str,
    ) -> Result<(), AccountError> {
        let now = now_ms();
        let hash = hash_token(token);
        let record = self
            .store
            .peek_user_token(&hash, TokenPurpose::ResetPassword, now)
            .await?
            .ok_or(AccountError::BadLink)?;
        password::check_new(new_password.expose_secret(), &record.email)?;
        let new_hash = password::hash(new_password).await?;
        let record = self
            .store
            .take_user_token(&hash, TokenPurpose::ResetPassword, now)
            .await?
            .ok_or(AccountError::BadLink)?;
        let user_id = record.user_id.ok_or(AccountError::BadLink)?;
        let user = self
            .store
            .user(&user_id)
            .await?
            .ok_or(AccountError::BadLink)?;
        if user.email != record.email {
            return Err(AccountError::BadLink);
        }
        self.store.set_password(&user.id, &new_hash, now).await?;
        // The link reached the account's address: that proves it, if nothing had yet.
        self.store.mark_email_verified(&user.id, now).await?;
        self.store
            .clear_auth_failures(&format!("account:{}", user.email))
            .await?;
        self.store
            .audit(
                None,
                Some(&user.id),
                &user.email,
                "password.reset",
                "every session ended",
                Some(ip),
                now,
            )
            .await?;
        self.mailer.send(Mail {
            to: user.email.clone(),
            subject: "Your Malipo password was changed".into(),
            body: format!(
                "The password of your Malipo account was just reset, and every sign-in \
                 session was ended.\n\nIf this was not you, reset it again now: \
                 {}/dashboard/forgot\n",
                self.public_url
            ),
        });
        Ok(())
    }

    /// Starts (or restarts) two-factor set-up: a new secret, kept until confirmed.
    pub async fn start_totp(&self, user: &UserRecord) -> Result<TotpSetup, AccountError> {
        let secret = match self.store.totp_pending(&user.id).await? {
            Some(secret) => secret,
            None => {
                let secret = totp::new_secret()?;
                self.store.set_totp_pending(&user.id, &secret).await?;
                secret
            }
        };
        let uri = totp::otpauth_uri(&secret, &user.email);
        let svg = totp::qr_svg(&uri).ok_or_else(|| anyhow::anyhow!("QR code too large"))?;
        Ok(TotpSetup { secret, svg })
    }

    /// Confirms set-up with a first code: 2FA is on, and the ten recovery codes are
    /// returned to be shown once.
    pub async fn confirm_totp(
        &self,
        session: &SignedIn,
        code: &str,
        ip: &str,
    ) -> Result<Vec<String>, AccountError> {
        let user = &session.user;
        let scope = format!("account:{}", user.email);
        let at = self
            .admit(&scope, FAILURES_PER_ACCOUNT, FAILURE_WINDOW_MS)
            .await?;
        let now = now_ms();
        let secret = self
            .store
            .totp_pending(&user.id)
            .await?
            .ok_or(AccountError::WrongCode)?;
        let Some(step) = totp::accept(&secret, code, now / 1000, None) else {
            return Err(AccountError::WrongCode);
        };
        self.succeeded(&scope, at).await?;
        let codes = totp::new_recovery_codes()?;
        let hashes: Vec<String> = codes.iter().map(|c| totp::recovery_code_hash(c)).collect();
        self.store
            .enable_totp(&user.id, &secret, step, &hashes, now)
            .await?;
        self.store.reauthenticated(&session.token_hash, now).await?;
        // Whoever else was signed in with the password alone is not any more.
        self.store
            .revoke_user_sessions(&user.id, Some(&session.token_hash), now)
            .await?;
        self.store
            .audit(
                Some(&session.merchant.id),
                Some(&user.id),
                &user.email,
                "two_factor.enabled",
                "",
                Some(ip),
                now,
            )
            .await?;
        Ok(codes)
    }
}

/// An invitation as its page shows it.
pub struct InviteView {
    pub email: String,
    pub merchant: String,
    pub role: Role,
    /// The invited address has an account: accepting asks for its password.
    pub has_account: bool,
}

impl Accounts {
    /// Invites `email` to `session`'s merchant as `role`, by a mailed link (a week).
    pub async fn invite(
        &self,
        session: &SignedIn,
        email: &str,
        role: Role,
        ip: &str,
    ) -> Result<String, AccountError> {
        let email = normalize_email(email).ok_or(AccountError::InvalidEmail)?;
        self.mail_budget(ip).await?;
        let (token, hash) = new_token();
        let now = now_ms();
        self.store
            .insert_user_token(
                &hash,
                TokenPurpose::Invite,
                None,
                &email,
                Some(&session.merchant.id),
                Some(role),
                Some(&session.user.id),
                now,
                now + INVITE_TTL_MS,
            )
            .await?;
        self.store
            .audit(
                Some(&session.merchant.id),
                Some(&session.user.id),
                &session.user.email,
                "team.invited",
                &format!("{email} as {role}"),
                Some(ip),
                now,
            )
            .await?;
        self.mailer.send(Mail {
            to: email.clone(),
            subject: format!("Join {} on Malipo", session.merchant.name),
            body: format!(
                "{} invited you to the Malipo dashboard of {} as {}.\n\nAccept (the link \
                 works once, for 7 days):\n\n{}/dashboard/invite/{}\n\nIf you do not know \
                 them, ignore this mail.\n",
                session.user.email,
                session.merchant.name,
                role,
                self.public_url,
                token.expose_secret()
            ),
        });
        Ok(email)
    }

    /// What an invitation link offers, if it is still good.
    pub async fn invite_view(&self, token: &str) -> Result<Option<InviteView>, AccountError> {
        let Some(record) = self
            .store
            .peek_user_token(&hash_token(token), TokenPurpose::Invite, now_ms())
            .await?
        else {
            return Ok(None);
        };
        let (Some(merchant_id), Some(role)) = (record.merchant_id, record.role) else {
            return Ok(None);
        };
        let Some(merchant) = self.store.merchant(&merchant_id).await? else {
            return Ok(None);
        };
        let has_account = self.store.user_by_email(&record.email).await?.is_some();
        Ok(Some(InviteView {
            email: record.email,
            merchant: merchant.name,
            role,
            has_account,
        }))
    }

    /// Accepts an invitation (once): with the account's password when the address has
    /// one (checked before the link is used, and throttled like sign-in), else with a new
    /// password for a new account whose address the link has proven. Signs in to the
    /// inviting merchant.
    pub async fn accept_invite(
        &self,
        token: &str,
        password: SecretString,
        ip: &str,
        user_agent: Option<&str>,
    ) -> Result<SignInStarted, AccountError> {
        let hash = hash_token(token);
        let now = now_ms();
        let record = self
            .store
            .peek_user_token(&hash, TokenPurpose::Invite, now)
            .await?
            .ok_or(AccountError::BadLink)?;
        let (Some(merchant), Some(role)) = (record.merchant_id.clone(), record.role) else {
            return Err(AccountError::BadLink);
        };
        // The inviter must still be able to give this role: someone removed or demoted
        // since cannot bring people in through a link they sent before.
        let inviter_may = match &record.created_by {
            Some(inviter) => self
                .store
                .role_in(inviter, &merchant)
                .await?
                .is_some_and(|r| {
                    r.may(Permission::ManageTeam)
                        && (role != Role::Owner || r.may(Permission::ManageOwners))
                }),
            None => false,
        };
        if !inviter_may {
            return Err(AccountError::BadLink);
        }
        let existing = self.store.user_by_email(&record.email).await?;
        let new_hash = match &existing {
            Some(user) => {
                let scope = format!("account:{}", user.email);
                let at = self
                    .admit(&scope, FAILURES_PER_ACCOUNT, FAILURE_WINDOW_MS)
                    .await?;
                if !password::verify(password, Some(user.password_hash.clone())).await {
                    return Err(AccountError::WrongPassword);
                }
                self.succeeded(&scope, at).await?;
                None
            }
            None => {
                password::check_new(password.expose_secret(), &record.email)?;
                Some(password::hash(password).await?)
            }
        };
        self.store
            .take_user_token(&hash, TokenPurpose::Invite, now)
            .await?
            .ok_or(AccountError::BadLink)?;
        let user = match (existing, new_hash) {
            (Some(user), _) => {
                self.store
                    .add_membership(&merchant, &user.id, role, now)
                    .await?;
                self.store.mark_email_verified(&user.id, now).await?;
                user
            }
            (None, Some(new_hash)) => {
                let id = UserId::generate();
                if !self
                    .store
                    .insert_invited_user(&id, &record.email, &new_hash, &merchant, role, now)
                    .await?
                {
                    return Err(AccountError::BadLink);
                }
                self.store.user(&id).await?.ok_or(AccountError::BadLink)?
            }
            (None, None) => return Err(AccountError::BadLink),
        };
        self.store
            .audit(
                Some(&merchant),
                Some(&user.id),
                &user.email,
                "team.joined",
                role.as_str(),
                Some(ip),
                now,
            )
            .await?;
        let user = self
            .store
            .user(&user.id)
            .await?
            .ok_or(AccountError::BadLink)?;
        self.start_session_for(&user, Some(&merchant), ip, user_agent)
            .await
    }
}

/// A two-factor set-up in progress: the secret (typed by hand if the QR code cannot be
/// scanned) and its QR code.
pub struct TotpSetup {
    pub secret: String,
    pub svg: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_are_one_plain_lower_case_address() {
        assert_eq!(
            normalize_email("  Amina@Lodge.Example "),
            Some("amina@lodge.example".into())
        );
        for bad in [
            "",
            "amina",
            "amina@lodge.example,eve@evil.example",
            "amina@lodge.example eve@evil.example",
            "Amina <amina@lodge.example>",
            "amina@lodge.example\r\nBcc: eve@evil.example",
            "amina@lodge.example;eve@evil.example",
        ] {
            assert_eq!(normalize_email(bad), None, "{bad:?}");
        }
    }
}
