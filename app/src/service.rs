//! The seam between pages and the server (server only). The server implements
//! [`PageService`] over its store and provides it as context; server functions call it.

use std::{future::Future, pin::Pin, sync::Arc};

use crate::{
    i18n::Locale,
    model::{CheckoutView, ReceiptView},
};

/// A boxed future, so the trait stays object-safe.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// An error the page cannot do anything about (the store is down): logged by the
/// server, shown to the shopper as "try again".
#[derive(Debug, Clone)]
pub struct ServiceUnavailable;

/// What the hosted pages need from the server.
pub trait PageService: Send + Sync + 'static {
    /// The checkout page for a session id, `None` when there is no such session.
    /// `embed` is the origin `checkout.js` says is framing the page; the view carries
    /// it back only if the merchant allows that origin. `wanted` is the request's
    /// language; without one, the page speaks the merchant's default.
    fn checkout_view<'a>(
        &'a self,
        session_id: &'a str,
        embed: Option<&'a str>,
        wanted: Option<Locale>,
    ) -> BoxFuture<'a, Result<Option<CheckoutView>, ServiceUnavailable>>;

    /// The shopper's receipt for a paid session; `None` when there is no such session
    /// or it is not paid.
    fn receipt_view<'a>(
        &'a self,
        session_id: &'a str,
        wanted: Option<Locale>,
    ) -> BoxFuture<'a, Result<Option<ReceiptView>, ServiceUnavailable>>;
}

/// How the service travels in Leptos context.
pub type SharedPageService = Arc<dyn PageService>;
