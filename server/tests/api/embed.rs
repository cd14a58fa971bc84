//! The embeddable checkout from the server's side: `checkout.js`, per-merchant
//! `frame-ancestors`, embed mode on the page, and the sandbox merchant site paying for
//! real (API, handset, verified webhook).

use crate::helpers::{Db, accept, prompts, spawn_app_with, wait_for};
use base64::Engine;
use malipo::{domain::SessionId, merchants};
use secrecy::ExposeSecret;
use serde_json::{Value, json};
use sha2::{Digest, Sha384};

#[tokio::test]
async fn checkout_js_is_public_cacheable_and_matches_the_readme_integrity() {
    let app = spawn_app_with(Db::Sqlite, |_| {}).await;
    let res = app
        .client
        .get(format!("{}/v1/checkout.js", app.addr))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let h = res.headers().clone();
    assert!(
        h["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/javascript")
    );
    assert_eq!(h["access-control-allow-origin"], "*");
    assert_eq!(h["cache-control"], "public, max-age=31536000, immutable");
    let body = res.bytes().await.unwrap();
    assert!(body.len() < 8 * 1024, "small: {} bytes", body.len());
    let integrity = format!(
        "sha384-{}",
        base64::engine::general_purpose::STANDARD.encode(Sha384::digest(&body))
    );
    assert_eq!(integrity, malipo::embed::integrity());
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md")).unwrap();
    assert!(
        readme.contains(&integrity),
        "README must show the current integrity hash {integrity} (update it with the script's change)"
    );
}

#[tokio::test]
async fn only_allowed_origins_may_frame_the_page() {
    let app = spawn_app_with(Db::Sqlite, |_| {}).await;
    let created = merchants::create(&app.store, "Embed Lodge").await.unwrap();
    let key = created.test_secret_key.expose_secret().to_owned();
    let session = app
        .client
        .post(format!("{}/v1/checkout/sessions", app.addr))
        .bearer_auth(&key)
        .json(&json!({"amount": 150000, "currency": "KES", "reference": "E-1", "description": "Safari",
            "success_url": "https://lodge.example/ok", "cancel_url": "https://lodge.example/no"}))
        .send()
        .await
        .unwrap()
        .json::<Value>()
        .await
        .unwrap();
    let page = format!("{}/pay/{}", app.addr, session["id"].as_str().unwrap());
    let csp = async |url: &str| {
        let res = app.client.get(url).send().await.unwrap();
        let csp = res.headers()["content-security-policy"]
            .to_str()
            .unwrap()
            .to_owned();
        (csp, res.text().await.unwrap())
    };
    let (policy, html) = csp(&page).await;
    assert!(policy.contains("frame-ancestors 'none';"), "{policy}");
    assert!(!html.contains("data-malipo-bridge"));

    let account = async |body: Value| {
        let res = app
            .client
            .post(format!("{}/v1/account", app.addr))
            .bearer_auth(&key)
            .json(&body)
            .send()
            .await
            .unwrap();
        (res.status().as_u16(), res.json::<Value>().await.unwrap())
    };
    let (status, e) = account(json!({"embed_origins": ["https://lodge.example/book"]})).await;
    assert_eq!(
        (status, e["error"]["code"].as_str()),
        (400, Some("invalid_origin"))
    );
    let (status, a) =
        account(json!({"embed_origins": ["https://Lodge.Example", "http://127.0.0.1:4100"]})).await;
    assert_eq!(status, 200, "{a}");
    assert_eq!(
        a["embed_origins"],
        json!(["https://lodge.example", "http://127.0.0.1:4100"])
    );

    let (policy, _) = csp(&page).await;
    assert!(
        policy.contains("frame-ancestors https://lodge.example http://127.0.0.1:4100;"),
        "{policy}"
    );
    // Embed mode only for an allowed origin; the bridge posts to that origin only.
    let (policy, html) = csp(&format!("{page}?embed=https://lodge.example")).await;
    assert!(html.contains("data-malipo-bridge"));
    // Only scripts carrying this response's nonce run: every inline one has it.
    let nonce = policy
        .split("'nonce-")
        .nth(1)
        .and_then(|rest| rest.split('\'').next())
        .expect("a script nonce")
        .to_owned();
    assert!(nonce.len() >= 22, "{policy}");
    assert!(!policy.contains("unsafe-inline"), "{policy}");
    for directive in [
        "form-action 'self'",
        "connect-src 'self'",
        "object-src 'none'",
    ] {
        assert!(policy.contains(directive), "{directive}: {policy}");
    }
    let scripts: Vec<&str> = html.split("<script").skip(1).collect();
    assert!(scripts.len() >= 2, "the island loader and the bridge");
    for s in &scripts {
        let tag = &s[..s.find('>').unwrap()];
        assert!(tag.contains(&format!("nonce=\"{nonce}\"")), "<script{tag}>");
    }
    let (again, _) = csp(&format!("{page}?embed=https://lodge.example")).await;
    assert!(!again.contains(&nonce), "a new nonce per response");
    assert!(html.contains("P=\"https://lodge.example\""));
    let (_, html) = csp(&format!("{page}?embed=https://evil.example")).await;
    assert!(
        !html.contains("data-malipo-bridge"),
        "an origin not on the list gets no bridge"
    );
    // The embedded page's form post comes back in embed mode, error and all.
    let res = app
        .post_pay_form(
            page.rsplit('/').next().unwrap(),
            "?embed=https://lodge.example",
            &[("phone", "12")],
        )
        .await;
    assert_eq!(
        res.headers()["location"].to_str().unwrap(),
        format!(
            "/pay/{}?embed=https%3A%2F%2Flodge.example&error=invalid_phone",
            session["id"].as_str().unwrap()
        )
    );
    // Other pages stay unframeable.
    let res = app
        .client
        .get(format!("{}/sandbox/phone/254708374149", app.addr))
        .send()
        .await
        .unwrap();
    assert!(
        res.headers()["content-security-policy"]
            .to_str()
            .unwrap()
            .starts_with("frame-ancestors 'none'")
    );
}

#[tokio::test]
async fn the_sandbox_merchant_books_pays_and_trusts_only_the_signed_webhook() {
    let app = spawn_app_with(Db::Sqlite, |c| {
        c.sandbox_merchant_listen = Some("127.0.0.1:0".parse().unwrap());
    })
    .await;
    let site = app.merchant_url.clone().expect("merchant site running");
    assert_ne!(site, app.addr, "its own origin");
    let page = app
        .client
        .get(format!("{site}/sandbox/merchant"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(page.contains("Maasai Mara 3-day safari — Book &amp; pay"));
    assert!(page.contains(&format!(
        "src=\"{}/v1/checkout.js\" integrity=\"{}\"",
        app.addr,
        malipo::embed::integrity()
    )));

    let booked: Value = app
        .client
        .post(format!("{site}/sandbox/merchant/bookings"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let booking = booked["booking"]["id"].as_str().unwrap().to_owned();
    let session = booked["booking"]["session_id"].as_str().unwrap().to_owned();
    // Its origin may frame its own checkout.
    let res = app
        .client
        .get(format!("{}/pay/{session}", app.addr))
        .send()
        .await
        .unwrap();
    assert!(
        res.headers()["content-security-policy"]
            .to_str()
            .unwrap()
            .contains(&site)
    );

    // A forged webhook is refused and changes nothing.
    let forged = json!({"id": "evt_forged", "type": "checkout.session.completed",
        "data": {"object": {"id": session, "payment_status": "paid"}}});
    let res = app
        .client
        .post(format!("{site}/sandbox/merchant/webhooks"))
        .header(
            "Malipo-Signature",
            format!("t={},v1={}", malipo::time::now_ms() / 1000, "00".repeat(32)),
        )
        .json(&forged)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);

    app.payments
        .start_mpesa(&SessionId::parse(&session).unwrap(), "0708374149")
        .await
        .unwrap();
    let shown = prompts(&app.client, &app.addr, "254708374149").await;
    assert_eq!(shown[0]["amount_label"], "KES 45,000");
    accept(
        &app.client,
        &app.addr,
        "254708374149",
        shown[0]["id"].as_str().unwrap(),
    )
    .await;
    let paid = wait_for("the booking to be paid by webhook", 15, async || {
        let b: Value = app
            .client
            .get(format!("{site}/sandbox/merchant/bookings/{booking}"))
            .send()
            .await
            .ok()?
            .json()
            .await
            .ok()?;
        (b["status"] == "paid").then_some(b)
    })
    .await;
    assert!(
        paid["events"]
            .as_array()
            .unwrap()
            .iter()
            .all(|e| e.as_str().unwrap().starts_with("evt_"))
    );

    // Without JavaScript the booking form sends the shopper to the hosted page.
    let res = app
        .client
        .post(format!("{site}/sandbox/merchant/bookings"))
        .form(&[("book", "1")])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 303);
    let to = res.headers()["location"].to_str().unwrap();
    assert!(to.starts_with(&format!("{}/pay/cs_", app.addr)), "{to}");

    // The redirect flow confirms with the API rather than trusting the URL.
    let back = app
        .client
        .get(format!("{site}/sandbox/merchant/return?session={session}"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(back.contains("data-paid=\"true\""));
    let other = app
        .client
        .get(format!(
            "{site}/sandbox/merchant/return?session=cs_000000000000000000000000"
        ))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(other.contains("data-paid=\"false\""));
}

#[tokio::test]
async fn a_test_key_never_changes_who_may_frame_live_checkouts() {
    let app = spawn_app_with(Db::Sqlite, |_| {}).await;
    let created = merchants::create(&app.store, "Two Mode Lodge")
        .await
        .unwrap();
    let test_key = created.test_secret_key.expose_secret().to_owned();
    let (_, live) = merchants::create_key(
        &app.store,
        &created.merchant.id,
        malipo::domain::ApiKeyKind::Secret,
        malipo::domain::Mode::Live,
    )
    .await
    .unwrap();
    let live_key = live.token.expose_secret().to_owned();
    let post = async |key: &str, path: &str, body: Value| {
        app.client
            .post(format!("{}{path}", app.addr))
            .bearer_auth(key)
            .json(&body)
            .send()
            .await
            .unwrap()
            .json::<Value>()
            .await
            .unwrap()
    };
    let set = post(
        &test_key,
        "/v1/account",
        json!({"embed_origins": ["https://attacker.example"]}),
    )
    .await;
    assert_eq!(set["embed_origins"], json!(["https://attacker.example"]));
    let live_account = app
        .client
        .get(format!("{}/v1/account", app.addr))
        .bearer_auth(&live_key)
        .send()
        .await
        .unwrap()
        .json::<Value>()
        .await
        .unwrap();
    assert_eq!(
        live_account["embed_origins"],
        json!([]),
        "live list untouched"
    );
    let session = json!({"amount": 150000, "currency": "KES", "reference": "M-1", "description": "Safari",
        "success_url": "https://lodge.example/ok", "cancel_url": "https://lodge.example/no"});
    let live_session = post(&live_key, "/v1/checkout/sessions", session.clone()).await;
    let test_session = post(&test_key, "/v1/checkout/sessions", session).await;
    let policy = async |id: &Value| {
        let res = app
            .client
            .get(format!("{}/pay/{}", app.addr, id.as_str().unwrap()))
            .send()
            .await
            .unwrap();
        res.headers()["content-security-policy"]
            .to_str()
            .unwrap()
            .to_owned()
    };
    assert!(
        policy(&live_session["id"])
            .await
            .contains("frame-ancestors 'none';")
    );
    assert!(
        policy(&test_session["id"])
            .await
            .contains("frame-ancestors https://attacker.example;")
    );
}

#[tokio::test]
async fn the_sandbox_merchant_is_found_by_its_flag_and_never_touches_a_real_namesake() {
    let db = crate::helpers::test_db(Db::Sqlite).await;
    let site = tempfile::tempdir().unwrap();
    let config = |merchant_site: bool| {
        let mut c = crate::helpers::test_config(&db.url, site.path().into());
        c.sandbox_merchant_listen = merchant_site.then(|| "127.0.0.1:0".parse().unwrap());
        c
    };
    // A real merchant happens to have the sandbox merchant's name, with a live key and
    // its own embed origins.
    let first = malipo::startup::Application::build(config(false))
        .await
        .unwrap();
    let store = first.state().store.clone();
    let real = merchants::create(&store, malipo::sandbox::merchant::MERCHANT_NAME)
        .await
        .unwrap();
    let (_, live) = merchants::create_key(
        &store,
        &real.merchant.id,
        malipo::domain::ApiKeyKind::Secret,
        malipo::domain::Mode::Live,
    )
    .await
    .unwrap();
    for mode in [malipo::domain::Mode::Test, malipo::domain::Mode::Live] {
        store
            .set_embed_origins(&real.merchant.id, mode, &["https://real.example".into()])
            .await
            .unwrap();
    }
    drop(first);
    // Twice, as across restarts.
    let mut sandbox_ids = Vec::new();
    for _ in 0..2 {
        let app = malipo::startup::Application::build(config(true))
            .await
            .unwrap();
        let store = app.state().store.clone();
        let keys = store.api_keys(&real.merchant.id).await.unwrap();
        assert!(
            keys.iter().all(|k| k.revoked_at.is_none()),
            "the namesake's keys are untouched: {keys:?}"
        );
        assert!(
            store
                .merchant_by_secret_hash(&malipo::domain::keys::hash_token(
                    live.token.expose_secret()
                ))
                .await
                .unwrap()
                .is_some()
        );
        for mode in [malipo::domain::Mode::Test, malipo::domain::Mode::Live] {
            assert_eq!(
                store.embed_origins(&real.merchant.id, mode).await.unwrap(),
                ["https://real.example"]
            );
        }
        let own = store.sandbox_merchant().await.unwrap().unwrap();
        assert_ne!(own.id, real.merchant.id);
        sandbox_ids.push(own.id);
    }
    assert_eq!(sandbox_ids[0], sandbox_ids[1], "found again by its flag");
}
