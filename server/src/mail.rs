//! The dashboard's mail: over SMTP (lettre, rustls) when `[mail] smtp_url` is set, else
//! into the sandbox mailbox (a page of a test install; live mode refuses to start
//! without SMTP, see `Config::check_mail`).
//!
//! Mail is sent in its own task, so answering a request never waits for (or reveals,
//! by its timing) whether a mail went out: "forgot password" answers alike for every
//! address. Links in mail are not stored anywhere in clear: a failed send is logged
//! (without the recipient's full address) and the person asks for a new link.

use lettre::{
    AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor,
    message::{Mailbox, header::ContentType},
};
use secrecy::{ExposeSecret, SecretString};
use std::time::Duration;

use crate::{config::MailConfig, store::Store, time::now_ms};

/// How long one SMTP exchange may take.
const SMTP_TIMEOUT: Duration = Duration::from_secs(15);

/// A transport for `url` (`smtp://`, `smtps://`, `?tls=required`).
pub fn smtp_transport(
    url: &SecretString,
) -> Result<AsyncSmtpTransport<Tokio1Executor>, lettre::transport::smtp::Error> {
    Ok(
        AsyncSmtpTransport::<Tokio1Executor>::from_url(url.expose_secret().trim())?
            .timeout(Some(SMTP_TIMEOUT))
            .build(),
    )
}

/// Where mail goes.
#[derive(Clone)]
pub enum Mailer {
    Smtp {
        transport: AsyncSmtpTransport<Tokio1Executor>,
        from: Mailbox,
    },
    /// Kept in the database for the sandbox mailbox page.
    Sandbox(Store),
}

/// A mail to one person.
#[derive(Debug, Clone)]
pub struct Mail {
    pub to: String,
    pub subject: String,
    pub body: String,
}

/// `amina@lodge.example` → `a…@lodge.example`, for logs.
pub fn masked_address(address: &str) -> String {
    match address.split_once('@') {
        Some((local, domain)) => {
            let first: String = local.chars().take(1).collect();
            format!("{first}…@{domain}")
        }
        None => "…".into(),
    }
}

impl Mailer {
    pub fn new(config: &MailConfig, store: Store) -> anyhow::Result<Mailer> {
        if !config.smtp() {
            return Ok(Mailer::Sandbox(store));
        }
        Ok(Mailer::Smtp {
            transport: smtp_transport(&config.smtp_url)?,
            from: config.from.parse()?,
        })
    }

    /// Whether mail lands in the sandbox mailbox.
    pub fn is_sandbox(&self) -> bool {
        matches!(self, Mailer::Sandbox(_))
    }

    /// Sends in the background (one retry after a few seconds).
    pub fn send(&self, mail: Mail) {
        let mailer = self.clone();
        tokio::spawn(async move {
            for attempt in 0..2 {
                match mailer.deliver(&mail).await {
                    Ok(()) => return,
                    Err(e) => {
                        tracing::warn!(
                            to = %masked_address(&mail.to),
                            subject = %mail.subject,
                            attempt,
                            error = %e,
                            "mail not sent"
                        );
                        tokio::time::sleep(Duration::from_secs(5)).await;
                    }
                }
            }
        });
    }

    /// Sends now.
    pub async fn deliver(&self, mail: &Mail) -> anyhow::Result<()> {
        match self {
            Mailer::Sandbox(store) => {
                store
                    .insert_sandbox_mail(&mail.to, &mail.subject, &mail.body, now_ms())
                    .await?;
            }
            Mailer::Smtp { transport, from } => {
                let message = Message::builder()
                    .from(from.clone())
                    .to(mail.to.parse()?)
                    .subject(mail.subject.clone())
                    .header(ContentType::TEXT_PLAIN)
                    .body(mail.body.clone())?;
                transport.send(message).await?;
            }
        }
        tracing::info!(to = %masked_address(&mail.to), subject = %mail.subject, "mail sent");
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_are_masked_for_logs() {
        assert_eq!(masked_address("amina@lodge.example"), "a…@lodge.example");
        assert_eq!(masked_address("nonsense"), "…");
    }

    #[test]
    fn smtp_urls_are_checked() {
        for good in [
            "smtp://127.0.0.1:2525",
            "smtps://u:p@mail.example:465",
            "smtp://u:p@mail.example:587?tls=required",
        ] {
            assert!(smtp_transport(&SecretString::from(good)).is_ok(), "{good}");
        }
        assert!(smtp_transport(&SecretString::from("http://mail.example")).is_err());
    }
}
