//! The benchmarks that need `malipo serve` processes of their own, so that what one
//! instance costs (memory, CPU) is measured apart from the clients driving it:
//! [`pending`] (ten thousand pages waiting at once) and [`postgres`] (the database's
//! write ceiling, what a payment writes, one instance against two).
//!
//! Instances listen on free loopback ports, with the sandbox merchant site, card gateway
//! and PayPal off, so the bench runs beside a `scripts/serve`.

use anyhow::Context;
use secrecy::SecretString;
use serde_json::Value;
use std::{
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::{
        Arc, Mutex,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use super::{BenchOptions, load, paid_callback, percentile, session_body};
use crate::{
    checkout::{CheckoutService, CreateSession},
    connectors::RailId,
    domain::{MerchantId, Mode, keys::hash_token},
    merchants,
    sealing::MasterKey,
    store::{NewAttempt, Store},
    time::now_ms,
};

/// One `malipo serve` process.
struct Instance {
    url: String,
    /// What was started: the server, or the profiler that runs it.
    child: Child,
    /// The server's own process id (its child's, under a profiler).
    pid: u32,
    log: PathBuf,
}

impl Drop for Instance {
    fn drop(&mut self) {
        if self.pid != self.child.id() {
            // Under a profiler: stop the server gently so the profiler writes its data.
            let _ = Command::new("kill")
                .args(["-TERM", &self.pid.to_string()])
                .status();
            let deadline = Instant::now() + Duration::from_secs(20);
            while Instant::now() < deadline && matches!(self.child.try_wait(), Ok(None)) {
                std::thread::sleep(Duration::from_millis(100));
            }
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The first process below `root` (at any depth) running `name`.
fn descendant(root: u32, name: &str) -> Option<u32> {
    let parent_of = |pid: u32| -> Option<u32> {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        stat.rsplit_once(')')?
            .1
            .split_whitespace()
            .nth(1)?
            .parse()
            .ok()
    };
    std::fs::read_dir("/proc")
        .ok()?
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|&pid| {
            std::fs::read_to_string(format!("/proc/{pid}/comm")).is_ok_and(|c| c.trim() == name)
        })
        .find(|&pid| {
            let mut at = pid;
            for _ in 0..8 {
                match parent_of(at) {
                    Some(p) if p == root => return true,
                    Some(p) if p > 1 => at = p,
                    _ => return false,
                }
            }
            false
        })
}

impl Instance {
    /// Starts `malipo serve` (this very binary) on `db` and waits until it is ready.
    async fn start(
        db: &str,
        master_key: &str,
        dir: &Path,
        name: &str,
        extra: &[(&str, String)],
    ) -> anyhow::Result<Instance> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let url = format!("http://127.0.0.1:{port}");
        let log = dir.join(format!("{name}.log"));
        // A profiler to run each instance under, e.g. `heaptrack` (for finding out
        // where an instance's memory goes): its words, then this binary.
        let wrap = std::env::var("MALIPO_BENCH_WRAP").unwrap_or_default();
        let mut words = wrap.split_whitespace();
        let mut command = match words.next() {
            Some(program) => {
                let mut c = Command::new(program);
                c.args(words).arg(std::env::current_exe()?);
                c
            }
            None => Command::new(std::env::current_exe()?),
        };
        let child = command
            .arg("serve")
            .env_remove("MALIPO_CONFIG")
            .env("MALIPO_DATABASE_URL", db)
            .env("MALIPO_MASTER_KEY", master_key)
            .env("MALIPO_LISTEN", format!("127.0.0.1:{port}"))
            .env("MALIPO_PUBLIC_URL", &url)
            .env("MALIPO_SITE_ROOT", dir)
            .env("MALIPO_SANDBOX_MERCHANT_LISTEN", "off")
            .env("MALIPO_SANDBOX_CARD_LISTEN", "off")
            .env("MALIPO_SANDBOX_PAYPAL_LISTEN", "off")
            .env("MALIPO_WEBHOOKS_ALLOW_HOSTS", "127.0.0.1")
            .env("MALIPO_LOG", "warn")
            .envs(extra.iter().map(|(k, v)| (*k, v.as_str())))
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log)?)
            .spawn()
            .context("starting `malipo serve`")?;
        let pid = child.id();
        let mut instance = Instance {
            url,
            child,
            pid,
            log,
        };
        let client = reqwest::Client::new();
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(r) = client.get(format!("{}/readyz", instance.url)).send().await
                && r.status().is_success()
            {
                if !wrap.is_empty() {
                    let exe = std::env::current_exe()?;
                    let name = exe.file_name().and_then(|n| n.to_str()).unwrap_or("malipo");
                    // The kernel keeps 15 characters of a command's name.
                    let name: String = name.chars().take(15).collect();
                    instance.pid = descendant(pid, &name).unwrap_or(pid);
                }
                return Ok(instance);
            }
            if Instant::now() > deadline {
                anyhow::bail!(
                    "`malipo serve` did not get ready in 60 s; its log: {}",
                    std::fs::read_to_string(&instance.log).unwrap_or_default()
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    fn pid(&self) -> u32 {
        self.pid
    }
}

/// A `/proc/{pid}/status` figure in kB (`VmRSS`, `VmHWM`).
fn status_kb(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

fn mb(kb: u64) -> f64 {
    kb as f64 / 1024.0
}

/// CPU seconds (user + system) a process has used, from `/proc/{pid}/stat` (in clock
/// ticks of 1/100 s, which Linux fixes for this file).
fn cpu_secs(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name, which may hold spaces, in parentheses.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the whole line: 12 and 13 after ')'.
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
    };
    (ticks(11) + ticks(12)) as f64 / 100.0
}

/// CPU seconds used by every PostgreSQL server process on this machine (0 when it runs
/// elsewhere).
fn postgres_cpu_secs() -> f64 {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return 0.0;
    };
    entries
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/comm"))
                .is_ok_and(|c| c.trim() == "postgres")
        })
        .map(cpu_secs)
        .sum()
}

/// The databases this run made, to drop at its end.
static MADE: Mutex<Vec<String>> = Mutex::new(Vec::new());

/// A new database on the PostgreSQL server at `admin`; returns its URL.
pub(super) async fn new_database(admin: &str, what: &str) -> anyhow::Result<String> {
    let (name, url) =
        crate::store::create_postgres_database(admin, &format!("malipo_bench_{what}"))
            .await
            .context("creating a database on the PostgreSQL server given with --postgres")?;
    MADE.lock().unwrap_or_else(|p| p.into_inner()).push(name);
    Ok(url)
}

/// Drops every database [`new_database`] made on the server at `admin` (connections
/// still open to them, such as the in-process server of the ratios, are cut).
pub(super) async fn drop_databases(admin: &str) {
    use sqlx::Connection;
    let Ok(mut conn) = sqlx::AnyConnection::connect(admin).await else {
        return;
    };
    let names = std::mem::take(&mut *MADE.lock().unwrap_or_else(|p| p.into_inner()));
    for name in names {
        let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
            .execute(&mut conn)
            .await;
    }
    let _ = conn.close().await;
}

/// A migrated store on `db` with `master_key`, and a merchant in it.
async fn prepared(
    db: &str,
    master_key: &str,
) -> anyhow::Result<(Store, merchants::CreatedMerchant)> {
    let mut store = Store::connect(&SecretString::from(db.to_owned()), 8).await?;
    store.migrate().await?;
    store
        .set_master_key(MasterKey::from_hex(master_key)?)
        .await?;
    let created = merchants::create(&store, "Bench Lodge").await?;
    Ok((store, created))
}

/// One pending payment, written as the API and a push would write it.
pub(super) struct Pending {
    pub(super) session: String,
    pub(super) attempt: String,
    pub(super) token: String,
    /// What it asks for, and from whom.
    pub(super) amount: crate::domain::Money,
    pub(super) payer: &'static str,
    /// The operator's success callback for it ([`paid_callback`]).
    pub(super) callback: Value,
    /// Its number in the run (the callback's request id is `bench-{rail}-{n}`).
    n: usize,
}

/// Writes one pending payment numbered `n` on `rail`, as the API and a push would write
/// it: a session, its attempt with a callback token, and the operator's request id
/// `bench-{rail}-{n}` (what [`paid_callback`] answers for). `None` for a rail without
/// a callback.
pub(super) async fn pending_payment(
    store: &Store,
    checkout: &CheckoutService,
    merchant_id: &MerchantId,
    rail: RailId,
    n: usize,
    reference: String,
) -> anyhow::Result<Option<Pending>> {
    let Some((amount, payer, callback)) = paid_callback(rail, n)? else {
        return Ok(None);
    };
    let session = checkout
        .create(CreateSession {
            merchant_id: merchant_id.clone(),
            mode: Mode::Test,
            amount,
            reference,
            description: "Ngorongoro crater day trip".into(),
            success_url: "https://lodge.example/paid".into(),
            cancel_url: "https://lodge.example/no".into(),
            customer_phone: None,
            customer_email: None,
            metadata: Default::default(),
            expires_in_secs: 3600,
            payment_method_types: None,
            travel: None,
        })
        .await?;
    let token = format!("bench-token-{n}-{}", crate::domain::ids::random_base62(16));
    let attempt = store
        .insert_attempt(
            &NewAttempt {
                credit_minor: None,
                session_id: session.id.clone(),
                quote: None,
                rail,
                amount,
                payer: Some(payer.into()),
                callback_token_hash: Some(hash_token(&token)),
                next_poll_at: None,
            },
            now_ms(),
        )
        .await?
        .context("a new session refused its first attempt")?;
    store
        .set_operator_request_id(&attempt.id, &format!("bench-{rail}-{n}"), now_ms())
        .await?;
    Ok(Some(Pending {
        session: session.id.to_string(),
        attempt: attempt.id.to_string(),
        token,
        amount,
        payer,
        callback,
        n,
    }))
}

/// Writes `count` pending payments numbered from `from`, eight at a time.
async fn make_pending(
    store: &Store,
    public_url: &str,
    merchant: &merchants::CreatedMerchant,
    from: usize,
    count: usize,
) -> anyhow::Result<Vec<Pending>> {
    let next = Arc::new(AtomicUsize::new(from));
    let made = Arc::new(Mutex::new(Vec::with_capacity(count)));
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let (store, next, made) = (store.clone(), next.clone(), made.clone());
        let checkout = CheckoutService::new(store.clone(), public_url.to_owned());
        let merchant_id = merchant.merchant.id.clone();
        tasks.push(tokio::spawn(async move {
            loop {
                let n = next.fetch_add(1, Ordering::Relaxed);
                if n >= from + count {
                    return anyhow::Ok(());
                }
                let pending = pending_payment(
                    &store,
                    &checkout,
                    &merchant_id,
                    RailId::Mpesa,
                    n,
                    format!("P-{n}"),
                )
                .await?
                .context("M-PESA has a callback")?;
                made.lock().unwrap_or_else(|p| p.into_inner()).push(pending);
            }
        }));
    }
    for t in tasks {
        t.await??;
    }
    let mut made = std::mem::take(&mut *made.lock().unwrap_or_else(|p| p.into_inner()));
    made.sort_by_key(|p| p.n);
    Ok(made)
}

/// Posts each payment's success callback (Daraja's), `concurrency` at a time, spread
/// over `instances` in turn — as fast as they are answered, or with `rate`, one every
/// 1/rate s (as shoppers approving prompts would send them); returns when each was sent
/// and how many were refused.
async fn settle(
    client: &reqwest::Client,
    instances: &[String],
    payments: &[Pending],
    concurrency: usize,
    rate: Option<f64>,
) -> anyhow::Result<(Vec<Instant>, usize)> {
    let start = tokio::time::Instant::now();
    let payments: Arc<Vec<(String, Value)>> = Arc::new(
        payments
            .iter()
            .enumerate()
            .map(|(i, p)| {
                let base = &instances[i % instances.len()];
                (
                    format!("{base}/callbacks/mpesa/{}/{}", p.attempt, p.token),
                    p.callback.clone(),
                )
            })
            .collect(),
    );
    let sent = Arc::new(Mutex::new(vec![Instant::now(); payments.len()]));
    let next = Arc::new(AtomicUsize::new(0));
    let refused = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for _ in 0..concurrency {
        let (client, payments, sent, next, refused) = (
            client.clone(),
            payments.clone(),
            sent.clone(),
            next.clone(),
            refused.clone(),
        );
        tasks.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some((url, body)) = payments.get(i) else {
                    return;
                };
                if let Some(rate) = rate {
                    tokio::time::sleep_until(start + Duration::from_secs_f64(i as f64 / rate))
                        .await;
                }
                sent.lock().unwrap_or_else(|p| p.into_inner())[i] = Instant::now();
                let ok =
                    matches!(client.post(url).json(body).send().await, Ok(r) if r.status() == 200);
                if !ok {
                    refused.fetch_add(1, Ordering::Relaxed);
                }
            }
        }));
    }
    for t in tasks {
        let _ = t.await;
    }
    let sent = std::mem::take(&mut *sent.lock().unwrap_or_else(|p| p.into_inner()));
    Ok((sent, refused.load(Ordering::Relaxed)))
}

/// Phase 4: `opts.pending` payments pending at once on one instance (SQLite, the
/// single-instance default), each followed by an open `/pay/{id}/events` stream as a
/// waiting page would; then every one settled by its operator's callback.
pub(super) async fn pending(opts: &BenchOptions, dir: &Path) -> anyhow::Result<()> {
    let n = opts.pending;
    let db = format!("sqlite://{}/pending.db", dir.display());
    let (_, master_key) = MasterKey::generate()?;
    let (store, merchant) = prepared(&db, &master_key).await?;
    let instance = Instance::start(
        &db,
        &master_key,
        dir,
        "pending",
        &[
            // Every stream comes from 127.0.0.1 here.
            ("MALIPO_LIMITS_STREAMS_PER_IP", n.to_string()),
            ("MALIPO_LIMITS_STREAMS_TOTAL", n.max(10_000).to_string()),
            (
                "MALIPO_MAX_CONNECTIONS",
                (n.max(10_000) * 3 / 2).to_string(),
            ),
        ],
    )
    .await?;
    let pid = instance.pid();
    let made = Instant::now();
    let payments = make_pending(&store, &instance.url, &merchant, 0, n).await?;
    println!(
        "— {n} payments pending at once on one instance (its own process, SQLite) —\n\
         written {n} sessions with a pending M-PESA attempt each in {:.1} s",
        made.elapsed().as_secs_f64()
    );
    let idle_kb = status_kb(pid, "VmRSS");

    // One page-like client per payment: connects, sees "waiting", then waits for "paid".
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()?;
    let (ready_tx, mut ready_rx) = tokio::sync::mpsc::unbounded_channel::<()>();
    let opening = Arc::new(tokio::sync::Semaphore::new(64));
    let opened = Instant::now();
    let mut pages = Vec::with_capacity(n);
    for p in &payments {
        let (client, ready, opening) = (client.clone(), ready_tx.clone(), opening.clone());
        let url = format!("{}/pay/{}/events", instance.url, p.session);
        pages.push(tokio::spawn(async move {
            let permit = opening.acquire_owned().await.ok()?;
            let mut res = client.get(&url).send().await.ok()?;
            let mut buf = String::new();
            super::read_until(
                &mut res,
                &mut buf,
                "data: waiting",
                Duration::from_secs(120),
            )
            .await
            .ok()?;
            drop(permit);
            let _ = ready.send(());
            super::read_until(&mut res, &mut buf, "data: paid", Duration::from_secs(600))
                .await
                .ok()?;
            Some(Instant::now())
        }));
    }
    drop(ready_tx);
    let mut connected = 0;
    while connected < n {
        match tokio::time::timeout(Duration::from_secs(120), ready_rx.recv()).await {
            Ok(Some(())) => connected += 1,
            _ => anyhow::bail!(
                "only {connected} of {n} event streams opened (see {})",
                instance.log.display()
            ),
        }
    }
    println!(
        "opened {n} event streams in {:.1} s, each showing \"waiting\"",
        opened.elapsed().as_secs_f64()
    );
    // A moment for the streams to settle into waiting, then the figure that matters.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let waiting_kb = status_kb(pid, "VmRSS");
    println!(
        "resident memory with {n} pending payments and {n} open streams: {:.0} MB (goal ≤ 200 MB; \
         {:.0} MB of it the heap, {:.0} MB mapped files; {:.0} MB with none open, so {:.1} kB per \
         waiting page)",
        mb(waiting_kb),
        mb(status_kb(pid, "RssAnon")),
        mb(status_kb(pid, "RssFile")),
        mb(idle_kb),
        waiting_kb.saturating_sub(idle_kb) as f64 / n as f64
    );

    let cpu_before = cpu_secs(pid);
    let started = Instant::now();
    let callbacks = reqwest::Client::new();
    let (sent, refused) = settle(
        &callbacks,
        std::slice::from_ref(&instance.url),
        &payments,
        64,
        Some(opts.settle_rate),
    )
    .await?;
    let mut latencies = Vec::with_capacity(n);
    let mut missing = 0;
    for (i, page) in pages.into_iter().enumerate() {
        match page.await.ok().flatten() {
            Some(at) => latencies.push(at.duration_since(sent[i]).as_secs_f64() * 1000.0),
            None => missing += 1,
        }
    }
    let took = started.elapsed().as_secs_f64();
    let cpu = cpu_secs(pid) - cpu_before;
    latencies.sort_by(|a, b| a.total_cmp(b));
    println!(
        "settled {} by callback, sent {:.0}/s, in {took:.1} s, {:.0}/s; {refused} refused, {missing} \
         pages never saw paid; server CPU {cpu:.1} s ({:.0} % of one core, {:.2} ms per payment); \
         peak resident memory {:.0} MB",
        latencies.len(),
        opts.settle_rate,
        latencies.len() as f64 / took,
        100.0 * cpu / took,
        1000.0 * cpu / n as f64,
        mb(status_kb(pid, "VmHWM")),
    );
    println!(
        "callback → page shows paid, {n} waiting: p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        percentile(&latencies, 50.0),
        percentile(&latencies, 99.0),
        latencies.last().copied().unwrap_or(f64::NAN)
    );
    Ok(())
}

/// Transaction ids the server has handed out so far: one per transaction that wrote
/// something, read-only ones take none (so the difference over a phase is its write
/// transactions, the ones a disk must flush). Exact, unlike the statistics views, which
/// lag by seconds; server-wide, so nothing else should write meanwhile.
async fn writes_so_far(admin: &sqlx::AnyPool) -> anyhow::Result<i64> {
    use sqlx::Row;
    let row = sqlx::query("SELECT CAST(pg_snapshot_xmax(pg_current_snapshot()) AS TEXT) AS n")
        .fetch_one(admin)
        .await?;
    Ok(row.try_get::<String, _>("n")?.parse()?)
}

/// Sessions created through the API of `instances` in turn, for `opts.seconds`, with the
/// instances' CPU and the database's.
async fn create_load(
    opts: &BenchOptions,
    client: &reqwest::Client,
    instances: &[&Instance],
    key: &str,
) -> (super::Load, f64, f64) {
    let urls: Arc<Vec<String>> = Arc::new(
        instances
            .iter()
            .map(|i| format!("{}/v1/checkout/sessions", i.url))
            .collect(),
    );
    let cpu = || instances.iter().map(|i| cpu_secs(i.pid())).sum::<f64>();
    let (ours, pg) = (cpu(), postgres_cpu_secs());
    let (c, k) = (client.clone(), key.to_owned());
    let load = load(opts.seconds, opts.concurrency, move |i| {
        let (c, k, urls) = (c.clone(), k.clone(), urls.clone());
        async move {
            let url = &urls[i as usize % urls.len()];
            matches!(c.post(url).bearer_auth(&k).json(&session_body(i)).send().await, Ok(r) if r.status() == 201)
        }
    })
    .await;
    (load, cpu() - ours, postgres_cpu_secs() - pg)
}

/// Phase 5 after the ratios: PostgreSQL's write ceiling on this machine, what one
/// payment costs the database, and one instance against two.
pub(super) async fn postgres(opts: &BenchOptions, admin: &str, dir: &Path) -> anyhow::Result<()> {
    use sqlx::Row;
    let admin_pool = sqlx::any::AnyPoolOptions::new()
        .max_connections(2)
        .connect(admin)
        .await?;
    let setting = async |name: &str| -> String {
        sqlx::query(&format!("SHOW {name}"))
            .fetch_one(&admin_pool)
            .await
            .ok()
            .and_then(|r| r.try_get::<String, _>(0).ok())
            .unwrap_or_else(|| "?".into())
    };
    println!(
        "PostgreSQL settings: fsync {}, synchronous_commit {}, shared_buffers {}",
        setting("fsync").await,
        setting("synchronous_commit").await,
        setting("shared_buffers").await
    );

    // The write ceiling: single-row INSERT transactions from 32 connections, no HTTP.
    let ceiling_db = new_database(admin, "ceiling").await?;
    let pool = sqlx::any::AnyPoolOptions::new()
        .max_connections(32)
        .connect(&ceiling_db)
        .await?;
    sqlx::query(
        "CREATE TABLE writes (id BIGSERIAL PRIMARY KEY, at BIGINT NOT NULL, body TEXT NOT NULL)",
    )
    .execute(&pool)
    .await?;
    let (p, pg_cpu) = (pool.clone(), postgres_cpu_secs());
    let writes = load(opts.seconds, 32, move |i| {
        let p = p.clone();
        async move {
            sqlx::query("INSERT INTO writes (at, body) VALUES ($1, $2)")
                .bind(i as i64)
                .bind("a payment's worth of text, about as long as a session row's")
                .execute(&p)
                .await
                .is_ok()
        }
    })
    .await;
    let pg_cpu = postgres_cpu_secs() - pg_cpu;
    pool.close().await;
    println!(
        "PostgreSQL write ceiling here: {:.0} single-row INSERT commits/s from 32 connections \
         ({} errors; PostgreSQL CPU {:.0} µs per commit)",
        writes.per_sec,
        writes.errors,
        1e6 * pg_cpu / writes.ok.max(1) as f64
    );

    // Instances: one, then two, on one database.
    let fleet_db = new_database(admin, "fleet").await?;
    let (_, master_key) = MasterKey::generate()?;
    let (store, merchant) = prepared(&fleet_db, &master_key).await?;
    let key = secrecy::ExposeSecret::expose_secret(&merchant.test_secret_key).to_owned();
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(opts.concurrency)
        .build()?;
    let one = Instance::start(&fleet_db, &master_key, dir, "pg-a", &[]).await?;

    let before = writes_so_far(&admin_pool).await?;
    let (single, cpu1, pg1) = create_load(opts, &client, &[&one], &key).await;
    let per_create = (writes_so_far(&admin_pool).await? - before) as f64 / single.ok.max(1) as f64;
    println!(
        "one instance on PostgreSQL: {:.0} sessions created/s ({} errors); instance CPU {:.0} µs and \
         PostgreSQL CPU {:.0} µs per session; {per_create:.1} write transactions per session",
        single.per_sec,
        single.errors,
        1e6 * cpu1 / single.ok.max(1) as f64,
        1e6 * pg1 / single.ok.max(1) as f64,
    );

    // Settling: callbacks for pending payments (written beforehand, outside the figures).
    let batch = 2_000;
    let pending = make_pending(&store, &one.url, &merchant, 0, batch).await?;
    let before = writes_so_far(&admin_pool).await?;
    let (cpu_a, pg_a) = (cpu_secs(one.pid()), postgres_cpu_secs());
    let started = Instant::now();
    let (_, refused) = settle(
        &client,
        std::slice::from_ref(&one.url),
        &pending,
        opts.concurrency,
        None,
    )
    .await?;
    let settle1 = (batch - refused) as f64 / started.elapsed().as_secs_f64();
    let (cpu_a, pg_a) = (cpu_secs(one.pid()) - cpu_a, postgres_cpu_secs() - pg_a);

    // The outbox's work after the callbacks were answered belongs to them too.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let per_settle = (writes_so_far(&admin_pool).await? - before) as f64 / batch as f64;
    println!(
        "one instance on PostgreSQL: {settle1:.0} payments settled/s by callback ({refused} refused); \
         instance CPU {:.0} µs and PostgreSQL CPU {:.0} µs per payment; {per_settle:.1} write \
         transactions per settled payment (webhook work included)",
        1e6 * cpu_a / batch as f64,
        1e6 * pg_a / batch as f64,
    );

    let two = Instance::start(&fleet_db, &master_key, dir, "pg-b", &[]).await?;
    let (double, _, _) = create_load(opts, &client, &[&one, &two], &key).await;
    let pending = make_pending(&store, &one.url, &merchant, batch, batch).await?;
    let started = Instant::now();
    let (_, refused) = settle(
        &client,
        &[one.url.clone(), two.url.clone()],
        &pending,
        opts.concurrency,
        None,
    )
    .await?;
    let settle2 = (batch - refused) as f64 / started.elapsed().as_secs_f64();
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    println!(
        "two instances on PostgreSQL: {:.0} sessions created/s (×{:.2} of one), {settle2:.0} payments \
         settled/s (×{:.2}; {refused} refused) — on {cores} cores shared by the clients, PostgreSQL \
         and both instances, so this ratio is the machine's ceiling, not the instances'",
        double.per_sec,
        double.per_sec / single.per_sec,
        settle2 / settle1,
    );
    Ok(())
}
