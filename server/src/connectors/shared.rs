//! What every connector shares: the HTTP client's settings, the access-token cache, and
//! the shape of an answer that cannot be read.

use std::{
    future::Future,
    time::{Duration, Instant},
};
use tokio::sync::Mutex;

use super::{ConnectorError, RailId};

/// The HTTP client every connector uses: short connect time-out, a whole-request
/// time-out, no redirects (an operator's API never redirects; a redirect is an attack
/// or a misconfiguration), rustls.
pub fn http_client(timeout: Duration) -> Result<reqwest::Client, reqwest::Error> {
    reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(5))
        .timeout(timeout)
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("malipo/", env!("CARGO_PKG_VERSION")))
        .build()
}

/// An operator's access token, fetched once and shared until shortly before it
/// expires. The lock makes concurrent callers share one fetch instead of stampeding the
/// token endpoint.
#[derive(Default)]
pub struct TokenCache {
    token: Mutex<Option<(String, Instant)>>,
}

impl TokenCache {
    /// The cached token, or a new one from `fetch` (the token and its lifetime), kept
    /// until `margin` before it expires.
    pub async fn get<F, Fut>(&self, margin: Duration, fetch: F) -> Result<String, ConnectorError>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<(String, Duration), ConnectorError>>,
    {
        let mut cached = self.token.lock().await;
        if let Some((token, good_until)) = cached.as_ref()
            && Instant::now() < *good_until
        {
            return Ok(token.clone());
        }
        let (token, lifetime) = fetch().await?;
        *cached = Some((
            token.clone(),
            Instant::now() + lifetime.saturating_sub(margin),
        ));
        Ok(token)
    }

    /// Drops the token (the operator said it is no longer valid).
    pub async fn forget(&self) {
        *self.token.lock().await = None;
    }
}

/// Whether two secrets (a MAC, a URL key) are equal, in time independent of where
/// they differ.
pub fn same(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

/// Sends `req` and reads the whole answer: its status and body.
pub async fn exchange(
    rail: RailId,
    req: reqwest::RequestBuilder,
) -> Result<(u16, bytes::Bytes), ConnectorError> {
    let res = req.send().await.map_err(unreachable(rail))?;
    let status = res.status().as_u16();
    let body = res.bytes().await.map_err(unreachable(rail))?;
    Ok((status, body))
}

/// A token endpoint's answer that cannot be read: never with its body, which may hold
/// a token.
pub fn unreadable_token(rail: RailId, status: u16) -> ConnectorError {
    ConnectorError::BadResponse {
        rail,
        status,
        body: "(token endpoint answer withheld)".into(),
    }
}

/// The operator could not be reached, or its answer could not be read in full.
pub fn unreachable(rail: RailId) -> impl Fn(reqwest::Error) -> ConnectorError {
    move |source| ConnectorError::Unreachable { rail, source }
}

/// An answer we cannot read, with the start of its body for the log.
pub fn bad_response(rail: RailId, status: u16, body: &[u8]) -> ConnectorError {
    ConnectorError::BadResponse {
        rail,
        status,
        body: String::from_utf8_lossy(body).chars().take(300).collect(),
    }
}
