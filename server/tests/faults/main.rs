//! The fault suite: a few hundred real payments through the real `malipo` binary and its
//! sandbox Daraja and handset, while a fault proxy in front of the operator (and of
//! Malipo's callback route) loses, duplicates, delays and reorders callbacks, answers
//! pushes and queries with 5xx or not at all, the server is `kill -9`ed at the worst
//! moments and restarted, and database writes fail mid-transaction.
//!
//! It fails unless every count matches: every payment approved on the handset is
//! recorded as succeeded (or, when neither the push's answer nor its callback ever
//! arrived, surfaced to the merchant as `payment.unknown`); no session is paid twice;
//! every paid session is completed once, with exactly one signed
//! `checkout.session.completed`, and no webhook contradicts another. It prints its
//! counts. Run it alone with `cargo test -p server --test faults -- --nocapture`.
//!
//! Injection lives only here (a proxy and a database trigger); Malipo runs unmodified.

use axum::{
    Router,
    body::Bytes,
    extract::{Request, State},
    http::{HeaderMap, StatusCode},
    response::{IntoResponse, Response},
    routing::post,
};
use serde_json::Value;
use sqlx::{Connection as _, Row};
use std::{
    collections::{HashMap, HashSet},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};
use tokio::sync::Semaphore;

/// Payments attempted (one session each).
const SESSIONS: usize = 240;
/// Shoppers at once.
const CONCURRENCY: usize = 40;

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A small deterministic generator (xorshift), so a failing run can be replayed.
struct Rng(AtomicU64);

impl Rng {
    fn next(&self) -> u64 {
        let mut x = self.0.load(Ordering::Relaxed);
        loop {
            let mut y = x;
            y ^= y << 13;
            y ^= y >> 7;
            y ^= y << 17;
            match self
                .0
                .compare_exchange(x, y, Ordering::Relaxed, Ordering::Relaxed)
            {
                Ok(_) => return y,
                Err(now) => x = now,
            }
        }
    }
    /// True with probability `percent` %.
    fn chance(&self, percent: u64) -> bool {
        self.next() % 100 < percent
    }
}

/// The Malipo process, killed and restarted at will.
struct Server {
    bin: PathBuf,
    env: Vec<(String, String)>,
    port: u16,
    log: PathBuf,
    child: Mutex<Option<Child>>,
    kills: AtomicUsize,
    /// Serialises kill + restart.
    restarting: tokio::sync::Mutex<()>,
}

impl Server {
    fn spawn(&self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .unwrap();
        let child = Command::new(&self.bin)
            .arg("serve")
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .env_remove("MALIPO_CONFIG")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start malipo");
        *self.child.lock().unwrap() = Some(child);
    }

    async fn wait_ready(&self) {
        let client = reqwest::Client::new();
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Ok(res) = client
                .get(format!("http://127.0.0.1:{}/readyz", self.port))
                .send()
                .await
                && res.status() == 200
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let log = std::fs::read_to_string(&self.log).unwrap_or_default();
        let tail: Vec<&str> = log.lines().rev().take(15).collect();
        panic!("malipo did not come up; its log ends:\n{}", tail.join("\n"));
    }

    /// `kill -9`, then start again on the same port and database.
    async fn kill_and_restart(&self) {
        let _one = self.restarting.lock().await;
        if let Some(mut child) = self.child.lock().unwrap().take() {
            child.kill().expect("SIGKILL");
            child.wait().unwrap();
        }
        self.kills.fetch_add(1, Ordering::Relaxed);
        // The port must be free before the new process binds it.
        tokio::time::sleep(Duration::from_millis(100)).await;
        self.spawn();
        self.wait_ready().await;
    }

    fn stop(&self) {
        if let Some(mut child) = self.child.lock().unwrap().take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// What the proxy did, for the report.
#[derive(Default)]
struct Injected {
    push_5xx: AtomicUsize,
    push_answer_lost: AtomicUsize,
    push_timeout: AtomicUsize,
    query_5xx: AtomicUsize,
    query_answer_lost: AtomicUsize,
    callback_dropped: AtomicUsize,
    callback_duplicated: AtomicUsize,
    callback_delayed: AtomicUsize,
    kill_before_push_answer: AtomicUsize,
    kill_during_callback: AtomicUsize,
}

struct Proxy {
    upstream: String,
    http: reqwest::Client,
    rng: Rng,
    server: Arc<Server>,
    injected: Injected,
    pushes: AtomicUsize,
    callbacks: AtomicUsize,
}

impl Proxy {
    async fn forward(
        &self,
        method: &str,
        path: &str,
        headers: &HeaderMap,
        body: &Bytes,
    ) -> Response {
        let mut req = self
            .http
            .request(method.parse().unwrap(), format!("{}{path}", self.upstream))
            .body(body.clone());
        for name in ["content-type", "authorization"] {
            if let Some(v) = headers.get(name) {
                req = req.header(name, v.clone());
            }
        }
        match req.send().await {
            Ok(res) => {
                let status = StatusCode::from_u16(res.status().as_u16()).unwrap();
                let ct = res
                    .headers()
                    .get("content-type")
                    .cloned()
                    .unwrap_or_else(|| "application/json".parse().unwrap());
                let body = res.bytes().await.unwrap_or_default();
                (status, [("content-type", ct)], body).into_response()
            }
            Err(_) => StatusCode::BAD_GATEWAY.into_response(),
        }
    }
}

async fn proxy(State(p): State<Arc<Proxy>>, req: Request) -> Response {
    let method = req.method().to_string();
    let path = req
        .uri()
        .path_and_query()
        .map(|pq| pq.as_str().to_owned())
        .unwrap_or_default();
    let headers = req.headers().clone();
    let body = axum::body::to_bytes(req.into_body(), 1 << 20)
        .await
        .unwrap_or_default();
    let i = &p.injected;
    if path.ends_with("/mpesa/stkpush/v1/processrequest") {
        let n = p.pushes.fetch_add(1, Ordering::Relaxed);
        if n == 60 {
            // The push reaches Daraja, then Malipo dies before hearing the answer.
            let res = p.forward(&method, &path, &headers, &body).await;
            i.kill_before_push_answer.fetch_add(1, Ordering::Relaxed);
            // Detached: this handler is dropped the moment Malipo (its caller) dies.
            let server = p.server.clone();
            let _ = tokio::spawn(async move { server.kill_and_restart().await }).await;
            drop(res);
            return StatusCode::BAD_GATEWAY.into_response();
        }
        if p.rng.chance(7) {
            i.push_5xx.fetch_add(1, Ordering::Relaxed);
            return (StatusCode::SERVICE_UNAVAILABLE, "upstream down").into_response();
        }
        if p.rng.chance(7) {
            // Daraja took the push; its answer never comes back.
            let _ = p.forward(&method, &path, &headers, &body).await;
            i.push_answer_lost.fetch_add(1, Ordering::Relaxed);
            return StatusCode::BAD_GATEWAY.into_response();
        }
        if p.rng.chance(2) {
            // Slower than the connector's 15 s timeout.
            let res = p.forward(&method, &path, &headers, &body).await;
            i.push_timeout.fetch_add(1, Ordering::Relaxed);
            tokio::time::sleep(Duration::from_secs(17)).await;
            return res;
        }
        return p.forward(&method, &path, &headers, &body).await;
    }
    if path.ends_with("/mpesa/stkpushquery/v1/query") {
        if p.rng.chance(10) {
            i.query_5xx.fetch_add(1, Ordering::Relaxed);
            return (StatusCode::INTERNAL_SERVER_ERROR, "boom").into_response();
        }
        if p.rng.chance(5) {
            let _ = p.forward(&method, &path, &headers, &body).await;
            i.query_answer_lost.fetch_add(1, Ordering::Relaxed);
            return StatusCode::BAD_GATEWAY.into_response();
        }
        return p.forward(&method, &path, &headers, &body).await;
    }
    if path.starts_with("/callbacks/") {
        let n = p.callbacks.fetch_add(1, Ordering::Relaxed);
        if n == 90 {
            // Malipo dies while handling a callback.
            let server = p.server.clone();
            i.kill_during_callback.fetch_add(1, Ordering::Relaxed);
            let killer = tokio::spawn(async move {
                tokio::time::sleep(Duration::from_millis(2)).await;
                server.kill_and_restart().await;
            });
            let res = p.forward(&method, &path, &headers, &body).await;
            let _ = killer.await;
            return res;
        }
        if p.rng.chance(15) {
            i.callback_dropped.fetch_add(1, Ordering::Relaxed);
            return StatusCode::OK.into_response();
        }
        if p.rng.chance(10) {
            i.callback_duplicated.fetch_add(1, Ordering::Relaxed);
            let _ = p.forward(&method, &path, &headers, &body).await;
            return p.forward(&method, &path, &headers, &body).await;
        }
        if p.rng.chance(15) {
            // Late (past the poller's first verdict) and so out of order with others.
            i.callback_delayed.fetch_add(1, Ordering::Relaxed);
            let delay = Duration::from_millis(1_000 + p.rng.next() % 7_000);
            let p = p.clone();
            tokio::spawn(async move {
                tokio::time::sleep(delay).await;
                let _ = p.forward(&method, &path, &headers, &body).await;
            });
            return StatusCode::OK.into_response();
        }
        return p.forward(&method, &path, &headers, &body).await;
    }
    p.forward(&method, &path, &headers, &body).await
}

/// A verified event: its type, session, and (for `payment.*`) the payment.
type Seen = (String, String, Option<String>);

/// Signed webhooks as a merchant receives them.
struct Receiver {
    secret: Mutex<String>,
    /// Every verified event by id: (type, session, payment id).
    events: Mutex<HashMap<String, Seen>>,
    bad_signatures: AtomicUsize,
}

async fn receive(State(r): State<Arc<Receiver>>, headers: HeaderMap, body: Bytes) -> StatusCode {
    let header = headers
        .get("malipo-signature")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let secret = r.secret.lock().unwrap().clone();
    let now = malipo::time::now_ms() / 1000;
    if malipo::webhooks::signature::verify(header, &body, &secret, now, 300).is_err() {
        r.bad_signatures.fetch_add(1, Ordering::Relaxed);
        return StatusCode::BAD_REQUEST;
    }
    let v: Value = serde_json::from_slice(&body).unwrap();
    let kind = v["type"].as_str().unwrap_or("").to_owned();
    let object = &v["data"]["object"];
    let (session, payment) = if kind.starts_with("checkout.session.") {
        (object["id"].as_str().unwrap_or("").to_owned(), None)
    } else {
        (
            object["checkout_session"].as_str().unwrap_or("").to_owned(),
            object["id"].as_str().map(str::to_owned),
        )
    };
    r.events.lock().unwrap().insert(
        v["id"].as_str().unwrap().to_owned(),
        (kind, session, payment),
    );
    StatusCode::OK
}

/// The master key every server and CLI run of the suite shares.
const MASTER_KEY: &str = "5a1e5a1e5a1e5a1e5a1e5a1e5a1e5a1e5a1e5a1e5a1e5a1e5a1e5a1e5a1e5a1e";

fn malipo_cli(bin: &Path, db: &str, args: &[&str]) -> Value {
    let out = Command::new(bin)
        .args(args)
        .env("MALIPO_DATABASE_URL", db)
        .env("MALIPO_MASTER_KEY", MASTER_KEY)
        .env("MALIPO_LOG", "warn")
        .env_remove("MALIPO_CONFIG")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// The page's form token, read as a browser would, through restarts.
async fn form_token(client: &reqwest::Client, url: &str) -> String {
    let mut last = String::new();
    for _ in 0..400 {
        let html = match client.get(url).send().await {
            Ok(res) => {
                let status = res.status();
                let text = res.text().await.unwrap_or_default();
                last = format!("{status}: {}", text.chars().take(300).collect::<String>());
                text
            }
            Err(e) => {
                last = e.to_string();
                String::new()
            }
        };
        if let Some(at) = html.find("name=\"form_token\" value=\"") {
            let rest = &html[at + "name=\"form_token\" value=\"".len()..];
            if let Some(end) = rest.find('"') {
                return rest[..end].to_owned();
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("no pay form at {url}: {last}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn no_payment_is_lost_or_paid_twice_under_faults() {
    let started = Instant::now();
    let dir = tempfile::tempdir().unwrap();
    let bin = PathBuf::from(env!("CARGO_BIN_EXE_malipo"));
    let db_path = dir.path().join("faults.db");
    let db = format!("sqlite://{}", db_path.display());
    let (port, proxy_port, hook_port) = (free_port(), free_port(), free_port());
    let (malipo_url, public_url) = (
        format!("http://127.0.0.1:{port}"),
        format!("http://127.0.0.1:{proxy_port}"),
    );

    // The merchant and its webhook endpoint, set up with the CLI as an operator would.
    let merchant = malipo_cli(
        &bin,
        &db,
        &["merchant", "create", "--name", "Fault Lodge", "--json"],
    );
    let merchant_id = merchant["id"].as_str().unwrap().to_owned();
    let key = merchant["test_secret_key"].as_str().unwrap().to_owned();
    let endpoint = malipo_cli(
        &bin,
        &db,
        &[
            "webhook",
            "create",
            "--merchant",
            &merchant_id,
            "--url",
            &format!("http://127.0.0.1:{hook_port}/hooks"),
            "--events",
            "*",
            "--json",
        ],
    );
    let receiver = Arc::new(Receiver {
        secret: Mutex::new(endpoint["secret"].as_str().unwrap().to_owned()),
        events: Mutex::default(),
        bad_signatures: AtomicUsize::new(0),
    });
    let hooks = tokio::net::TcpListener::bind(("127.0.0.1", hook_port))
        .await
        .unwrap();
    let hook_app = Router::new()
        .route("/hooks", post(receive))
        .with_state(receiver.clone());
    tokio::spawn(async move { axum::serve(hooks, hook_app).await.unwrap() });

    let env: Vec<(String, String)> = [
        ("MALIPO_DATABASE_URL", db.as_str()),
        ("MALIPO_MASTER_KEY", MASTER_KEY),
        ("MALIPO_LISTEN", &format!("127.0.0.1:{port}")),
        ("MALIPO_PUBLIC_URL", &public_url),
        (
            "MALIPO_SITE_ROOT",
            &dir.path().join("site").display().to_string(),
        ),
        ("MALIPO_SANDBOX_MERCHANT_LISTEN", "off"),
        ("MALIPO_SANDBOX_CARD_LISTEN", "off"),
        ("MALIPO_SANDBOX_PAYPAL_LISTEN", "off"),
        ("MALIPO_LOG", "info,sqlx=warn"),
        ("MALIPO_SHUTDOWN_GRACE_SECS", "1"),
        ("MALIPO_LIMITS_PROMPTS_PER_PHONE", "1000"),
        ("MALIPO_LIMITS_REQUESTS_PER_IP", "1000000"),
        ("MALIPO_LIMITS_SANDBOX_PUSHES_PER_MINUTE", "100000"),
        ("MALIPO_LIMITS_ATTEMPTS_PER_SESSION", "20"),
        ("MALIPO_PAYMENTS_UNCONFIRMED_PUSH_MS", "4000"),
        ("MALIPO_WEBHOOKS_RETRY_BASE_MS", "200"),
        ("MALIPO_WEBHOOKS_RETRY_MAX_MS", "2000"),
        ("MALIPO_WEBHOOKS_ALLOW_HOSTS", "127.0.0.1"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    let server = Arc::new(Server {
        bin: bin.clone(),
        env,
        port,
        log: dir.path().join("malipo.log"),
        child: Mutex::new(None),
        kills: AtomicUsize::new(0),
        restarting: tokio::sync::Mutex::new(()),
    });
    server.spawn();
    server.wait_ready().await;

    let proxy_state = Arc::new(Proxy {
        upstream: malipo_url.clone(),
        http: reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap(),
        rng: Rng(AtomicU64::new(0x5eed_2026_1202)),
        server: server.clone(),
        injected: Injected::default(),
        pushes: AtomicUsize::new(0),
        callbacks: AtomicUsize::new(0),
    });
    let proxy_listener = tokio::net::TcpListener::bind(("127.0.0.1", proxy_port))
        .await
        .unwrap();
    let proxy_app = Router::new()
        .fallback(proxy)
        .with_state(proxy_state.clone());
    tokio::spawn(async move { axum::serve(proxy_listener, proxy_app).await.unwrap() });

    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();

    // The sessions, created through the API before the storm.
    let mut sessions = Vec::new();
    for i in 0..SESSIONS {
        let s: Value = client
            .post(format!("{malipo_url}/v1/checkout/sessions"))
            .bearer_auth(&key)
            .header("idempotency-key", format!("fault-{i}"))
            .json(&serde_json::json!({
                "amount": 150000, "currency": "KES", "reference": format!("F-{i}"),
                "description": "Fault-suite safari", "expires_in": 3600,
                "success_url": "https://lodge.example/ok", "cancel_url": "https://lodge.example/no",
            }))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        sessions.push(s["id"].as_str().unwrap().to_owned());
    }

    // A window in which writes of webhook events fail mid-transaction (a full disk, a
    // lost connection): the state change they belong to must roll back with them.
    let faulty_db = {
        let db = db.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(8)).await;
            sqlx::any::install_default_drivers();
            let mut conn = sqlx::AnyConnection::connect(&db).await.unwrap();
            sqlx::query(
                "CREATE TRIGGER fault_events BEFORE INSERT ON events \
                 WHEN abs(random()) % 3 = 0 BEGIN SELECT RAISE(ABORT, 'injected fault'); END",
            )
            .execute(&mut conn)
            .await
            .unwrap();
            tokio::time::sleep(Duration::from_secs(10)).await;
            sqlx::query("DROP TRIGGER fault_events")
                .execute(&mut conn)
                .await
                .unwrap();
        })
    };

    // The shoppers.
    let declined = Arc::new(AtomicUsize::new(0));
    let retries = Arc::new(AtomicUsize::new(0));
    let gate = Arc::new(Semaphore::new(CONCURRENCY));
    let mut shoppers = Vec::new();
    for (i, sid) in sessions.iter().enumerate() {
        let (client, malipo_url, sid) = (client.clone(), malipo_url.clone(), sid.clone());
        let (gate, declined, retries, server, rng) = (
            gate.clone(),
            declined.clone(),
            retries.clone(),
            server.clone(),
            proxy_state.clone(),
        );
        shoppers.push(tokio::spawn(async move {
            let _seat = gate.acquire().await.unwrap();
            let phone = format!("2547{:08}", 11_000_000 + i);
            let local = format!("0{}", &phone[3..]);
            let mut decline_once = rng.rng.chance(15);
            for attempt in 0..6 {
                // The page, then its form, as a browser would (through restarts).
                let token = form_token(&client, &format!("{malipo_url}/pay/{sid}")).await;
                let mut form = vec![("phone", local.clone()), ("form_token", token)];
                if attempt > 0 {
                    // Truthfully: no prompt reached this phone last time.
                    form.push(("no_sms", "1".into()));
                }
                let _ = client
                    .post(format!("{malipo_url}/pay/{sid}/mpesa"))
                    .form(&form)
                    .send()
                    .await;
                // Wait for the prompt on the handset.
                let mut prompt = None;
                for _ in 0..80 {
                    if let Ok(res) = client
                        .get(format!("{malipo_url}/sandbox/phones/{phone}/prompts"))
                        .send()
                        .await
                        && let Ok(list) = res.json::<Value>().await
                        && let Some(p) = list["prompts"].as_array().and_then(|l| l.first())
                    {
                        prompt = p["id"].as_str().map(str::to_owned);
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                let Some(prompt) = prompt else {
                    // No prompt: the push never reached the operator. Once our attempt
                    // is no longer pending, send again.
                    retries.fetch_add(1, Ordering::Relaxed);
                    tokio::time::sleep(Duration::from_millis(4_500)).await;
                    continue;
                };
                let base = format!("{malipo_url}/sandbox/phones/{phone}/prompts/{prompt}");
                if decline_once {
                    decline_once = false;
                    declined.fetch_add(1, Ordering::Relaxed);
                    let _ = client.post(format!("{base}/decline")).send().await;
                    // Wait until the declined attempt is settled, then try again.
                    tokio::time::sleep(Duration::from_millis(6_000)).await;
                    continue;
                }
                let _ = client
                    .post(format!("{base}/accept"))
                    .json(&serde_json::json!({"pin": "1234"}))
                    .send()
                    .await;
                if i == 150 {
                    // Malipo dies right after the shopper approved.
                    server.kill_and_restart().await;
                }
                return;
            }
        }));
    }
    for s in shoppers {
        s.await.unwrap();
    }
    faulty_db.await.unwrap();

    // Let everything settle: no attempt pending, every webhook delivered.
    sqlx::any::install_default_drivers();
    let pool = sqlx::any::AnyPoolOptions::new()
        .max_connections(2)
        .connect(&db)
        .await
        .unwrap();
    let scalar = async |sql: &str| -> i64 {
        sqlx::query(sql)
            .fetch_one(&pool)
            .await
            .unwrap()
            .try_get::<i64, _>(0)
            .unwrap()
    };
    let deadline = Instant::now() + Duration::from_secs(150);
    loop {
        let open = scalar("SELECT COUNT(*) FROM payment_attempts WHERE status = 'pending'").await
            + scalar(
                "SELECT COUNT(*) FROM payment_attempts WHERE status = 'unknown' \
                 AND next_poll_at IS NOT NULL",
            )
            .await
            + scalar("SELECT COUNT(*) FROM webhook_deliveries WHERE status = 'pending'").await
            + scalar(
                "SELECT COUNT(*) FROM sandbox_requests \
                 WHERE state = 'pending' OR callback_at IS NOT NULL",
            )
            .await;
        if open == 0 {
            break;
        }
        assert!(Instant::now() < deadline, "{open} things still open");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    // Delayed callbacks still in flight in the proxy.
    tokio::time::sleep(Duration::from_secs(9)).await;

    // The handset's own record of what was approved (the sandbox is the phone).
    let approved: HashMap<String, i64> = sqlx::query(
        "SELECT phone, COUNT(*) AS n FROM sandbox_requests WHERE result_code = '0' GROUP BY phone",
    )
    .fetch_all(&pool)
    .await
    .unwrap()
    .iter()
    .map(|r| (r.get::<String, _>("phone"), r.get::<i64, _>("n")))
    .collect();
    let attempts = sqlx::query(
        "SELECT a.id, a.session_id, a.status, a.payer, a.duplicate, a.next_poll_at, s.status AS s_status \
         FROM payment_attempts a JOIN checkout_sessions s ON s.id = a.session_id",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    let mut succeeded: HashMap<String, i64> = HashMap::new();
    let mut unknown: HashMap<String, Vec<String>> = HashMap::new();
    let mut duplicates = 0;
    let mut status_of: HashMap<String, String> = HashMap::new();
    let mut payer_of_session: HashMap<String, String> = HashMap::new();
    for a in &attempts {
        let payer: String = a.get::<Option<String>, _>("payer").unwrap_or_default();
        let session: String = a.get("session_id");
        let status: String = a.get("status");
        payer_of_session.insert(session.clone(), payer.clone());
        status_of.insert(a.get("id"), status.clone());
        if a.get::<i64, _>("duplicate") == 1 {
            duplicates += 1;
        }
        match status.as_str() {
            "succeeded" => *succeeded.entry(payer).or_default() += 1,
            "unknown" => unknown.entry(payer).or_default().push(a.get("id")),
            _ => {}
        }
    }
    let complete: HashSet<String> = sqlx::query(
        "SELECT id FROM checkout_sessions WHERE status = 'complete' AND payment_status = 'paid'",
    )
    .fetch_all(&pool)
    .await
    .unwrap()
    .iter()
    .map(|r| r.get("id"))
    .collect();
    let events = receiver.events.lock().unwrap().clone();
    let completed_hooks: HashMap<String, usize> =
        events
            .values()
            .fold(HashMap::new(), |mut m, (kind, session, _)| {
                if kind == "checkout.session.completed" {
                    *m.entry(session.clone()).or_default() += 1;
                }
                m
            });
    let unknown_hooks: HashSet<String> = events
        .values()
        .filter(|(kind, ..)| kind == "payment.unknown")
        .filter_map(|(_, _, payment)| payment.clone())
        .collect();

    // Lost: approved on the handset, yet neither recorded as succeeded nor surfaced to
    // the merchant as an unknown payment to reconcile.
    let mut lost = 0;
    let mut surfaced = 0;
    for (phone, n) in &approved {
        let recorded = succeeded.get(phone).copied().unwrap_or(0);
        let open: Vec<&String> = unknown
            .get(phone)
            .map(|v| v.iter().filter(|id| unknown_hooks.contains(*id)).collect())
            .unwrap_or_default();
        if recorded < *n {
            let missing = n - recorded;
            let covered = (open.len() as i64).min(missing);
            surfaced += covered;
            lost += missing - covered;
        }
    }
    let approved_total: i64 = approved.values().sum();
    let succeeded_total: i64 = succeeded.values().sum();
    // Paid twice: a session paid by two approvals without one being flagged duplicate.
    let paid_twice = approved.values().filter(|n| **n > 1).count() as i64 - duplicates;
    // Conflicting webhooks: a session completed more than once, a completion for a
    // session that is not paid, a paid session without its completion, or a payment
    // whose newest announced state is not its recorded one.
    let mut conflicting = 0;
    for (session, n) in &completed_hooks {
        if *n > 1 || !complete.contains(session) {
            conflicting += 1;
        }
    }
    for session in &complete {
        if !completed_hooks.contains_key(session) {
            conflicting += 1;
        }
    }
    // Per payment: a succeeded one is announced succeeded exactly once; one that did
    // not succeed is never announced as succeeded.
    let mut announced: HashMap<String, Vec<String>> = HashMap::new();
    for (kind, _, payment) in events.values() {
        if let Some(p) = payment {
            announced.entry(p.clone()).or_default().push(kind.clone());
        }
    }
    for (payment, recorded) in &status_of {
        let kinds = announced.get(payment).cloned().unwrap_or_default();
        let succeeded_events = kinds.iter().filter(|k| *k == "payment.succeeded").count();
        let ok = match recorded.as_str() {
            "succeeded" => succeeded_events == 1,
            _ => succeeded_events == 0,
        };
        if !ok {
            conflicting += 1;
        }
    }
    // Nothing sensitive in a whole run's logs: no callback token, no full test phone
    // number, no API key.
    let log = std::fs::read_to_string(dir.path().join("malipo.log")).unwrap();
    let tokens: Vec<String> = sqlx::query("SELECT callback_url FROM sandbox_requests")
        .fetch_all(&pool)
        .await
        .unwrap()
        .iter()
        .filter_map(|r| {
            r.get::<String, _>("callback_url")
                .rsplit('/')
                .next()
                .map(str::to_owned)
        })
        .collect();
    let leaked_tokens = tokens.iter().filter(|t| log.contains(t.as_str())).count();
    let leaked_phones = approved.keys().filter(|p| log.contains(p.as_str())).count()
        + payer_of_session
            .values()
            .filter(|p| !p.is_empty() && log.contains(p.as_str()))
            .count();
    let leaked_keys = usize::from(log.contains(&key));

    let i = &proxy_state.injected;
    let ld = |a: &AtomicUsize| a.load(Ordering::Relaxed);
    println!(
        "fault suite: {} sessions in {:.0?}; injected: push 5xx {}, push answer lost {}, push timeout {}, \
         query 5xx {}, query answer lost {}, callbacks dropped {}, duplicated {}, delayed {}, \
         kill -9 {} (before a push answer {}, during a callback {}, after an approval 1), \
         event writes failing for 10 s; shoppers declined {}, retried {}",
        SESSIONS,
        started.elapsed(),
        ld(&i.push_5xx),
        ld(&i.push_answer_lost),
        ld(&i.push_timeout),
        ld(&i.query_5xx),
        ld(&i.query_answer_lost),
        ld(&i.callback_dropped),
        ld(&i.callback_duplicated),
        ld(&i.callback_delayed),
        server.kills.load(Ordering::Relaxed),
        ld(&i.kill_before_push_answer),
        ld(&i.kill_during_callback),
        declined.load(Ordering::Relaxed),
        retries.load(Ordering::Relaxed),
    );
    println!(
        "fault suite counts: approved on the handset {approved_total}, recorded succeeded \
         {succeeded_total}, surfaced as payment.unknown {surfaced}, sessions completed {}, \
         checkout.session.completed webhooks {} (bad signatures {}); lost {lost}, paid twice \
         {paid_twice}, conflicting webhooks {conflicting}; leaked in logs: tokens {leaked_tokens}, \
         phones {leaked_phones}, keys {leaked_keys}",
        complete.len(),
        completed_hooks.values().sum::<usize>(),
        receiver.bad_signatures.load(Ordering::Relaxed),
    );
    server.stop();

    assert!(
        approved_total >= (SESSIONS as i64) * 7 / 10,
        "the run paid too little to mean anything"
    );
    assert!(
        server.kills.load(Ordering::Relaxed) >= 3,
        "every kill happened"
    );
    assert_eq!(lost, 0, "lost payments");
    assert_eq!(paid_twice, 0, "sessions paid twice");
    assert_eq!(conflicting, 0, "conflicting webhooks");
    assert_eq!(
        succeeded_total + surfaced,
        approved_total,
        "every approval is recorded or surfaced, and nothing else"
    );
    assert_eq!(receiver.bad_signatures.load(Ordering::Relaxed), 0);
    assert_eq!(
        (leaked_tokens, leaked_phones, leaked_keys),
        (0, 0, 0),
        "secrets in logs"
    );
}
