//! The hosted page, server-rendered (no browser here: see end2end/ for that).

use crate::helpers::{seed_session, spawn_app};
use malipo::{domain::SessionId, store::Store};

async fn get(
    app: &crate::helpers::TestApp,
    path: &str,
) -> (u16, reqwest::header::HeaderMap, String) {
    let res = app
        .client
        .get(format!("{}{path}", app.addr))
        .send()
        .await
        .unwrap();
    let status = res.status().as_u16();
    let headers = res.headers().clone();
    (status, headers, res.text().await.unwrap())
}

#[tokio::test]
async fn an_open_session_renders_its_summary() {
    let app = spawn_app().await;
    let (_, id) = seed_session(&app, "Mara Serena Lodge", 900).await;
    let (status, headers, html) = get(&app, &format!("/pay/{id}")).await;
    assert_eq!(status, 200);
    assert!(
        headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    assert!(html.contains("Mara Serena Lodge"), "merchant name");
    assert!(html.contains("Maasai Mara 3-day safari"), "description");
    assert!(html.contains("KES 1,500"), "formatted amount");
    assert!(html.contains("MARA-0042"), "reference");
    assert!(
        html.contains("Expires in 1"),
        "countdown starts near 15:00: {html}"
    );
    assert!(html.contains("EAT"), "expiry in East Africa Time");
    assert!(html.contains(r#"data-state="open""#));
    // A test session says so, and no checkout page is cached or indexed: a test
    // "Paid" must never pass for proof of a real payment.
    assert!(
        html.contains(r#"data-test-mode="true""#),
        "TEST MODE banner"
    );
    assert!(html.contains(r#"<meta name="robots" content="noindex, nofollow""#));
    assert_eq!(headers["x-robots-tag"], "noindex, nofollow");
    assert_eq!(headers["cache-control"], "no-store");
    assert!(html.contains("<title>Pay KES 1,500 to Mara Serena Lodge · Malipo</title>"));
    assert!(
        html.contains("https://lodge.example/cancelled"),
        "cancel link"
    );
    assert!(html.contains("/pkg/malipo"), "hydration scripts are linked");
    assert!(
        html.contains("<leptos-island"),
        "the countdown is an island"
    );
    // Security headers every page carries.
    assert_eq!(headers["referrer-policy"], "no-referrer");
    assert!(
        headers["content-security-policy"]
            .to_str()
            .unwrap()
            .contains("frame-ancestors 'none'")
    );
    // No PIN field, ever.
    assert!(!html.to_lowercase().contains("type=\"password\""));
    // "Ask someone to pay": the page's own address, in WhatsApp and SMS links.
    let url = format!("{}/pay/{id}", app.addr);
    assert!(html.contains(r#"data-share="true""#));
    assert!(html.contains(&format!(r#"value="{url}""#)), "{html}");
    let encoded: String = url::form_urlencoded::byte_serialize(url.as_bytes()).collect();
    assert!(
        html.contains("https://wa.me/?text=") && html.contains(&encoded.replace('+', "%20")),
        "{html}"
    );
}

#[tokio::test]
async fn an_expired_session_reads_as_expired() {
    let app = spawn_app().await;
    let (_, id) = seed_session(&app, "Kilimanjaro Treks", 1).await;
    tokio::time::sleep(std::time::Duration::from_millis(1_100)).await;
    let (status, _, html) = get(&app, &format!("/pay/{id}")).await;
    assert_eq!(status, 200);
    assert!(html.contains(r#"data-state="expired""#));
    assert!(html.contains("This checkout expired at"));
    assert!(
        !html.contains("Cancel and go back"),
        "nothing to cancel any more"
    );

    // Marked expired in the store too: same page.
    let sid = SessionId::parse(&id).unwrap();
    assert_eq!(
        app.store
            .expire_session(&sid, malipo::time::now_ms(), "merchant")
            .await
            .unwrap(),
        malipo::store::Expiry::Expired
    );
    let (_, _, html) = get(&app, &format!("/pay/{id}")).await;
    assert!(html.contains(r#"data-state="expired""#));
}

#[tokio::test]
async fn a_paid_session_reads_as_paid() {
    let app = spawn_app().await;
    let (_, id) = seed_session(&app, "Coast Bus", 900).await;
    pay(&app.store, &id).await;
    let (status, _, html) = get(&app, &format!("/pay/{id}")).await;
    assert_eq!(status, 200);
    assert!(html.contains(r#"data-state="paid""#));
    assert!(crate::helpers::shown(&html, "paid"), "{html}");
    assert!(!crate::helpers::shown(&html, "waiting"));
    assert!(
        !html.contains("data-share"),
        "nothing left to share once paid"
    );
}

pub(crate) async fn pay(store: &Store, id: &str) {
    use malipo::{
        domain::{Money, money::Currency},
        store::{AttemptOutcome, AttemptStatus, NewAttempt},
    };
    let sid = SessionId::parse(id).unwrap();
    let attempt = store
        .insert_attempt(
            &NewAttempt {
                credit_minor: None,
                session_id: sid,
                quote: None,
                rail: malipo::connectors::RailId::Mpesa,
                amount: Money::new(150_000, Currency::Kes).unwrap(),
                payer: None,
                callback_token_hash: None,
                next_poll_at: None,
            },
            malipo::time::now_ms(),
        )
        .await
        .unwrap()
        .expect("the session is open");
    let outcome = AttemptOutcome {
        operator_receipt: Some("NLJ7RT61SV".into()),
        ..Default::default()
    };
    assert!(
        store
            .finalize_attempt(
                &attempt.id,
                AttemptStatus::Succeeded,
                &outcome,
                "test",
                malipo::time::now_ms(),
            )
            .await
            .unwrap()
    );
}

#[tokio::test]
async fn unknown_and_malformed_ids_get_the_404_page() {
    let app = spawn_app().await;
    for path in [
        format!("/pay/{}", SessionId::generate()),
        "/pay/cs_short".to_string(),
        "/pay/%3Cscript%3E".to_string(),
        "/no/such/page".to_string(),
    ] {
        let (status, headers, html) = get(&app, &path).await;
        assert_eq!(status, 404, "{path}");
        assert!(
            headers["content-type"]
                .to_str()
                .unwrap()
                .starts_with("text/html"),
            "{path}"
        );
        assert!(
            html.contains("We can't find this checkout"),
            "{path}: {html}"
        );
        assert!(!html.contains("<script>alert"), "{path}");
    }
}

#[tokio::test]
async fn merchant_text_is_escaped() {
    let app = spawn_app().await;
    let created = malipo::merchants::create(
        &app.store,
        "</title><script>alert(2)</script><b>Evil</b> Lodge",
    )
    .await
    .unwrap();
    let request = |cancel_url: &str| malipo::checkout::CreateSession {
        merchant_id: created.merchant.id.clone(),
        mode: malipo::domain::Mode::Test,
        amount: malipo::domain::Money::new(100, malipo::domain::money::Currency::Usd).unwrap(),
        reference: "R1".into(),
        description: "<script>alert(1)</script>".into(),
        success_url: "https://x.example/".into(),
        cancel_url: cancel_url.into(),
        customer_phone: None,
        customer_email: None,
        metadata: Default::default(),
        expires_in_secs: 600,
        payment_method_types: None,
        travel: None,
    };
    let refused = app.checkout.create(request("javascript:alert(1)")).await;
    assert!(
        matches!(
            refused,
            Err(malipo::checkout::CreateError::InvalidUrl {
                param: "cancel_url"
            })
        ),
        "a script URL never becomes a link"
    );
    let session = app
        .checkout
        .create(request("https://x.example/back"))
        .await
        .unwrap();
    let (_, _, html) = get(&app, &format!("/pay/{}", session.id)).await;
    assert!(!html.contains("<script>alert(1)</script>"));
    assert!(html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
    assert!(!html.contains("<b>Evil</b>"), "{html}");
    assert!(
        !html.contains("<script>alert(2)"),
        "the title cannot be closed early: {html}"
    );
    assert!(
        html.contains("<title>Pay USD 1 to &lt;/title&gt;&lt;script&gt;alert(2)"),
        "{html}"
    );
    assert!(html.contains("USD 1"), "{html}");
}

#[tokio::test]
async fn html_is_compressed_for_browsers_that_accept_brotli() {
    let app = spawn_app().await;
    let (_, id) = seed_session(&app, "Nairobi Airways", 900).await;
    let res = app
        .client
        .get(format!("{}/pay/{id}", app.addr))
        .header("accept-encoding", "br")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["content-encoding"], "br");
}

/// Compression where it gains something: a small API answer (an error, a session
/// object) goes as it is even to a client that accepts gzip; the OpenAPI document is
/// compressed; a client that asks for nothing gets nothing compressed.
#[tokio::test]
async fn answers_are_compressed_only_when_big_enough_and_asked_for() {
    let app = spawn_app().await;
    let get = async |path: &str, encoding: Option<&str>| {
        let mut req = app.client.get(format!("{}{path}", app.addr));
        if let Some(e) = encoding {
            req = req.header("accept-encoding", e);
        }
        let res = req.send().await.unwrap();
        let encoding = res
            .headers()
            .get("content-encoding")
            .map(|v| v.to_str().unwrap().to_owned());
        (res.status().as_u16(), encoding, res.bytes().await.unwrap())
    };
    let (status, encoding, body) = get("/v1/checkout/sessions/cs_nope", Some("gzip, br")).await;
    assert_eq!((status, encoding), (401, None));
    let error: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(error["error"]["code"], "invalid_api_key", "{error}");

    let (status, encoding, big) = get("/v1/openapi.json", Some("gzip")).await;
    assert_eq!((status, encoding.as_deref()), (200, Some("gzip")));
    let (status, encoding, plain) = get("/v1/openapi.json", None).await;
    assert_eq!((status, encoding), (200, None));
    assert!(plain.len() > 1024 && big.len() < plain.len());
}

#[tokio::test]
async fn built_assets_are_served_precompressed_and_cached() {
    let app = spawn_app().await;
    let pkg = app.site.join("pkg");
    std::fs::create_dir_all(&pkg).unwrap();
    std::fs::write(pkg.join("malipo.css"), "body{color:red}").unwrap();
    std::fs::write(pkg.join("malipo.css.br"), b"BROTLI-BYTES").unwrap();
    let res = app
        .client
        .get(format!("{}/pkg/malipo.css", app.addr))
        .header("accept-encoding", "br, gzip")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["content-encoding"], "br");
    assert_eq!(
        res.headers()["vary"],
        "accept-encoding",
        "a cache keeps the forms apart"
    );
    assert!(
        res.headers()["cache-control"]
            .to_str()
            .unwrap()
            .contains("max-age=")
    );
    assert_eq!(res.bytes().await.unwrap().as_ref(), b"BROTLI-BYTES");

    let plain = app
        .client
        .get(format!("{}/pkg/malipo.css", app.addr))
        .send()
        .await
        .unwrap();
    assert!(plain.headers().get("content-encoding").is_none());
    assert_eq!(plain.headers()["vary"], "accept-encoding");
    assert_eq!(plain.text().await.unwrap(), "body{color:red}");

    let missing = app
        .client
        .get(format!("{}/pkg/nope.js", app.addr))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);
}

#[tokio::test]
async fn the_stylesheet_is_inlined_with_the_pages_nonce() {
    // A built site with its stylesheet: the page carries it inline (no second round
    // trip on 2G), allowed by this response's nonce and nothing else.
    let site = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(site.path().join("pkg")).unwrap();
    std::fs::write(
        site.path().join("pkg/malipo.css"),
        ".summary>h1{color:#123}",
    )
    .unwrap();
    let root = site.path().to_path_buf();
    let app =
        crate::helpers::spawn_app_with(crate::helpers::Db::Sqlite, |c| c.site_root = root).await;
    let (_, id) = seed_session(&app, "Inline Lodge", 900).await;
    let res = app
        .client
        .get(format!("{}/pay/{id}", app.addr))
        .send()
        .await
        .unwrap();
    let csp = res.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_owned();
    let html = res.text().await.unwrap();
    let at = html.find("<style nonce=\"").expect("an inline stylesheet");
    let nonce: String = html[at + 14..].chars().take_while(|c| *c != '"').collect();
    assert!(nonce.len() >= 16, "{nonce}");
    assert!(
        csp.contains(&format!("style-src 'self' 'nonce-{nonce}';")),
        "{csp}"
    );
    assert!(
        !html.contains(r#"rel="stylesheet""#),
        "no second round trip"
    );
    // Served as written (a `>` in a selector is not escaped into nonsense).
    assert!(
        !html[at..]
            .split("</style>")
            .next()
            .unwrap()
            .contains("&gt;")
    );
}
