//! `/healthz`, `/readyz`, shutdown.

use crate::helpers::{Db, spawn_app, spawn_app_on, test_config, test_db};
use malipo::startup::Application;
use serde_json::Value;

#[tokio::test]
async fn healthz_says_ok() {
    let app = spawn_app().await;
    let res = app
        .client
        .get(format!("{}/healthz", app.addr))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.json::<Value>().await.unwrap()["status"], "ok");
}

#[tokio::test]
async fn readyz_reports_the_database_on_sqlite_and_postgres() {
    for (db, name) in [(Db::Sqlite, "sqlite"), (Db::Postgres, "postgres")] {
        let app = spawn_app_on(db).await;
        // `/readyz` as this machine sees it, or through the reverse proxy from `via`.
        let ready = async |via: Option<&str>| -> Value {
            let mut req = app.client.get(format!("{}/readyz", app.addr));
            if let Some(via) = via {
                req = req.header("x-forwarded-for", via);
            }
            let res = req.send().await.unwrap();
            assert_eq!(res.status(), 200, "{name}");
            res.json().await.unwrap()
        };
        let body = ready(None).await;
        assert_eq!(body["status"], "ready");
        assert_eq!(body["database"], name);
        assert_eq!(body["load"], "ok");
        // This machine sees each operator's circuits…
        assert!(body["operators"].is_array(), "{body}");
        // …a visitor through the reverse proxy only whether the server is ready.
        let body = ready(Some("203.0.113.9")).await;
        assert_eq!(body["status"], "ready");
        assert!(body.get("operators").is_none(), "{body}");
    }
}

#[tokio::test]
async fn readyz_fails_with_a_stable_code_when_the_database_is_gone() {
    let app = spawn_app().await;
    app.store.close().await;
    let res = app
        .client
        .get(format!("{}/readyz", app.addr))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 503);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["error"]["code"], "database_unavailable");
    // /healthz still answers: the process is up.
    let res = app
        .client
        .get(format!("{}/healthz", app.addr))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
}

#[tokio::test]
async fn shutdown_signal_stops_the_server_and_frees_the_port() {
    let db = test_db(Db::Sqlite).await;
    let site = tempfile::tempdir().unwrap();
    let app = Application::build(test_config(&db.url, site.path().into()))
        .await
        .unwrap();
    let addr = format!("http://127.0.0.1:{}", app.port());
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn(app.run_until(async move {
        let _ = rx.await;
    }));
    let client = reqwest::Client::new();
    assert_eq!(
        client
            .get(format!("{addr}/healthz"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    tx.send(()).unwrap();
    tokio::time::timeout(std::time::Duration::from_secs(5), running)
        .await
        .expect("stops within the grace period")
        .unwrap()
        .unwrap();
    assert!(
        client.get(format!("{addr}/healthz")).send().await.is_err(),
        "nothing listens any more"
    );
}

/// PostgreSQL over TLS with the server verified (`sslmode=verify-full`): the test
/// cluster runs TLS with a throwaway CA (scripts/pg). A URL naming that CA connects and
/// the session is encrypted; without it, an unknown CA is refused rather than used.
#[tokio::test]
async fn postgres_connections_use_verified_tls() {
    let url = std::env::var("MALIPO_TEST_POSTGRES_URL")
        .expect("MALIPO_TEST_POSTGRES_URL is not set: run the tests with scripts/test");
    let ca = std::env::var("MALIPO_TEST_POSTGRES_CA").expect(
        "MALIPO_TEST_POSTGRES_CA is not set: scripts/pg starts PostgreSQL with TLS and exports it",
    );
    let sep = if url.contains('?') { '&' } else { '?' };
    let verified = format!("{url}{sep}sslmode=verify-full&sslrootcert={ca}");
    let store = malipo::store::Store::connect(&secrecy::SecretString::from(verified), 1)
        .await
        .expect("verify-full with the right CA connects");
    let ssl: bool = sqlx::query("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
        .fetch_one(store.pool())
        .await
        .map(|r| sqlx::Row::get(&r, "ssl"))
        .unwrap();
    assert!(ssl, "the session is encrypted");
    let unknown_ca = format!("{url}{sep}sslmode=verify-full");
    let refused =
        match malipo::store::Store::connect(&secrecy::SecretString::from(unknown_ca), 1).await {
            Ok(store) => store.ping().await.is_err(),
            Err(_) => true,
        };
    assert!(
        refused,
        "a server whose certificate does not verify is refused"
    );
}

/// HSTS only when Malipo is served over https: never pinned on a plain-http test server.
#[tokio::test]
async fn hsts_is_sent_only_behind_an_https_public_url() {
    let plain = spawn_app().await;
    let res = plain
        .client
        .get(format!("{}/healthz", plain.addr))
        .send()
        .await
        .unwrap();
    assert!(res.headers().get("strict-transport-security").is_none());
    let tls = crate::helpers::spawn_app_with(crate::helpers::Db::Sqlite, |c| {
        c.public_url = "https://pay.example".into();
    })
    .await;
    let res = tls
        .client
        .get(format!("{}/healthz", tls.addr))
        .send()
        .await
        .unwrap();
    assert_eq!(
        res.headers()["strict-transport-security"],
        "max-age=31536000; includeSubDomains"
    );
}

#[tokio::test]
async fn a_body_that_never_arrives_is_cut_off_and_normal_bodies_pass() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let app = crate::helpers::spawn_app_with(Db::Sqlite, |c| c.header_read_timeout_secs = 1).await;
    let addr = app.addr.trim_start_matches("http://").to_owned();
    // Headers promise 200 bytes; 10 come, then nothing.
    let mut slow = tokio::net::TcpStream::connect(&addr).await.unwrap();
    slow.write_all(
        b"POST /v1/checkout/sessions HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n\
          content-length: 200\r\nauthorization: Bearer sk_test_x\r\n\r\n{\"amount\":",
    )
    .await
    .unwrap();
    let mut answer = vec![0u8; 64];
    let n = tokio::time::timeout(std::time::Duration::from_secs(5), slow.read(&mut answer))
        .await
        .expect("cut off after the deadline, not left hanging")
        .unwrap();
    let answer = String::from_utf8_lossy(&answer[..n]);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    // A whole body is read as before (here: a 401 for the made-up key, from the API).
    let res = app
        .client
        .post(format!("{}/v1/checkout/sessions", app.addr))
        .bearer_auth("sk_test_x")
        .json(&serde_json::json!({"amount": 100}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
}

#[tokio::test]
async fn metrics_are_served_to_this_machine_or_the_token_only() {
    use malipo::connectors::RailId;
    let app = crate::helpers::spawn_app_with(Db::Sqlite, |c| {
        c.sandbox_delay_percent = 5;
        c.metrics.token = secrecy::SecretString::from("scrape-me-7f3a");
    })
    .await;
    // A payment: started, approved on the handset, settled by the callback.
    let (_, session) = crate::helpers::seed_session(&app, "Metrics Lodge", 900).await;
    let session = malipo::domain::SessionId::parse(&session).unwrap();
    let attempt = app
        .payments
        .start(&session, RailId::Mpesa, "0712345678", false)
        .await
        .unwrap();
    crate::helpers::approve_first(&app.client, &app.addr, "254712345678").await;
    crate::helpers::settled_attempt(&app.store, &attempt.id, 10).await;
    let get = async |headers: &[(&str, &str)]| {
        let mut req = app.client.get(format!("{}/metrics", app.addr));
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let res = req.send().await.unwrap();
        let status = res.status().as_u16();
        let kind = res
            .headers()
            .get("content-type")
            .map(|v| v.to_str().unwrap().to_owned());
        (status, kind, res.text().await.unwrap())
    };
    let (status, kind, body) = get(&[]).await;
    assert_eq!(status, 200);
    assert!(kind.unwrap().starts_with("text/plain"));
    for metric in [
        r#"malipo_payments_started_total{rail="mpesa"}"#,
        r#"malipo_payments_settled_total{outcome="succeeded",rail="mpesa"}"#,
        r#"malipo_callback_to_settled_seconds_bucket{rail="mpesa",le="0.1"}"#,
        "malipo_sse_streams_open 0",
        r#"malipo_db_pool_connections{state="idle"}"#,
        r#"malipo_webhook_queue_depth{mode="live"} 0"#,
        "malipo_db_pool_wait_seconds_count",
    ] {
        assert!(body.contains(metric), "{metric} missing:\n{body}");
    }
    // Through a proxy (or from elsewhere): not without the token.
    let proxied = [("x-forwarded-for", "203.0.113.9")];
    assert_eq!(get(&proxied).await.0, 404);
    assert_eq!(get(&[("x-real-ip", "203.0.113.9")]).await.0, 404);
    let wrong = [proxied[0], ("authorization", "Bearer guess")];
    assert_eq!(get(&wrong).await.0, 404);
    let right = [proxied[0], ("authorization", "Bearer scrape-me-7f3a")];
    assert_eq!(get(&right).await.0, 200);
}
