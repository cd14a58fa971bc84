//! Many `malipo serve` processes on one PostgreSQL, as behind a load balancer: payments
//! are started through one instance, the operator's callbacks land on another, and every
//! page follows its payment on a third. The first is killed (SIGKILL) midway. Every
//! payment settles exactly once, no push is sent twice, no webhook is delivered twice for
//! one event, and each page turns green (the change reaching it through PostgreSQL's
//! `NOTIFY`, not its 30 s safety refresh).

use std::{
    collections::HashMap,
    process::{Child, Command, Stdio},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use axum::{Router, extract::State, routing::post};
use serde_json::{Value, json};

use crate::helpers::{Db, TEST_MASTER_KEY, test_db, wait_for};

/// Payments started before the kill, and after it.
const BEFORE: usize = 6;
const AFTER: usize = 6;

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// One `malipo serve` process.
struct Instance {
    name: &'static str,
    addr: String,
    child: Child,
    _log: tempfile::TempDir,
}

impl Drop for Instance {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn env(db: &str, public: &str, port: u16, site: &std::path::Path) -> Vec<(&'static str, String)> {
    vec![
        ("MALIPO_DATABASE_URL", db.to_owned()),
        ("MALIPO_MASTER_KEY", TEST_MASTER_KEY.to_owned()),
        ("MALIPO_LISTEN", format!("127.0.0.1:{port}")),
        // Operators call back the load balancer's address: here, instance B.
        ("MALIPO_PUBLIC_URL", public.to_owned()),
        ("MALIPO_SITE_ROOT", site.display().to_string()),
        ("MALIPO_SANDBOX_MERCHANT_LISTEN", "off".to_owned()),
        ("MALIPO_SANDBOX_CARD_LISTEN", "off".to_owned()),
        ("MALIPO_SANDBOX_PAYPAL_LISTEN", "off".to_owned()),
        ("MALIPO_SANDBOX_DELAY_PERCENT", "5".to_owned()),
        ("MALIPO_WEBHOOKS_ALLOW_HOSTS", "127.0.0.1".to_owned()),
        ("MALIPO_WEBHOOKS_RETRY_BASE_MS", "200".to_owned()),
        ("MALIPO_WEBHOOKS_RETRY_MAX_MS", "1000".to_owned()),
        ("MALIPO_LOG", "info,sqlx=warn".to_owned()),
        // The instance killed holds its leases on status queries this long.
        ("MALIPO_PAYMENTS_POLL_LEASE_MS", "2000".to_owned()),
        // Several payments come from the sandbox's scripted numbers.
        ("MALIPO_LIMITS_PROMPTS_PER_PHONE", "100".to_owned()),
    ]
}

fn start(name: &'static str, db: &str, public: &str, port: u16) -> Instance {
    let dir = tempfile::tempdir().unwrap();
    let log = std::fs::File::create(dir.path().join("server.log")).unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_malipo"))
        .arg("serve")
        .envs(env(db, public, port, dir.path()))
        .env_remove("MALIPO_CONFIG")
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap();
    Instance {
        name,
        addr: format!("http://127.0.0.1:{port}"),
        child,
        _log: dir,
    }
}

/// The merchant's webhook receiver: how many times each event id arrived.
#[derive(Clone, Default)]
struct Receiver {
    seen: Arc<Mutex<HashMap<String, usize>>>,
}

async fn receive(State(r): State<Receiver>, body: axum::body::Bytes) -> &'static str {
    let event: Value = serde_json::from_slice(&body).unwrap_or_default();
    if let Some(id) = event["id"].as_str() {
        *r.seen.lock().unwrap().entry(id.to_owned()).or_default() += 1;
    }
    "ok"
}

#[tokio::test]
async fn three_instances_on_one_postgresql_settle_every_payment_once_with_one_killed_midway() {
    let db = test_db(Db::Postgres).await;
    let (pa, pb, pc) = (free_port(), free_port(), free_port());
    let public = format!("http://127.0.0.1:{pb}");
    // The merchant, made (and the database migrated) by the CLI.
    let site = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_malipo"))
        .args([
            "merchant",
            "create",
            "--name",
            "Serengeti Shuttles",
            "--json",
        ])
        .envs(env(&db.url, &public, pa, site.path()))
        .env_remove("MALIPO_CONFIG")
        .output()
        .unwrap();
    let merchant: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|_| panic!("{}", String::from_utf8_lossy(&out.stderr)));
    let key = merchant["test_secret_key"].as_str().unwrap().to_owned();

    let mut a = start("A", &db.url, &public, pa);
    let b = start("B", &db.url, &public, pb);
    let c = start("C", &db.url, &public, pc);
    let web = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    for i in [&a, &b, &c] {
        wait_for(&format!("instance {} to start", i.name), 60, async || {
            let ok = web.get(format!("{}/readyz", i.addr)).send().await.ok()?;
            ok.status().is_success().then_some(())
        })
        .await;
    }

    let receiver = Receiver::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let hook = format!("http://{}/hook", listener.local_addr().unwrap());
    let router = Router::new()
        .route("/hook", post(receive))
        .with_state(receiver.clone());
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    let endpoint = web
        .post(format!("{}/v1/webhook_endpoints", a.addr))
        .bearer_auth(&key)
        .json(&json!({"url": hook, "enabled_events": ["*"]}))
        .send()
        .await
        .unwrap();
    assert!(
        endpoint.status().is_success(),
        "{}",
        endpoint.text().await.unwrap()
    );

    // A payment: its session made through `via`, its page on C (which also follows it),
    // its pay form posted to `via`.
    let pay = async |via: &Instance,
                     i: usize|
           -> (String, String, tokio::task::JoinHandle<Option<Instant>>) {
        let s: Value = web
            .post(format!("{}/v1/checkout/sessions", via.addr))
            .bearer_auth(&key)
            .json(
                &json!({"amount": 250_000 + 100 * i as i64, "currency": "KES",
                "reference": format!("BUS-{i}"), "description": "Arusha shuttle",
                "success_url": "https://shuttles.example/ok",
                "cancel_url": "https://shuttles.example/no"}),
            )
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let id = s["id"].as_str().unwrap().to_owned();
        let page = web
            .get(format!("{}/pay/{id}", c.addr))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let token = page
            .split("name=\"form_token\" value=\"")
            .nth(1)
            .and_then(|s| s.split('"').next())
            .expect("the pay form's token")
            .to_owned();
        // The page's event stream on C: it ends once the payment is final.
        let events = web.get(format!("{}/pay/{id}/events", c.addr)).send();
        let follow = tokio::spawn(async move {
            let mut res = events.await.ok()?;
            let mut body = String::new();
            while let Ok(Some(chunk)) = res.chunk().await {
                body.push_str(&String::from_utf8_lossy(&chunk));
                if body.contains("data: paid:") {
                    return Some(Instant::now());
                }
            }
            None
        });
        // The first two pay from the number whose callbacks never arrive (only status
        // queries settle them: the pollers, with A's leases), the third from the one
        // whose callback comes twice; the others from numbers of their own.
        let handset = match i {
            0 | 1 => "254700000404".to_owned(),
            2 => "254700000202".to_owned(),
            _ => format!("2547123456{i:02}"),
        };
        let phone = format!("0{}", &handset[3..]);
        let res = web
            .post(format!("{}/pay/{id}/mpesa", via.addr))
            .form(&[("form_token", token.as_str()), ("phone", phone.as_str())])
            .send()
            .await
            .unwrap();
        assert!(res.status().is_redirection(), "{}", res.status());
        (id, handset, follow)
    };
    // The shopper approves on the handset (the sandbox Daraja of the shared database).
    let approve = async |handset: &str| {
        let prompt = crate::helpers::first_prompt(&web, &b.addr, handset).await;
        crate::helpers::accept(&web, &b.addr, handset, &prompt).await;
    };

    let mut payments = Vec::new();
    // Half approved while A lives (one prompt at a time on a shared number), then A is
    // killed mid-run: the others' callbacks, queries and webhooks are every other
    // instance's work.
    for i in 0..BEFORE {
        payments.push(pay(&a, i).await);
        if i < BEFORE / 2 {
            approve(&payments[i].1).await;
        }
    }
    a.child.kill().unwrap();
    a.child.wait().unwrap();
    for (_, handset, _) in &payments[BEFORE / 2..] {
        approve(handset).await;
    }
    for i in BEFORE..BEFORE + AFTER {
        let p = pay(&b, i).await;
        approve(&p.1).await;
        payments.push(p);
    }

    // Every page on C turns green, each soon after its payment settled on B.
    let store = malipo::store::Store::connect(&secrecy::SecretString::from(db.url.clone()), 2)
        .await
        .unwrap();
    let mut slowest = Duration::ZERO;
    for (id, _, follow) in payments.iter_mut() {
        let seen = tokio::time::timeout(Duration::from_secs(60), follow)
            .await
            .unwrap_or_else(|_| panic!("{id}'s page never turned green"))
            .unwrap()
            .unwrap_or_else(|| panic!("{id}'s stream ended unpaid"));
        let sid = malipo::domain::SessionId::parse(id).unwrap();
        let attempt = store.latest_attempt(&sid).await.unwrap().unwrap();
        let settled_ms = attempt.finalized_at.unwrap();
        let seen_ms = malipo::time::now_ms() - seen.elapsed().as_millis() as i64;
        slowest = slowest.max(Duration::from_millis((seen_ms - settled_ms).max(0) as u64));
    }
    // Well under the pages' 30 s safety refresh: the change came through NOTIFY.
    assert!(
        slowest < Duration::from_secs(10),
        "slowest page: {slowest:?}"
    );

    // Exactly once, everywhere.
    let count = async |sql: &str| -> i64 {
        sqlx::query_scalar::<_, i64>(sql)
            .fetch_one(store.pool())
            .await
            .unwrap()
    };
    let n = (BEFORE + AFTER) as i64;
    let attempts = count("SELECT COUNT(*) FROM payment_attempts").await;
    let succeeded = count("SELECT COUNT(*) FROM payment_attempts WHERE status = 'succeeded'").await;
    let paid_sessions =
        count("SELECT COUNT(*) FROM checkout_sessions WHERE payment_status = 'paid'").await;
    let pushes = count("SELECT COUNT(*) FROM sandbox_requests WHERE refund_of IS NULL").await;
    let succeeded_events =
        count("SELECT COUNT(*) FROM events WHERE type = 'payment.succeeded'").await;
    let events = count("SELECT COUNT(*) FROM events").await;
    assert_eq!(attempts, n, "one attempt per payment");
    assert_eq!(succeeded, n, "every payment settled");
    assert_eq!(paid_sessions, n);
    assert_eq!(pushes, n, "no push sent twice");
    assert_eq!(succeeded_events, n, "settled once each");
    // Every event reaches the receiver, none twice.
    let seen = wait_for("every webhook delivered", 60, async || {
        let seen = receiver.seen.lock().unwrap().clone();
        (seen.len() as i64 == events).then_some(seen)
    })
    .await;
    let twice: Vec<_> = seen.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "delivered more than once: {twice:?}");
    println!(
        "three instances, A killed after {BEFORE} payments started: {n} payments, {attempts} \
         attempts, {succeeded} succeeded, {pushes} pushes, {succeeded_events} payment.succeeded \
         events, {events} events delivered {} times; slowest page green {slowest:?} after \
         settling",
        seen.values().sum::<usize>()
    );
    drop((b, c));
}

/// The database slows down (every new session's insert waits 4 s in a trigger, so the
/// pool's three connections are soon all held): the API answers `503 busy` with
/// `Retry-After` while the slow requests are still waiting, a shopper's pay form says
/// "nothing was charged" and sends nothing, health says so, and when the database is
/// fast again everything is taken again. Nothing refused was half-written.
#[tokio::test]
async fn a_slow_database_gets_a_fast_busy_instead_of_a_queue() {
    use secrecy::ExposeSecret;
    let app = crate::helpers::spawn_app_with(Db::Postgres, |c| {
        c.database_max_connections = 3;
        c.limits.busy_wait_ms = 100;
    })
    .await;
    let created = malipo::merchants::create(&app.store, "Kilimanjaro Treks")
        .await
        .unwrap();
    let key = created.test_secret_key.expose_secret().to_owned();
    let create = {
        let client = app.client.clone();
        let url = format!("{}/v1/checkout/sessions", app.addr);
        move |reference: &str| {
            client
                .post(&url)
                .bearer_auth(&key)
                .json(
                    &json!({"amount": 150_000, "currency": "KES", "reference": reference,
                    "description": "Machame route", "success_url": "https://treks.example/ok",
                    "cancel_url": "https://treks.example/no"}),
                )
                .send()
        }
    };
    let before: Value = create("BEFORE").await.unwrap().json().await.unwrap();
    let session = before["id"].as_str().unwrap().to_owned();
    let token = app
        .checkout
        .form_token(&malipo::domain::SessionId::parse(&session).unwrap());

    // The fault: inserts of sessions wait 4 s (the database itself, not Malipo).
    for sql in [
        "CREATE FUNCTION malipo_test_slow() RETURNS trigger AS $$ \
         BEGIN PERFORM pg_sleep(4); RETURN NEW; END $$ LANGUAGE plpgsql",
        "CREATE TRIGGER malipo_test_slow BEFORE INSERT ON checkout_sessions \
         FOR EACH ROW EXECUTE FUNCTION malipo_test_slow()",
    ] {
        sqlx::query(sql).execute(app.store.pool()).await.unwrap();
    }
    let slow: Vec<_> = (0..4)
        .map(|i| tokio::spawn(create(&format!("SLOW-{i}"))))
        .collect();
    let ready = async || -> Value {
        app.client
            .get(format!("{}/readyz", app.addr))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    };
    wait_for("the instance to find itself busy", 3, async || {
        (ready().await["load"] == "busy").then_some(())
    })
    .await;

    // Refused at once, while the slow ones still wait: no queue.
    let refused = create("REFUSED").await.unwrap();
    assert!(
        slow.iter().any(|h| !h.is_finished()),
        "answered while the database is still blocked"
    );
    assert_eq!(refused.status(), 503);
    assert_eq!(
        refused.headers()["retry-after"].to_str().unwrap(),
        malipo::shed::RETRY_AFTER_SECS.to_string()
    );
    let body: Value = refused.json().await.unwrap();
    assert_eq!(body["error"]["code"], "busy");
    // The shopper: told nothing was charged, and nothing was sent.
    let pay = app
        .client
        .post(format!("{}/pay/{session}/mpesa", app.addr))
        .form(&[("form_token", token.as_str()), ("phone", "0712345678")])
        .send()
        .await
        .unwrap();
    assert_eq!(pay.status(), 503);
    assert!(pay.headers().contains_key("retry-after"));
    let page = pay.text().await.unwrap();
    assert!(page.contains("this tap sent nothing"), "{page}");

    // The database is fast again: the slow ones finish, and work is taken again.
    sqlx::query("DROP TRIGGER malipo_test_slow ON checkout_sessions")
        .execute(app.store.pool())
        .await
        .unwrap();
    // Those that got a connection before the pool filled are written (slowly); one that
    // arrived after was refused at once, like any other.
    let mut written = 0;
    for h in slow {
        match h.await.unwrap().unwrap().status().as_u16() {
            201 => written += 1,
            503 => {}
            other => panic!("a slow request answered {other}"),
        }
    }
    assert!(written >= 3, "the pool's three connections each wrote one");
    wait_for("the instance to take work again", 10, async || {
        (ready().await["load"] == "ok").then_some(())
    })
    .await;
    assert_eq!(create("AFTER").await.unwrap().status(), 201);
    let count = async |sql: &str| -> i64 {
        sqlx::query_scalar::<_, i64>(sql)
            .fetch_one(app.store.pool())
            .await
            .unwrap()
    };
    // BEFORE, the slow ones written, AFTER: the refused wrote nothing, the pay form no
    // attempt.
    assert_eq!(
        count("SELECT COUNT(*) FROM checkout_sessions").await,
        2 + written
    );
    assert_eq!(
        count("SELECT COUNT(*) FROM checkout_sessions WHERE reference = 'REFUSED'").await,
        0
    );
    assert_eq!(count("SELECT COUNT(*) FROM payment_attempts").await, 0);
    println!(
        "slow database: API 503 busy with Retry-After while {written} requests waited on \
         it; pay form \"nothing was charged\", no attempt; recovered"
    );
}

/// An operator that keeps failing pushes (Airtel, here a peer that drops every
/// connection): after five failures in a row Malipo stops pushing to it. The shopper
/// hears at once that nothing was charged and may pay with M-PESA instead; nothing is
/// sent or written; `/readyz` and `/metrics` show the circuit open; after the cool-down
/// one probe goes through, and one only.
#[tokio::test]
async fn an_operator_that_keeps_failing_pushes_is_left_alone_and_the_page_offers_another_rail() {
    use malipo::{connectors::RailId, domain::SessionId, payments::PayError};
    use std::sync::atomic::Ordering;
    let (down, calls) = crate::helpers::silent_peer(false).await;
    let app = crate::helpers::spawn_app_with(Db::Sqlite, |c| {
        c.rails.airtel.base_url = down.clone();
        c.payments.breaker_cooldown_ms = 1_000;
        c.limits.prompts_per_phone = 100;
        c.limits.requests_per_ip = 1_000;
    })
    .await;
    let session = async |i: usize| {
        let (_, sid) = crate::helpers::seed_session(&app, &format!("Naivasha Camp {i}"), 900).await;
        SessionId::parse(&sid).unwrap()
    };
    for i in 0..5 {
        // Each push fails (no answer): the attempt stays pending, as ever.
        let attempt = app
            .payments
            .start(&session(i).await, RailId::Airtel, "0733123456", false)
            .await
            .unwrap();
        assert_eq!(attempt.status, malipo::store::AttemptStatus::Pending);
    }
    let tried = calls.load(Ordering::SeqCst);
    assert!(tried >= 5);

    // Open: refused before anything is sent or written.
    let sixth = session(6).await;
    let refused = app
        .payments
        .start(&sixth, RailId::Airtel, "0733123456", false)
        .await;
    assert!(
        matches!(refused, Err(PayError::OperatorDown)),
        "{refused:?}"
    );
    assert_eq!(calls.load(Ordering::SeqCst), tried, "nothing sent");
    assert!(app.store.latest_attempt(&sixth).await.unwrap().is_none());
    // The shopper's form: back to the page, which says so and still offers M-PESA.
    let res = app
        .post_pay_form(
            sixth.as_str(),
            "",
            &[("phone", "0733123456"), ("rail", "airtel")],
        )
        .await;
    let location = res.headers()["location"].to_str().unwrap().to_owned();
    assert!(location.ends_with("error=operator_down"), "{location}");
    let page = app.page(format!("{sixth}?error=operator_down")).await;
    assert!(
        page.contains("isn&#x27;t answering right now")
            || page.contains("isn't answering right now"),
        "{page}"
    );
    assert!(page.contains(r#"value="mpesa""#), "M-PESA still offered");
    let mpesa = app
        .payments
        .start(&sixth, RailId::Mpesa, "0712345678", false)
        .await;
    assert!(mpesa.is_ok(), "another rail takes it: {mpesa:?}");
    // Health and metrics tell it.
    let ready: Value = app
        .client
        .get(format!("{}/readyz", app.addr))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let airtel = ready["operators"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["rail"] == "airtel" && o["mode"] == "test")
        .unwrap()
        .clone();
    assert_eq!(airtel["pushes"], "open", "{ready}");
    assert_eq!(
        ready["operators"]
            .as_array()
            .unwrap()
            .iter()
            .find(|o| o["rail"] == "mpesa" && o["mode"] == "test")
            .unwrap()["pushes"],
        "closed"
    );
    let metrics = app
        .client
        .get(format!("{}/metrics", app.addr))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains(
            r#"malipo_operator_breaker_state{circuit="push",credentials="server",mode="test",rail="airtel"} 1"#
        ),
        "{metrics}"
    );

    // After the cool-down: one probe is sent (it fails, and the circuit opens again for
    // twice as long), the next shopper is refused at once.
    tokio::time::sleep(std::time::Duration::from_millis(1_100)).await;
    let probe = app
        .payments
        .start(&session(7).await, RailId::Airtel, "0733123456", false)
        .await;
    assert!(probe.is_ok(), "{probe:?}");
    assert!(calls.load(Ordering::SeqCst) > tried, "the probe was sent");
    let after = app
        .payments
        .start(&session(8).await, RailId::Airtel, "0733123456", false)
        .await;
    assert!(matches!(after, Err(PayError::OperatorDown)), "{after:?}");
}

/// Daraja failing inside answers a push with an error body and HTTP 500
/// (`500.003.1001`): a refusal in form, an outage in fact. Five in a row open the push
/// circuit as five unanswered pushes would; five "transaction already in process for
/// the current subscriber" (`500.001.1001`, one shopper's double tap) do not.
#[tokio::test]
async fn daraja_failing_inside_opens_the_push_circuit_and_a_busy_subscriber_does_not() {
    use malipo::{connectors::RailId, domain::SessionId, payments::PayError};
    use std::sync::atomic::{AtomicUsize, Ordering};
    #[derive(Clone)]
    struct Peer {
        code: Arc<Mutex<&'static str>>,
        pushes: Arc<AtomicUsize>,
    }
    let peer = Peer {
        code: Arc::new(Mutex::new("500.001.1001")),
        pushes: Arc::new(AtomicUsize::new(0)),
    };
    let daraja = Router::new()
        .route(
            "/oauth/v1/generate",
            axum::routing::get(|| async {
                axum::Json(json!({ "access_token": "t0k3n", "expires_in": "3599" }))
            }),
        )
        .route(
            "/mpesa/stkpush/v1/processrequest",
            post(|State(p): State<Peer>| async move {
                p.pushes.fetch_add(1, Ordering::SeqCst);
                let code = *p.code.lock().unwrap();
                (
                    axum::http::StatusCode::INTERNAL_SERVER_ERROR,
                    axum::Json(json!({
                        "requestId": "29115-34620561-1",
                        "errorCode": code,
                        "errorMessage": "as the test says",
                    })),
                )
            }),
        )
        .with_state(peer.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, daraja).await });
    let app = crate::helpers::spawn_app_with(Db::Sqlite, |c| {
        c.rails.mpesa.base_url = base.clone();
        c.limits.prompts_per_phone = 100;
        c.limits.requests_per_ip = 1_000;
    })
    .await;
    let session = async |i: usize| {
        let (_, sid) =
            crate::helpers::seed_session(&app, &format!("Amboseli Lodge {i}"), 900).await;
        SessionId::parse(&sid).unwrap()
    };
    let push = async |i: usize| {
        app.payments
            .start(&session(i).await, RailId::Mpesa, "0712345678", false)
            .await
    };

    // A busy subscriber, six times: each one refused, and each one still sent.
    for i in 0..6 {
        let attempt = push(i).await.unwrap();
        assert_eq!(attempt.status, malipo::store::AttemptStatus::Failed);
        assert_eq!(attempt.failure_code.as_deref(), Some("push_rejected"));
    }
    assert_eq!(
        peer.pushes.load(Ordering::SeqCst),
        6,
        "the circuit stayed closed"
    );

    // Daraja failing: five refusals, then no more pushes.
    *peer.code.lock().unwrap() = "500.003.1001";
    for i in 10..15 {
        let attempt = push(i).await.unwrap();
        assert_eq!(attempt.status, malipo::store::AttemptStatus::Failed);
        assert_eq!(attempt.failure_code.as_deref(), Some("operator_error"));
    }
    assert_eq!(peer.pushes.load(Ordering::SeqCst), 11);
    let refused = push(15).await;
    assert!(
        matches!(refused, Err(PayError::OperatorDown)),
        "{refused:?}"
    );
    assert_eq!(
        peer.pushes.load(Ordering::SeqCst),
        11,
        "nothing sent while open"
    );
    println!("daraja 500.003.1001 x5: push circuit open; 500.001.1001 x6: still closed");
}

/// Airtel answering a push with a 500 (`ESB000001` "Something Went Wrong") and MTN a
/// request to pay with `503 SERVICE_UNAVAILABLE`: whether the prompt went out is not
/// known, so neither is a refusal. The payment stays pending (to be asked about by our
/// own id), and each counts toward the push circuit: five open it.
#[tokio::test]
async fn an_operator_failing_inside_leaves_the_payment_pending_and_counts_toward_the_circuit() {
    use malipo::{connectors::RailId, domain::Money, domain::money::Currency, payments::PayError};
    use std::sync::atomic::{AtomicUsize, Ordering};
    let pushes = Arc::new(AtomicUsize::new(0));
    let count = pushes.clone();
    let token = || async {
        axum::Json(json!({ "access_token": "t0k3n", "token_type": "bearer", "expires_in": 3600 }))
    };
    let peer = Router::new()
        .route("/auth/oauth2/token", post(token))
        .route("/collection/token/", post(token))
        .route(
            "/merchant/v1/payments/",
            post(|State(n): State<Arc<AtomicUsize>>| async move {
                n.fetch_add(1, Ordering::SeqCst);
                (
                    axum::http::StatusCode::INTERNAL_SERVER_ERROR,
                    axum::Json(json!({ "status": {
                        "code": "500", "message": "Something Went Wrong",
                        "result_code": "ESB000001", "success": false } })),
                )
            }),
        )
        .route(
            "/collection/v1_0/requesttopay",
            post(|State(n): State<Arc<AtomicUsize>>| async move {
                n.fetch_add(1, Ordering::SeqCst);
                (
                    axum::http::StatusCode::SERVICE_UNAVAILABLE,
                    axum::Json(json!({ "code": "SERVICE_UNAVAILABLE", "message": "try later" })),
                )
            }),
        )
        .with_state(count);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, peer).await });
    let app = crate::helpers::spawn_app_with(Db::Sqlite, |c| {
        c.rails.airtel.base_url = base.clone();
        c.rails.mtn_momo.base_url = base.clone();
        c.limits.prompts_per_phone = 100;
        c.limits.requests_per_ip = 1_000;
    })
    .await;
    for (rail, currency, phone) in [
        (RailId::Airtel, Currency::Kes, "0733123456"),
        (RailId::MtnMomo, Currency::Ugx, "0772123456"),
    ] {
        let before = pushes.load(Ordering::SeqCst);
        for i in 0..5 {
            let sid = crate::helpers::session_for(
                &app,
                &format!("Lake Bunyonyi Camp {rail:?} {i}"),
                Money::new(75_000, currency).unwrap(),
            )
            .await;
            let attempt = app.payments.start(&sid, rail, phone, false).await.unwrap();
            assert_eq!(
                attempt.status,
                malipo::store::AttemptStatus::Pending,
                "{rail:?}"
            );
            assert!(
                attempt.operator_request_id.is_some(),
                "asked about by our own id"
            );
        }
        assert_eq!(pushes.load(Ordering::SeqCst), before + 5, "{rail:?}");
        let sid = crate::helpers::session_for(
            &app,
            &format!("Lake Bunyonyi Camp {rail:?} 5"),
            Money::new(75_000, currency).unwrap(),
        )
        .await;
        let refused = app.payments.start(&sid, rail, phone, false).await;
        assert!(
            matches!(refused, Err(PayError::OperatorDown)),
            "{rail:?}: {refused:?}"
        );
        assert_eq!(
            pushes.load(Ordering::SeqCst),
            before + 5,
            "nothing sent while open"
        );
    }
}
