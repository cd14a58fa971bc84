//! The sandbox PayPal's buyer page (`/checkoutnow?token={order}`): log in with a test
//! buyer, then Approve or Cancel. A plain form: it works without JavaScript.

use axum::{
    Form, Router,
    extract::{Query, State},
    http::{HeaderValue, StatusCode, header},
    response::{Html, IntoResponse, Redirect, Response},
    routing::get,
};
use serde::Deserialize;

use super::{BUYER_PASSWORD, SandboxPaypal};
use crate::{connectors::shared::same, sandbox::esc};

pub fn router() -> Router<SandboxPaypal> {
    Router::new().route("/checkoutnow", get(approval_page).post(approval))
}

#[derive(Deserialize)]
struct Token {
    #[serde(default)]
    token: String,
}

#[derive(Deserialize)]
struct Decision {
    #[serde(default)]
    token: String,
    #[serde(default)]
    email: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    action: String,
}

const STYLE: &str = "body{font:16px/1.4 system-ui,sans-serif;margin:0;padding:16px;color:#1a1a1a;background:#f5f7fa}\
    main{max-width:420px;margin:0 auto;background:#fff;padding:16px;border-radius:8px}\
    h1{font-size:20px;color:#003087}input{font:inherit;width:100%;box-sizing:border-box;padding:10px;border:1px solid #888;border-radius:6px}\
    label{display:block;margin:10px 0 4px}button{font:inherit;padding:10px 16px;border-radius:20px;border:0;background:#0070ba;color:#fff;margin:12px 8px 0 0}\
    button.secondary{background:#eee;color:#1a1a1a}.err{color:#b00020}.note{font-size:14px;color:#555}";

/// A page with a strict CSP of its own (no scripts at all; framed by nobody).
fn page(title: &str, body: &str, status: StatusCode) -> Response {
    let html = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{}</title><style>{STYLE}</style></head><body><main>{body}</main></body></html>",
        esc(title)
    );
    let mut response = (status, Html(html)).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'; base-uri 'none'",
        ),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    response
}

fn gone(why: &str) -> Response {
    page(
        "PayPal (sandbox)",
        &format!("<h1>PayPal (sandbox)</h1><p>{}</p>", esc(why)),
        StatusCode::NOT_FOUND,
    )
}

fn login(paypal: &SandboxPaypal, token: &str, problem: Option<&str>) -> Response {
    let Some((brand, description, amount, open)) = paypal.summary(token) else {
        return gone("This order is not known.");
    };
    if !open {
        return gone("This order can no longer be approved.");
    }
    let problem = problem
        .map(|p| format!("<p class=\"err\" role=\"alert\">{}</p>", esc(p)))
        .unwrap_or_default();
    let body = format!(
        "<h1>PayPal (sandbox)</h1>\
         <p>Pay <strong>{}</strong> to <strong>{}</strong></p><p class=\"note\">{}</p>{problem}\
         <form method=\"post\" action=\"/checkoutnow\">\
         <input type=\"hidden\" name=\"token\" value=\"{}\">\
         <label for=\"email\">Email</label>\
         <input id=\"email\" name=\"email\" type=\"email\" autocomplete=\"username\" value=\"buyer@example.com\">\
         <label for=\"password\">Password</label>\
         <input id=\"password\" name=\"password\" type=\"password\" autocomplete=\"current-password\">\
         <button name=\"action\" value=\"approve\">Approve and pay</button>\
         <button name=\"action\" value=\"cancel\" class=\"secondary\" formnovalidate>Cancel and return to {}</button>\
         </form>\
         <p class=\"note\">Test buyers (password <code>{BUYER_PASSWORD}</code>): buyer@example.com pays; \
         declined@example.com is declined; pending@example.com is held, then paid; \
         denied@example.com is held, then denied; gone@example.com approves but never comes back.</p>",
        esc(&amount.to_string()),
        esc(&brand),
        esc(&description),
        esc(token),
        esc(&brand),
    );
    page("Log in to PayPal (sandbox)", &body, StatusCode::OK)
}

async fn approval_page(State(paypal): State<SandboxPaypal>, Query(q): Query<Token>) -> Response {
    login(&paypal, &q.token, None)
}

async fn approval(State(paypal): State<SandboxPaypal>, Form(d): Form<Decision>) -> Response {
    let approve = d.action == "approve";
    if approve && (d.email.trim().is_empty() || !same(&d.password, BUYER_PASSWORD)) {
        return login(
            &paypal,
            &d.token,
            Some("Some of your info didn't match: check the email and password."),
        );
    }
    match paypal.decide(&d.token, &d.email, approve) {
        Ok(Some(url)) => Redirect::to(&url).into_response(),
        Ok(None) => page(
            "PayPal (sandbox)",
            "<h1>PayPal (sandbox)</h1><p data-approved=\"true\">You approved the payment. \
             You can close this window: the shop will be told.</p>",
            StatusCode::OK,
        ),
        Err(why) => gone(why),
    }
}
