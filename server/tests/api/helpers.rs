//! Test support: fresh databases, a server on port 0, a plain HTTP client.

use malipo::{
    checkout::{CheckoutService, CreateSession},
    config::Config,
    domain::{MerchantId, Mode, Money, money::Currency},
    merchants,
    startup::Application,
    store::Store,
};
use secrecy::SecretString;
use std::{ops::Deref, path::PathBuf};

/// Which database a test runs on.
#[derive(Debug, Clone, Copy)]
pub enum Db {
    Sqlite,
    Postgres,
}

/// A fresh, empty, migrated database; removed (SQLite) or abandoned in the throwaway
/// cluster (PostgreSQL) when dropped.
pub struct TestDb {
    pub url: String,
    _dir: Option<tempfile::TempDir>,
}

pub async fn test_db(db: Db) -> TestDb {
    match db {
        Db::Sqlite => {
            let dir = tempfile::tempdir().expect("tempdir");
            let url = format!("sqlite://{}", dir.path().join("malipo.db").display());
            TestDb {
                url,
                _dir: Some(dir),
            }
        }
        Db::Postgres => {
            let admin = std::env::var("MALIPO_TEST_POSTGRES_URL").expect(
                "MALIPO_TEST_POSTGRES_URL is not set: run the tests with scripts/test, which \
                 starts a throwaway PostgreSQL, or point it at one (postgres://user@host:port/db)",
            );
            let (_, url) = malipo::store::create_postgres_database(&admin, "malipo_test")
                .await
                .unwrap_or_else(|e| {
                    panic!("cannot create a database at MALIPO_TEST_POSTGRES_URL: {e}")
                });
            TestDb { url, _dir: None }
        }
    }
}

/// A migrated store over a fresh database.
pub struct TestStore {
    pub store: Store,
    _db: TestDb,
}

impl Deref for TestStore {
    type Target = Store;
    fn deref(&self) -> &Store {
        &self.store
    }
}

pub async fn test_store(db: Db) -> TestStore {
    let test_db = test_db(db).await;
    let store = Store::connect(&SecretString::from(test_db.url.clone()), 5)
        .await
        .expect("connect");
    store.migrate().await.expect("migrate");
    TestStore {
        store,
        _db: test_db,
    }
}

/// A running server on 127.0.0.1:0 with its own database.
pub struct TestApp {
    pub addr: String,
    pub store: Store,
    pub checkout: CheckoutService,
    pub payments: malipo::payments::Payments,
    /// Test mode's Daraja settings as the server uses them (the sandbox's consumer
    /// secret is generated per install).
    pub mpesa: malipo::config::MpesaConfig,
    pub client: reqwest::Client,
    /// The site root the server serves `/pkg` from.
    pub site: PathBuf,
    /// The sandbox merchant site, when the test turned it on.
    pub merchant_url: Option<String>,
    /// The sandbox card gateway's origin.
    pub card_url: Option<String>,
    /// The sandbox PayPal's origin, and test mode's PayPal settings as the server uses
    /// them (the sandbox's client secret is generated per install).
    pub paypal_url: Option<String>,
    pub paypal: malipo::config::PaypalConfig,
    _db: TestDb,
    _site: tempfile::TempDir,
}

impl TestApp {
    /// The hosted page of `session` (`cs_…`), as the shopper's browser gets it.
    pub async fn page(&self, session: impl std::fmt::Display) -> String {
        let url = format!("{}/pay/{session}", self.addr);
        let mut res = self.client.get(&url).send().await.expect("page");
        if res.status() == reqwest::StatusCode::REQUEST_TIMEOUT {
            // A page that did not start within 30 s (seen, rarely, on a loaded 2-core
            // machine): said, and asked once more; a second time fails the test.
            eprintln!("{url}: 408, asking once more");
            res = self.client.get(&url).send().await.expect("page");
        }
        assert!(
            res.status().is_success()
                || res.status().is_redirection()
                || res.status() == 404
                || res.status() == 410,
            "the page answered {}",
            res.status()
        );
        res.text().await.expect("page body")
    }

    /// Posts the hosted page's pay form for `session` (`cs_…`), with its form token, as
    /// a browser on the page would (`path_query`: e.g. `?embed=…`).
    pub async fn post_pay_form(
        &self,
        session: &str,
        path_query: &str,
        fields: &[(&str, &str)],
    ) -> reqwest::Response {
        let sid = malipo::domain::SessionId::parse(session).expect("a session id");
        let token = self.checkout.form_token(&sid);
        let mut form: Vec<(&str, &str)> = vec![("form_token", &token)];
        form.extend_from_slice(fields);
        self.client
            .post(format!("{}/pay/{session}/mpesa{path_query}", self.addr))
            .form(&form)
            .send()
            .await
            .expect("pay form post")
    }
}

pub async fn spawn_app() -> TestApp {
    spawn_app_on(Db::Sqlite).await
}

pub async fn spawn_app_on(db: Db) -> TestApp {
    spawn_app_with(db, |_| {}).await
}

/// A running server whose config `tweak` adjusts first.
pub async fn spawn_app_with(db: Db, tweak: impl FnOnce(&mut Config)) -> TestApp {
    let test_db = test_db(db).await;
    let site = tempfile::tempdir().expect("site dir");
    let mut config = test_config(&test_db.url, site.path().to_path_buf());
    tweak(&mut config);
    let app = Application::build(config).await.expect("build app");
    let addr = format!("http://127.0.0.1:{}", app.port());
    let store = app.state().store.clone();
    let checkout = app.state().checkout.clone();
    let payments = app.state().payments.clone();
    let merchant_url = app.sandbox_merchant_url();
    let card_url = app.sandbox_card_url();
    let paypal_url = app.sandbox_paypal_url();
    let paypal = app.state().config.rails.paypal.clone();
    let mpesa = app.state().config.rails.mpesa.clone();
    tokio::spawn(app.run_until(std::future::pending()));
    TestApp {
        addr,
        store,
        checkout,
        payments,
        mpesa,
        client: reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("client"),
        site: site.path().to_path_buf(),
        merchant_url,
        card_url,
        paypal_url,
        paypal,
        _db: test_db,
        _site: site,
    }
}

/// The master key the CLI tests run with (the servers use a key file in their site dir).
pub const TEST_MASTER_KEY: &str =
    "5a1e5a1e5a1e5a1e5a1e5a1e5a1e5a1e5a1e5a1e5a1e5a1e5a1e5a1e5a1e5a1e";

pub fn test_config(database_url: &str, site_root: PathBuf) -> Config {
    let mut config = Config::load_from(None, |_| None).expect("default config");
    config.database_url = SecretString::from(database_url.to_owned());
    config.listen = "127.0.0.1:0".parse().expect("addr");
    // Links and callback URLs point at the port actually bound.
    config.public_url = String::new();
    // A key file per test app (made on first start), shared by its restarts.
    config.master_key_file = site_root.join("master.key");
    config.site_root = site_root;
    config.shutdown_grace_secs = 2;
    // Tests that want the sandbox merchant site turn it on (on port 0).
    config.sandbox_merchant_listen = None;
    // The sandbox card gateway on a port of its own, per app.
    config.sandbox_card_listen = Some("127.0.0.1:0".parse().expect("addr"));
    config.sandbox_paypal_listen = Some("127.0.0.1:0".parse().expect("addr"));
    // Webhook retries in milliseconds, not minutes, so retry schedules fit in a test.
    config.webhooks.retry_base_ms = 100;
    config.webhooks.retry_max_ms = 400;
    config.webhooks.timeout_secs = 2;
    // Receivers in tests listen on loopback: allowed explicitly, as for local development.
    config.webhooks.allow_hosts = vec!["127.0.0.1".into()];
    config
}

/// A merchant and an open KES 1,500 session of theirs.
pub async fn seed_session(
    app: &TestApp,
    merchant_name: &str,
    expires_in_secs: i64,
) -> (MerchantId, String) {
    let (merchant, session) =
        open_kes_session(&app.store, &app.checkout, merchant_name, expires_in_secs).await;
    (merchant, session.id.to_string())
}

/// A new merchant and an open KES 1,500 session of theirs, on any store and service
/// (tests that build their own `Application` have no `TestApp`).
pub async fn open_kes_session(
    store: &malipo::store::Store,
    checkout: &CheckoutService,
    merchant_name: &str,
    expires_in_secs: i64,
) -> (MerchantId, malipo::store::SessionRecord) {
    let created = merchants::create(store, merchant_name)
        .await
        .expect("merchant");
    let mut session = open_session(
        &created.merchant.id,
        Mode::Test,
        Money::new(150_000, Currency::Kes).expect("money"),
    );
    session.expires_in_secs = expires_in_secs;
    let session = checkout.create(session).await.expect("session");
    (created.merchant.id, session)
}

/// A session request of `merchant` in `mode` for `amount` ("Maasai Mara 3-day safari",
/// 15 minutes), to adjust and pass to `CheckoutService::create`.
pub fn open_session(merchant: &MerchantId, mode: Mode, amount: Money) -> CreateSession {
    CreateSession {
        merchant_id: merchant.clone(),
        mode,
        amount,
        reference: "MARA-0042".into(),
        description: "Maasai Mara 3-day safari".into(),
        success_url: "https://lodge.example/paid".into(),
        cancel_url: "https://lodge.example/cancelled".into(),
        customer_phone: None,
        customer_email: None,
        metadata: Default::default(),
        expires_in_secs: 900,
        payment_method_types: None,
        travel: None,
    }
}

/// A TCP listener on loopback that counts the connections it accepts and then holds
/// them without a word (`hang`: an operator or receiver that never answers) or hangs up
/// at once. Its `http://` base URL, and the count.
pub async fn silent_peer(hang: bool) -> (String, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    use std::sync::{Arc, atomic::AtomicUsize, atomic::Ordering};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    let accepted = Arc::new(AtomicUsize::new(0));
    let count = accepted.clone();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            count.fetch_add(1, Ordering::SeqCst);
            if hang {
                held.push(socket);
            }
        }
    });
    (url, accepted)
}

/// A pending KES 1,500 M-PESA attempt from 254712345678 on `sid`, with a known callback
/// `token` and no CheckoutRequestID (as if the push's answer had been lost).
pub async fn attempt_with_token(
    store: &Store,
    sid: &malipo::domain::SessionId,
    token: &str,
    next_poll_at: Option<i64>,
    created_at: i64,
) -> malipo::store::AttemptRecord {
    store
        .insert_attempt(
            &malipo::store::NewAttempt {
                credit_minor: None,
                session_id: sid.clone(),
                quote: None,
                rail: malipo::connectors::RailId::Mpesa,
                amount: Money::new(150_000, Currency::Kes).expect("money"),
                payer: Some("254712345678".into()),
                callback_token_hash: Some(malipo::domain::keys::hash_token(token)),
                next_poll_at,
            },
            created_at,
        )
        .await
        .expect("insert attempt")
        .expect("the session is open")
}

/// Whether the live-status block `data-live="{which}"` is shown (present and not
/// `hidden`) in a rendered page.
pub fn shown(html: &str, which: &str) -> bool {
    let marker = format!("data-live=\"{which}\"");
    let Some(at) = html.find(&marker) else {
        return false;
    };
    let start = html[..at].rfind('<').unwrap_or(0);
    let end = at + html[at..].find('>').unwrap_or(0);
    !html[start..end].contains(" hidden")
}

/// Polls `f` every 100 ms until it yields, for up to `secs` seconds.
pub async fn wait_for<T>(what: &str, secs: u64, mut f: impl AsyncFnMut() -> Option<T>) -> T {
    for _ in 0..secs * 10 {
        if let Some(v) = f().await {
            return v;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("timed out waiting for {what}");
}

/// The STK prompts waiting on a sandbox handset.
pub async fn prompts(client: &reqwest::Client, addr: &str, phone: &str) -> Vec<serde_json::Value> {
    let v: serde_json::Value = client
        .get(format!("{addr}/sandbox/phones/{phone}/prompts"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    v["prompts"].as_array().unwrap().clone()
}

/// Answers a prompt on a sandbox handset with a PIN of the operator's length; returns
/// the receipt.
pub async fn accept(client: &reqwest::Client, addr: &str, phone: &str, prompt: &str) -> String {
    let digits = prompts(client, addr, phone)
        .await
        .iter()
        .find(|p| p["id"] == prompt)
        .and_then(|p| p["pin_digits"].as_u64())
        .unwrap_or(4) as usize;
    let res = client
        .post(format!(
            "{addr}/sandbox/phones/{phone}/prompts/{prompt}/accept"
        ))
        .json(&serde_json::json!({"pin": &"24680"[..digits]}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let v: serde_json::Value = res.json().await.unwrap();
    v["receipt"].as_str().unwrap().to_owned()
}

/// Starts a payment on `rail` from the number `typed` (its handset `phone`) for a new
/// session in `amount`, stops the server while the prompt waits, starts it again on the
/// same database and port, answers the prompt, and returns the attempt once settled: a
/// pending payment must survive a restart on every rail.
pub async fn pay_across_a_restart(
    rail: malipo::connectors::RailId,
    amount: Money,
    typed: &str,
    phone: &str,
) -> malipo::store::AttemptRecord {
    let db = test_db(Db::Sqlite).await;
    let site = tempfile::tempdir().expect("site dir");
    // A fixed free port, so the callback URL given to the operator stays valid.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port();
    let config = || {
        let mut c = test_config(&db.url, site.path().into());
        c.listen = format!("127.0.0.1:{port}").parse().expect("addr");
        c.sandbox_delay_percent = 5;
        c
    };
    let addr = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::new();
    let first = Application::build(config()).await.expect("build");
    let (store, checkout, payments) = (
        first.state().store.clone(),
        first.state().checkout.clone(),
        first.state().payments.clone(),
    );
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn(first.run_until(async move {
        let _ = stopped.await;
    }));
    let merchant = merchants::create(&store, "Restart Lodge")
        .await
        .expect("merchant");
    let session = checkout
        .create(open_session(&merchant.merchant.id, Mode::Test, amount))
        .await
        .expect("session");
    let attempt = payments
        .start(&session.id, rail, typed, false)
        .await
        .expect("push");
    // The prompt is on the handset (a rail whose push call answers only once the shopper
    // has, is now mid-call): then the server stops.
    first_prompt(&client, &addr, phone).await;
    stop.send(()).expect("stop");
    running.await.expect("join").expect("run");

    let second = Application::build(config()).await.expect("rebuild");
    let store = second.state().store.clone();
    tokio::spawn(second.run_until(std::future::pending()));
    let shown = prompts(&client, &addr, phone).await;
    assert_eq!(shown.len(), 1, "the prompt survived the restart");
    accept(&client, &addr, phone, shown[0]["id"].as_str().expect("id")).await;
    wait_for("the attempt to settle", 20, async || {
        store
            .attempt(&attempt.id)
            .await
            .expect("attempt")
            .filter(|a| a.status.is_final())
    })
    .await
}

/// An open session of a new merchant `name` for `amount`, in test mode.
pub async fn session_for(app: &TestApp, name: &str, amount: Money) -> malipo::domain::SessionId {
    let merchant = merchants::create(&app.store, name).await.expect("merchant");
    app.checkout
        .create(open_session(&merchant.merchant.id, Mode::Test, amount))
        .await
        .expect("session")
        .id
}

/// The attempt, once it has a final status (waits up to `secs`).
pub async fn settled_attempt(
    store: &Store,
    id: &malipo::domain::AttemptId,
    secs: u64,
) -> malipo::store::AttemptRecord {
    wait_for("the attempt to settle", secs, async || {
        store
            .attempt(id)
            .await
            .expect("attempt")
            .filter(|a| a.status.is_final())
    })
    .await
}

/// The id of the first prompt waiting on `phone`'s sandbox handset (waiting up to 5 s
/// for it to arrive).
pub async fn first_prompt(client: &reqwest::Client, addr: &str, phone: &str) -> String {
    wait_for("a prompt on the handset", 5, async || {
        prompts(client, addr, phone)
            .await
            .first()
            .and_then(|p| p["id"].as_str().map(str::to_owned))
    })
    .await
}

/// Approves the first prompt waiting on `phone`'s sandbox handset, as the shopper
/// would; returns the receipt.
pub async fn approve_first(client: &reqwest::Client, addr: &str, phone: &str) -> String {
    let id = first_prompt(client, addr, phone).await;
    accept(client, addr, phone, &id).await
}
