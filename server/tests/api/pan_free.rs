//! No card number reaches Malipo. The `malipo` binary runs unmodified behind a recording
//! proxy (its public URL, so every request its server receives — the shopper's, the
//! processor's redirects back — passes through it), logging at `debug`, with the sandbox
//! card gateway on its own port. Every card flow is driven as a browser would: the frames'
//! fields go to the gateway, the hosted page's form too. Then every request Malipo
//! received (line, headers, body), every log line it wrote and every byte of its database
//! files are searched for a 13–19 digit Luhn-valid number: there must be none.

use axum::{
    Router,
    body::Bytes,
    extract::State,
    http::{HeaderMap, Method, StatusCode, Uri},
    response::{IntoResponse, Response},
};
use serde_json::{Value, json};
use std::{
    process::{Command, Stdio},
    sync::{Arc, Mutex},
};

/// Card-like numbers in `bytes`: runs of 13–19 digits (single spaces or dashes allowed
/// between them, as people type them), not part of a longer word or number, passing
/// the Luhn check, and starting as issued cards do (2–6: Mastercard, Visa, Amex, Diners,
/// JCB, Discover, UnionPay; 1 only for 15-digit UATP airline cards) — so a Unix time in
/// milliseconds (13 digits from 1…) is not one.
pub fn card_numbers(bytes: &[u8]) -> Vec<String> {
    let mut found = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if !bytes[i].is_ascii_digit() || (i > 0 && bytes[i - 1].is_ascii_alphanumeric()) {
            i += 1;
            continue;
        }
        let mut digits = String::new();
        let mut j = i;
        while j < bytes.len() {
            let b = bytes[j];
            if b.is_ascii_digit() {
                digits.push(char::from(b));
                j += 1;
            } else if (b == b' ' || b == b'-')
                && j + 1 < bytes.len()
                && bytes[j + 1].is_ascii_digit()
                && bytes[j - 1].is_ascii_digit()
            {
                j += 1;
            } else {
                break;
            }
        }
        let bounded = j >= bytes.len() || !bytes[j].is_ascii_alphanumeric();
        let issued = match digits.as_bytes().first() {
            Some(b'2'..=b'6') => true,
            Some(b'1') => digits.len() == 15,
            _ => false,
        };
        if bounded && issued && (13..=19).contains(&digits.len()) && luhn(&digits) {
            found.push(digits);
        }
        i = j.max(i + 1);
    }
    found
}

fn luhn(digits: &str) -> bool {
    let sum: u32 = digits
        .bytes()
        .rev()
        .enumerate()
        .map(|(i, b)| {
            let d = u32::from(b - b'0');
            if i % 2 == 1 {
                if d * 2 > 9 { d * 2 - 9 } else { d * 2 }
            } else {
                d
            }
        })
        .sum();
    sum.is_multiple_of(10)
}

#[test]
fn the_search_finds_card_numbers_however_written() {
    assert_eq!(
        card_numbers(b"pan=4242424242424242&x"),
        ["4242424242424242"]
    );
    assert_eq!(
        card_numbers(b"\"4000 0000 0000 3220\""),
        ["4000000000003220"]
    );
    assert_eq!(card_numbers(b"5123-4500-0000-0008."), ["5123450000000008"]);
    // A UATP airline card.
    assert_eq!(card_numbers(b"uatp 122000000000003"), ["122000000000003"]);
    // Not card numbers: Luhn fails, too short, inside a token, a time in milliseconds.
    assert!(card_numbers(b"4242424242424241 123456789012 ab4242424242424242").is_empty());
    assert!(card_numbers(b"\"created_at\":1796232794406").is_empty());
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[derive(Clone)]
struct Proxy {
    upstream: String,
    client: reqwest::Client,
    seen: Arc<Mutex<Vec<u8>>>,
}

/// Forwards a request to Malipo as it came, and records all of it.
async fn forward(
    State(p): State<Proxy>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    {
        let mut seen = p.seen.lock().unwrap();
        seen.extend_from_slice(format!("{method} {uri}\n").as_bytes());
        for (name, value) in &headers {
            seen.extend_from_slice(name.as_str().as_bytes());
            seen.extend_from_slice(b": ");
            seen.extend_from_slice(value.as_bytes());
            seen.push(b'\n');
        }
        seen.extend_from_slice(&body);
        seen.push(b'\n');
    }
    let mut req = p
        .client
        .request(method, format!("{}{uri}", p.upstream))
        .body(body);
    for (name, value) in &headers {
        if name != "host" && name != "content-length" {
            req = req.header(name, value);
        }
    }
    match req.send().await {
        Ok(res) => {
            let status = res.status();
            let headers = res.headers().clone();
            let body = res.bytes().await.unwrap_or_default();
            let mut out = (status, body).into_response();
            for (name, value) in &headers {
                if name != "content-length" && name != "transfer-encoding" {
                    out.headers_mut().insert(name, value.clone());
                }
            }
            out
        }
        Err(_) => StatusCode::BAD_GATEWAY.into_response(),
    }
}

/// The browser: follows nothing on its own.
fn browser() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

fn attr<'a>(html: &'a str, name: &str) -> &'a str {
    html.split(&format!("{name}=\""))
        .nth(1)
        .and_then(|r| r.split('"').next())
        .unwrap_or_else(|| panic!("no {name} in {html}"))
}

fn hidden_fields(html: &str) -> Vec<(String, String)> {
    html.split("<input type=\"hidden\" name=\"")
        .skip(1)
        .map(|r| {
            let name = r.split('"').next().unwrap().to_owned();
            let value = attr(r, "value").to_owned();
            (name, value)
        })
        .collect()
}

#[tokio::test]
async fn no_card_number_reaches_malipo() {
    let dir = tempfile::tempdir().unwrap();
    let (port, proxy_port, gw_port) = (free_port(), free_port(), free_port());
    let public = format!("http://127.0.0.1:{proxy_port}");
    let gateway = format!("http://127.0.0.1:{gw_port}");
    let db = format!("sqlite://{}", dir.path().join("pan.db").display());
    let env = [
        ("MALIPO_DATABASE_URL", db.clone()),
        (
            "MALIPO_MASTER_KEY",
            crate::helpers::TEST_MASTER_KEY.to_owned(),
        ),
        ("MALIPO_LISTEN", format!("127.0.0.1:{port}")),
        ("MALIPO_PUBLIC_URL", public.clone()),
        ("MALIPO_SITE_ROOT", dir.path().display().to_string()),
        ("MALIPO_SANDBOX_MERCHANT_LISTEN", "off".to_owned()),
        ("MALIPO_SANDBOX_CARD_LISTEN", format!("127.0.0.1:{gw_port}")),
        ("MALIPO_LOG", "debug".to_owned()),
        ("MALIPO_LOG_FORMAT", "json".to_owned()),
    ];
    let bin = env!("CARGO_BIN_EXE_malipo");
    let merchant: Value = serde_json::from_slice(
        &Command::new(bin)
            .args(["merchant", "create", "--name", "Card Lodge", "--json"])
            .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
            .env_remove("MALIPO_CONFIG")
            .output()
            .unwrap()
            .stdout,
    )
    .expect("merchant create --json");
    let key = merchant["test_secret_key"].as_str().unwrap().to_owned();
    let log = std::fs::File::create(dir.path().join("server.log")).unwrap();
    let mut server = Command::new(bin)
        .arg("serve")
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .env_remove("MALIPO_CONFIG")
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap();

    let seen = Arc::new(Mutex::new(Vec::new()));
    let proxy = Proxy {
        upstream: format!("http://127.0.0.1:{port}"),
        client: browser(),
        seen: seen.clone(),
    };
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", proxy_port))
        .await
        .unwrap();
    tokio::spawn(async move {
        axum::serve(listener, Router::new().fallback(forward).with_state(proxy))
            .await
            .unwrap()
    });
    let web = browser();
    crate::helpers::wait_for("malipo to start", 30, async || {
        let ok = web.get(format!("{public}/healthz")).send().await.ok()?;
        ok.status().is_success().then_some(())
    })
    .await;

    let session = async || -> (String, String) {
        let s: Value = web
            .post(format!("{public}/v1/checkout/sessions"))
            .bearer_auth(&key)
            .json(
                &json!({"amount": 150_000, "currency": "KES", "reference": "PAN-1",
                "description": "Game drive", "success_url": "https://lodge.example/ok",
                "cancel_url": "https://lodge.example/no"}),
            )
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let id = s["id"].as_str().unwrap().to_owned();
        let page = web
            .get(format!("{public}/pay/{id}"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let token = attr(page.split("class=\"card-form\"").nth(1).unwrap(), "value").to_owned();
        (id, token)
    };
    // The frames' flow: fields to the gateway, Malipo gets the session id.
    let frames = async |number: &str| -> (String, reqwest::Response) {
        let (id, token) = session().await;
        let cs: Value = web
            .post(format!("{public}/pay/{id}/card/session"))
            .json(&json!({"form_token": token}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let cs = cs["session"].as_str().unwrap().to_owned();
        for (field, value) in [
            ("number", number),
            ("expiry", "12/30"),
            ("securityCode", "123"),
        ] {
            web.post(format!("{gateway}/form/session/{cs}/field"))
                .json(&json!({"field": field, "value": value}))
                .send()
                .await
                .unwrap();
        }
        web.post(format!("{gateway}/form/session/{cs}/complete"))
            .send()
            .await
            .unwrap();
        let res = web
            .post(format!("{public}/pay/{id}/card"))
            .form(&[
                ("form_token", token.as_str()),
                ("card_session", cs.as_str()),
            ])
            .send()
            .await
            .unwrap();
        (id, res)
    };
    // On the issuer's page (reached from Malipo's page, or shown by the hosted page):
    // the code, then back through the auto-posting form, and on to Malipo.
    let challenge = async |html: String, code: &str| {
        let acs = if html.contains("data-page=\"acs\"") {
            html
        } else {
            web.post(attr(&html, "action"))
                .form(&hidden_fields(&html))
                .send()
                .await
                .unwrap()
                .text()
                .await
                .unwrap()
        };
        let back = web
            .post(format!("{gateway}{}", attr(&acs, "action")))
            .form(&[("code", code), ("action", "verify")])
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let res = web
            .post(attr(&back, "action").replace("&amp;", "&"))
            .form(&hidden_fields(&back))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 303);
        let next = res.headers()["location"].to_str().unwrap().to_owned();
        if next.starts_with(&public) {
            web.get(&next).send().await.unwrap();
        }
    };

    frames("4242 4242 4242 4242").await;
    frames("4000000000000002").await;
    let (_, res) = frames("4000 0000 0000 3220").await;
    challenge(res.text().await.unwrap(), "1234").await;
    // Without JavaScript: the processor's hosted page (a Luhn failure first).
    let (id, token) = session().await;
    let res = web
        .post(format!("{public}/pay/{id}/card"))
        .form(&[("form_token", token.as_str())])
        .send()
        .await
        .unwrap();
    let hosted = res.headers()["location"].to_str().unwrap().to_owned();
    assert!(hosted.starts_with(&gateway), "{hosted}");
    for number in ["5123 4500 0000 0007", "5123 4500 0000 0008"] {
        let res = web
            .post(&hosted)
            .form(&[
                ("number", number),
                ("expiry", "01/39"),
                ("securityCode", "100"),
                ("action", "pay"),
            ])
            .send()
            .await
            .unwrap();
        if number.ends_with('8') {
            challenge(res.text().await.unwrap(), "1234").await;
        }
    }
    // Every payment that went through is on the merchant's side, with the last four.
    let events: Value = web
        .get(format!("{public}/v1/events?type=payment.succeeded"))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let paid: Vec<&str> = events["data"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["data"]["object"]["card"]["last4"].as_str())
        .collect();
    assert_eq!(paid.len(), 3, "{events}");

    let _ = server.kill();
    let _ = server.wait();
    let mut places: Vec<(String, Vec<u8>)> =
        vec![("requests".into(), seen.lock().unwrap().clone())];
    for entry in std::fs::read_dir(dir.path()).unwrap() {
        let path = entry.unwrap().path();
        if path.is_file() {
            places.push((path.display().to_string(), std::fs::read(&path).unwrap()));
        }
    }
    let log = places
        .iter()
        .find(|(p, _)| p.ends_with("server.log"))
        .unwrap();
    assert!(log.1.len() > 10_000, "the server logged at debug");
    assert!(places.iter().any(|(p, _)| p.ends_with("pan.db")));
    for (place, bytes) in &places {
        let found = card_numbers(bytes);
        assert!(found.is_empty(), "card numbers in {place}: {found:?}");
    }
}
