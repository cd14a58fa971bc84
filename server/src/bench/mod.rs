//! `malipo bench`: throughput and latency figures, printed, never asserted (a busy
//! machine must not fail a build). Everything runs on loopback:
//!
//! 1. **Create**: `POST /v1/checkout/sessions` (auth, validation, insert + event in one
//!    transaction) against a bare axum handler doing the same single INSERT into the
//!    same table, same database settings, no logic. Ratio = Malipo / bare.
//! 2. **Read**: `GET /v1/checkout/sessions/{id}` against a bare single SELECT by id.
//! 3. **Callback → paid**: a pending attempt; a page-like client follows
//!    `/pay/{id}/events`; the time from POSTing the operator's success callback to
//!    Malipo until that client receives `paid`, p50/p99 over many payments, per rail.
//! 4. **Ten thousand pending** ([`fleet::pending`]): one `malipo serve` process holds
//!    10,000 pending payments, each followed by an open event stream; callbacks settle
//!    them; its memory, CPU and callback → page latency are reported.
//! 5. **PostgreSQL** (with `--postgres`): 1–2 again, then [`fleet::postgres`]: the
//!    database's own write ceiling, what one payment writes, and one `malipo serve`
//!    process against two on the same database.
//!
//! 1–3 run in this process; 4–5 start `malipo serve` processes on free ports, so the
//! bench runs beside a `scripts/serve`.

mod fleet;

use anyhow::Context;
use axum::{
    Json, Router,
    extract::{Path, State},
    http::StatusCode,
    routing::{get, post},
};
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Value, json};
use std::{
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use crate::{
    config::Config,
    connectors::RailId,
    domain::{Money, SessionId, money::Currency},
    merchants,
    startup::Application,
    store::Store,
    time::now_ms,
};

/// Knobs for a run.
pub struct BenchOptions {
    pub seconds: u64,
    pub concurrency: usize,
    pub payments: usize,
    /// Payments held pending at once, each with an open event stream (0: skip).
    pub pending: usize,
    /// Callbacks a second that settle them.
    pub settle_rate: f64,
    /// A PostgreSQL server to also measure on (its URL: the bench makes databases).
    pub postgres: Option<String>,
}

struct Load {
    ok: u64,
    errors: u64,
    per_sec: f64,
}

/// Runs `concurrency` workers, each calling `op` in a loop, for `seconds`.
async fn load<F, Fut>(seconds: u64, concurrency: usize, op: F) -> Load
where
    F: Fn(u64) -> Fut + Clone + Send + 'static,
    Fut: std::future::Future<Output = bool> + Send,
{
    let ok = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(AtomicU64::new(0));
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for w in 0..concurrency {
        let (op, ok, errors) = (op.clone(), ok.clone(), errors.clone());
        tasks.push(tokio::spawn(async move {
            let mut i = w as u64 * 1_000_000_000;
            while Instant::now() < deadline {
                i += 1;
                if op(i).await {
                    ok.fetch_add(1, Ordering::Relaxed);
                } else {
                    errors.fetch_add(1, Ordering::Relaxed);
                }
            }
        }));
    }
    for t in tasks {
        let _ = t.await;
    }
    let elapsed = started.elapsed().as_secs_f64();
    let ok = ok.load(Ordering::Relaxed);
    Load {
        ok,
        errors: errors.load(Ordering::Relaxed),
        per_sec: ok as f64 / elapsed,
    }
}

#[derive(Clone)]
struct Bare {
    store: Store,
    merchant_id: String,
}

/// The baseline: one INSERT of a session row, nothing else.
async fn bare_create(
    State(b): State<Bare>,
    Json(body): Json<Value>,
) -> Result<(StatusCode, Json<Value>), StatusCode> {
    let id = SessionId::generate();
    let now = now_ms();
    sqlx::query(
        "INSERT INTO checkout_sessions (id, merchant_id, mode, amount_minor, currency, reference, \
         description, status, payment_status, success_url, cancel_url, metadata, expires_at, \
         created_at, updated_at) VALUES ($1, $2, 'test', $3, 'KES', $4, $5, 'open', 'unpaid', $6, $7, '{}', $8, $9, $9)",
    )
    .bind(id.as_str())
    .bind(&b.merchant_id)
    .bind(body["amount"].as_i64().unwrap_or(1))
    .bind(body["reference"].as_str().unwrap_or(""))
    .bind(body["description"].as_str().unwrap_or(""))
    .bind(body["success_url"].as_str().unwrap_or(""))
    .bind(body["cancel_url"].as_str().unwrap_or(""))
    .bind(now + 1_800_000)
    .bind(now)
    .execute(b.store.pool())
    .await
    .map_err(|_| StatusCode::INTERNAL_SERVER_ERROR)?;
    Ok((StatusCode::CREATED, Json(json!({ "id": id.as_str() }))))
}

/// The baseline: one SELECT by id, nothing else.
async fn bare_read(
    State(b): State<Bare>,
    Path(id): Path<String>,
) -> Result<Json<Value>, StatusCode> {
    use sqlx::Row;
    let row = sqlx::query("SELECT id, amount_minor, status FROM checkout_sessions WHERE id = $1")
        .bind(&id)
        .fetch_optional(b.store.pool())
        .await
        .map_err(|_| StatusCode::INTERNAL_SERVER_ERROR)?
        .ok_or(StatusCode::NOT_FOUND)?;
    Ok(Json(json!({
        "id": row.try_get::<String, _>("id").unwrap_or_default(),
        "amount": row.try_get::<i64, _>("amount_minor").unwrap_or_default(),
        "status": row.try_get::<String, _>("status").unwrap_or_default(),
    })))
}

fn session_body(i: u64) -> Value {
    json!({
        "amount": 150000,
        "currency": "KES",
        "reference": format!("B-{i}"),
        "description": "Maasai Mara 3-day safari",
        "success_url": "https://lodge.example/paid",
        "cancel_url": "https://lodge.example/booking",
    })
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * (sorted.len() as f64 - 1.0)).round() as usize;
    sorted[rank.min(sorted.len() - 1)]
}

/// Runs the whole benchmark and prints the figures.
pub async fn run(opts: BenchOptions) -> anyhow::Result<()> {
    let dir = tempfile_dir()?;
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(opts.concurrency)
        .build()?;
    println!(
        "malipo bench: {} s per phase, {} concurrent clients, loopback, {} CPU cores",
        opts.seconds,
        opts.concurrency,
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );

    // 1–2 on SQLite (the single-instance default), each file in the temporary directory.
    let sqlite = |name: &str| format!("sqlite://{}/{name}.db", dir.display());
    let (app, created) = compare(
        "SQLite",
        &opts,
        &client,
        &sqlite("bench"),
        &sqlite("bare"),
        &dir,
    )
    .await?;
    latency(&opts, &client, app, &created).await?;

    // 4. Ten thousand pending payments on one instance (its own process, to measure it).
    if opts.pending > 0 {
        fleet::pending(&opts, &dir).await?;
    }

    // 5. The same on PostgreSQL, and instances side by side on one database.
    if let Some(admin) = &opts.postgres {
        let malipo_db = fleet::new_database(admin, "bench").await?;
        let bare_db = fleet::new_database(admin, "bare").await?;
        compare("PostgreSQL", &opts, &client, &malipo_db, &bare_db, &dir).await?;
        let measured = fleet::postgres(&opts, admin, &dir).await;
        // The databases made here go, measured or not (on a server of one's own, they
        // would stay otherwise).
        fleet::drop_databases(admin).await;
        measured?;
    }
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

/// Phases 1 and 2 on one kind of database: starts Malipo in this process on
/// `malipo_db` and the bare baseline on `bare_db`, prints the figures, and returns the
/// running Malipo (with its merchant) for the latency phase.
async fn compare(
    label: &str,
    opts: &BenchOptions,
    client: &reqwest::Client,
    malipo_db: &str,
    bare_db: &str,
    dir: &std::path::Path,
) -> anyhow::Result<(Running, merchants::CreatedMerchant)> {
    let mut config = Config::load_from(None, |_| None)?;
    config.database_url = SecretString::from(malipo_db.to_owned());
    config.master_key_file = dir.join("master.key");
    config.listen = "127.0.0.1:0".parse()?;
    config.public_url = String::new();
    config.log = "warn".into();
    config.database_max_connections = 8;
    // The merchant's webhook receiver below listens on loopback: allowed explicitly.
    config.webhooks.allow_hosts = vec!["127.0.0.1".into()];
    // No sandbox merchant site, card gateway or PayPal: nothing here needs them, and
    // fixed ports would clash with a `scripts/serve` running beside the bench.
    config.sandbox_merchant_listen = None;
    config.sandbox_card_listen = None;
    config.sandbox_paypal_listen = None;
    let app = Application::build(config).await?;
    let malipo = format!("http://127.0.0.1:{}", app.port());
    let store = app.state().store.clone();
    let sandbox = app
        .state()
        .sandbox
        .clone()
        .ok_or_else(|| anyhow::anyhow!("the benchmark needs the built-in sandbox"))?;
    // Serves until the `Running` returned is dropped (its sender with it), so nothing of
    // it is left working beside the phases after it.
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(app.run_until(async move {
        let _ = stopped.await;
    }));

    // The bare baseline: its own database, same schema, same settings.
    let bare_store = Store::connect(&SecretString::from(bare_db.to_owned()), 8).await?;
    bare_store.migrate().await?;
    let bare_merchant = merchants::create(&bare_store, "Bare")
        .await?
        .merchant
        .id
        .to_string();
    let bare = Router::new()
        .route("/sessions", post(bare_create))
        .route("/sessions/{id}", get(bare_read))
        .with_state(Bare {
            store: bare_store.clone(),
            merchant_id: bare_merchant,
        });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let bare_url = format!("http://{}", listener.local_addr()?);
    tokio::spawn(async move { axum::serve(listener, bare).await });

    let created = merchants::create(&store, "Bench Lodge").await?;
    let key = created.test_secret_key.expose_secret().to_owned();
    println!("— {label} —");

    // 1. Create.
    let (c, k, url) = (
        client.clone(),
        key.clone(),
        format!("{malipo}/v1/checkout/sessions"),
    );
    let ours = move |i| {
        let (c, k, url) = (c.clone(), k.clone(), url.clone());
        async move {
            matches!(c.post(&url).bearer_auth(&k).json(&session_body(i)).send().await, Ok(r) if r.status() == 201)
        }
    };
    let (c, url) = (client.clone(), format!("{bare_url}/sessions"));
    let base = move |i| {
        let (c, url) = (c.clone(), url.clone());
        async move {
            matches!(c.post(&url).json(&session_body(i)).send().await, Ok(r) if r.status() == 201)
        }
    };
    side_by_side("create session", opts, ours, base, 0.5).await;

    // 2. Read (ids known to exist in each database).
    let ids = Arc::new(sample_ids(&store).await?);
    let bare_ids = Arc::new(sample_ids(&bare_store).await?);
    let (c, k, m) = (client.clone(), key.clone(), malipo.clone());
    let ours = move |i| {
        let (c, k, m, ids) = (c.clone(), k.clone(), m.clone(), ids.clone());
        async move {
            let id = &ids[(i as usize) % ids.len()];
            matches!(c.get(format!("{m}/v1/checkout/sessions/{id}")).bearer_auth(&k).send().await, Ok(r) if r.status() == 200)
        }
    };
    let (c, b) = (client.clone(), bare_url.clone());
    let base = move |i| {
        let (c, b, ids) = (c.clone(), b.clone(), bare_ids.clone());
        async move {
            let id = &ids[(i as usize) % ids.len()];
            matches!(c.get(format!("{b}/sessions/{id}")).send().await, Ok(r) if r.status() == 200)
        }
    };
    side_by_side("read session", opts, ours, base, 0.7).await;
    Ok((
        Running {
            url: malipo,
            store,
            sandbox,
            _stop: stop,
        },
        created,
    ))
}

/// Malipo running in this process.
struct Running {
    url: String,
    store: Store,
    sandbox: Arc<crate::sandbox::Sandbox>,
    /// Dropped: the server stops.
    _stop: tokio::sync::oneshot::Sender<()>,
}

/// Phase 3: callback → paid, on each mobile-money rail with a callback.
async fn latency(
    opts: &BenchOptions,
    client: &reqwest::Client,
    app: Running,
    created: &merchants::CreatedMerchant,
) -> anyhow::Result<()> {
    // `_stop` held to the end: the server serves this whole phase.
    let Running {
        url: malipo,
        store,
        sandbox,
        _stop,
    } = app;
    // 3. Callback → paid, as the page sees it, and as the merchant's webhook receiver
    // (which verifies the signature, as a real one must) sees it.
    let (hook_tx, mut hook_rx) = tokio::sync::mpsc::unbounded_channel::<(String, Instant)>();
    let receiver = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let hook_url = format!("http://{}/hooks", receiver.local_addr()?);
    let secret = crate::webhooks::create_endpoint(
        &store,
        &created.merchant.id,
        crate::domain::Mode::Test,
        &hook_url,
        &["checkout.session.completed".into()],
        "bench receiver",
        now_ms(),
    )
    .await
    .context("registering the bench's webhook endpoint")?
    .secret;
    let hook = Router::new().route(
        "/hooks",
        post(
            move |headers: axum::http::HeaderMap, body: axum::body::Bytes| {
                let (tx, secret) = (hook_tx.clone(), secret.clone());
                async move {
                    let at = Instant::now();
                    let sig = headers
                        .get(crate::webhooks::signature::HEADER)
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or("");
                    if crate::webhooks::signature::verify(
                        sig,
                        &body,
                        secret.expose_secret(),
                        now_ms() / 1000,
                        300,
                    )
                    .is_err()
                    {
                        return axum::http::StatusCode::BAD_REQUEST;
                    }
                    let event: Value = serde_json::from_slice(&body).unwrap_or_default();
                    if let Some(id) = event["data"]["object"]["id"].as_str() {
                        let _ = tx.send((id.to_owned(), at));
                    }
                    axum::http::StatusCode::OK
                }
            },
        ),
    );
    tokio::spawn(async move { axum::serve(receiver, hook).await });
    let mut webhook_latencies = Vec::with_capacity(opts.payments * RailId::MOBILE_MONEY.len());
    // This install's sandbox Tigo callback key (derived from its per-install password).
    let tigo_key = crate::config::TigoConfig {
        password: store.instance_secret("sandbox_tigo_password").await?,
        ..crate::config::TigoConfig::default()
    }
    .callback_key();
    let checkout = crate::checkout::CheckoutService::new(store.clone(), malipo.clone());
    for rail in RailId::MOBILE_MONEY {
        let mut latencies = Vec::with_capacity(opts.payments);
        for i in 0..opts.payments {
            let Some(pending) = fleet::pending_payment(
                &store,
                &checkout,
                &created.merchant.id,
                rail,
                i,
                format!("L-{rail}-{i}"),
            )
            .await?
            else {
                break;
            };
            if rail == RailId::Airtel {
                paid_at_sandbox(
                    &store,
                    &sandbox,
                    rail,
                    &format!("bench-{rail}-{i}"),
                    pending.amount,
                    pending.payer,
                )
                .await?;
            }
            let mut events = client
                .get(format!("{malipo}/pay/{}/events", pending.session))
                .send()
                .await?;
            let mut buf = String::new();
            read_until(
                &mut events,
                &mut buf,
                "data: waiting",
                Duration::from_secs(10),
            )
            .await?;
            let t0 = Instant::now();
            let res = client
                .post(match rail {
                    // Tigo posts to the merchant's one callback URL, with its key.
                    RailId::Tigo => format!("{malipo}/callbacks/tigo/{tigo_key}"),
                    RailId::Airtel => format!("{malipo}/callbacks/airtel"),
                    _ => format!(
                        "{malipo}/callbacks/{rail}/{}/{}",
                        pending.attempt, pending.token
                    ),
                })
                .json(&pending.callback)
                .send()
                .await?;
            anyhow::ensure!(res.status() == 200, "callback refused: {}", res.status());
            read_until(&mut events, &mut buf, "data: paid", Duration::from_secs(10)).await?;
            latencies.push(t0.elapsed().as_secs_f64() * 1000.0);
            let arrived = tokio::time::timeout(Duration::from_secs(10), async {
                while let Some((id, at)) = hook_rx.recv().await {
                    if id == pending.session {
                        return Some(at);
                    }
                }
                None
            })
            .await
            .ok()
            .flatten()
            .ok_or_else(|| anyhow::anyhow!("no webhook for {}", pending.session))?;
            webhook_latencies.push(arrived.duration_since(t0).as_secs_f64() * 1000.0);
        }
        if latencies.is_empty() {
            println!(
                "callback → page shows paid ({rail}): not measured (no callback: its payment \
                 call answers itself)"
            );
            continue;
        }
        latencies.sort_by(|a, b| a.total_cmp(b));
        println!(
            "callback → page shows paid ({rail}): p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms over {} payments",
            percentile(&latencies, 50.0),
            percentile(&latencies, 99.0),
            latencies.last().copied().unwrap_or(f64::NAN),
            latencies.len()
        );
    }
    webhook_latencies.sort_by(|a, b| a.total_cmp(b));
    println!(
        "callback → merchant receives the signed checkout.session.completed webhook: \
         p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms over {} payments",
        percentile(&webhook_latencies, 50.0),
        percentile(&webhook_latencies, 99.0),
        webhook_latencies.last().copied().unwrap_or(f64::NAN),
        webhook_latencies.len()
    );
    Ok(())
}

/// Puts payment `id` at the sandbox operator as approved on the handset, so the
/// operator's status query says paid (for a rail whose callback only cues a query): the
/// sandbox takes it and answers it as a push and a PIN would.
async fn paid_at_sandbox(
    store: &Store,
    sandbox: &crate::sandbox::Sandbox,
    rail: RailId,
    id: &str,
    amount: Money,
    phone: &str,
) -> anyhow::Result<()> {
    use crate::sandbox::{Answer, NewRequest, worker};
    let new = NewRequest {
        operator: rail,
        id: id.to_owned(),
        phone: phone.to_owned(),
        amount: amount.minor(),
        currency: amount.currency(),
        payee: "Bench Lodge".into(),
        reference: id.to_owned(),
        callback_url: None,
        wire: serde_json::Map::new(),
        refund_of: None,
    };
    sandbox.take(store, new).await?;
    let req = store
        .sandbox_request(rail, id)
        .await?
        .ok_or_else(|| anyhow::anyhow!("the sandbox lost payment {id}"))?;
    worker::answer(store, &req, Answer::Approved, sandbox).await?;
    Ok(())
}

/// A session's amount, the payer, and the operator's success callback for payment `i`
/// of the benchmark on `rail` (request id `bench-{rail}-{i}`).
fn paid_callback(rail: RailId, i: usize) -> anyhow::Result<Option<(Money, &'static str, Value)>> {
    Ok(Some(match rail {
        RailId::Mpesa => (
            Money::new(150_000, Currency::Kes)?,
            "254708374149",
            json!({"Body": {"stkCallback": {
                "MerchantRequestID": "1", "CheckoutRequestID": format!("bench-{rail}-{i}"), "ResultCode": 0,
                "ResultDesc": "The service request is processed successfully.",
                "CallbackMetadata": {"Item": [
                    {"Name": "Amount", "Value": 1500.0},
                    {"Name": "MpesaReceiptNumber", "Value": format!("BENCH{i:05}")},
                    {"Name": "Balance"},
                    {"Name": "TransactionDate", "Value": 20261123101010_i64},
                    {"Name": "PhoneNumber", "Value": 254708374149_i64}]}}}}),
        ),
        RailId::MtnMomo => (
            Money::new(75_000, Currency::Ugx)?,
            "256772123456",
            json!({"financialTransactionId": format!("{}", 600_000_000 + i), "externalId": "bench",
                "amount": "75000", "currency": "UGX",
                "payer": {"partyIdType": "MSISDN", "partyId": "256772123456"},
                "status": "SUCCESSFUL"}),
        ),
        // To Airtel's one portal URL: only a cue to ask; the enquiry (to the sandbox,
        // which has the payment as paid) settles it on the poller's next pass.
        RailId::Airtel => {
            let transaction = json!({"id": format!("bench-{rail}-{i}"), "message": "Paid",
                "status_code": "TS", "airtel_money_id": format!("BENCH{i:05}")});
            // Signed as Airtel signs it, with the (test-mode default) callback key.
            let hash = crate::connectors::airtel::callback_hash(
                crate::config::AirtelConfig::default()
                    .callback_key
                    .expose_secret(),
                transaction.to_string().as_bytes(),
            );
            (
                Money::new(75_000, Currency::Ugx)?,
                "256750123456",
                json!({"transaction": transaction, "hash": hash}),
            )
        }
        // No callback: the payment call's own answer settles it.
        RailId::Vodacom => return Ok(None),
        // Paid on the processor's (PayPal's) pages; the return settles it, or a query
        // that a signed webhook cues: never a callback applied as it is.
        RailId::Card | RailId::Paypal => return Ok(None),
        // To Tigo's one portal URL; the ReferenceID is the attempt's request id.
        RailId::Tigo => (
            Money::new(5_000_000, Currency::Tzs)?,
            "255713123456",
            json!({"Status": true, "Description": "Success",
                "MFSTransactionID": format!("BENCH{i:05}"),
                "ReferenceID": format!("bench-{rail}-{i}"), "Amount": "50000"}),
        ),
    }))
}

/// Rounds of each side in [`side_by_side`].
const ROUNDS: usize = 3;

/// Runs Malipo's `ours` and the bare `base` for [`ROUNDS`] rounds of `opts.seconds`
/// each, alternating which goes first (A B, B A, A B), so that a shared machine's
/// drift falls on both alike, and prints the median of each and of the rounds' ratios.
async fn side_by_side<A, AF, B, BF>(what: &str, opts: &BenchOptions, ours: A, base: B, goal: f64)
where
    A: Fn(u64) -> AF + Clone + Send + 'static,
    AF: std::future::Future<Output = bool> + Send,
    B: Fn(u64) -> BF + Clone + Send + 'static,
    BF: std::future::Future<Output = bool> + Send,
{
    let (mut o, mut b) = (Vec::new(), Vec::new());
    for round in 0..ROUNDS {
        if round % 2 == 0 {
            o.push(load(opts.seconds, opts.concurrency, ours.clone()).await);
            b.push(load(opts.seconds, opts.concurrency, base.clone()).await);
        } else {
            b.push(load(opts.seconds, opts.concurrency, base.clone()).await);
            o.push(load(opts.seconds, opts.concurrency, ours.clone()).await);
        }
    }
    let median = |mut v: Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let ratios: Vec<f64> = o
        .iter()
        .zip(&b)
        .map(|(o, b)| o.per_sec / b.per_sec)
        .collect();
    let (low, high) = ratios
        .iter()
        .fold((f64::MAX, f64::MIN), |(l, h), r| (l.min(*r), h.max(*r)));
    println!(
        "{what:<15} malipo {:>8.0}/s ({} ok, {} errors)   bare axum + same SQL {:>8.0}/s   ratio {:.2} (rounds {low:.2}–{high:.2}; goal ≥ {goal})",
        median(o.iter().map(|l| l.per_sec).collect()),
        o.iter().map(|l| l.ok).sum::<u64>(),
        o.iter().map(|l| l.errors).sum::<u64>(),
        median(b.iter().map(|l| l.per_sec).collect()),
        median(ratios),
    );
}

async fn sample_ids(store: &Store) -> anyhow::Result<Vec<String>> {
    use sqlx::Row;
    let rows = sqlx::query("SELECT id FROM checkout_sessions ORDER BY created_at DESC LIMIT 1000")
        .fetch_all(store.pool())
        .await?;
    let ids: Vec<String> = rows.iter().filter_map(|r| r.try_get("id").ok()).collect();
    anyhow::ensure!(!ids.is_empty(), "no sessions to read");
    Ok(ids)
}

async fn read_until(
    res: &mut reqwest::Response,
    buf: &mut String,
    needle: &str,
    within: Duration,
) -> anyhow::Result<()> {
    let deadline = Instant::now() + within;
    loop {
        if let Some(i) = buf.find(needle) {
            buf.drain(..i + needle.len());
            return Ok(());
        }
        let left = deadline.saturating_duration_since(Instant::now());
        let chunk = tokio::time::timeout(left, res.chunk())
            .await
            .context("timed out waiting for the event")??;
        let chunk = chunk.context("event stream ended")?;
        buf.push_str(&String::from_utf8_lossy(&chunk));
    }
}

fn tempfile_dir() -> anyhow::Result<std::path::PathBuf> {
    let dir = std::env::temp_dir().join(format!(
        "malipo-bench-{}",
        crate::domain::ids::random_base62(8)
    ));
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}
