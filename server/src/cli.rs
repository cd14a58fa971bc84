//! The `malipo` command line.

use anyhow::Context;
use clap::{Parser, Subcommand};
use secrecy::ExposeSecret;
use serde_json::json;
use std::path::PathBuf;

use crate::{
    checkout::{CheckoutService, CreateSession, MAX_EXPIRES_IN},
    config::{Config, LogFormat},
    demo,
    domain::{ApiKeyKind, MerchantId, Mode, Money, WebhookEndpointId, money::Currency},
    merchants,
    resources::WebhookEndpointObject,
    startup::Application,
    store::Store,
    telemetry,
};

/// Malipo: hosted checkout pages for mobile money, cards and PayPal.
#[derive(Debug, Parser)]
#[command(name = "malipo", version)]
pub struct Cli {
    /// A TOML config file (also `MALIPO_CONFIG`). `MALIPO_*` variables override it.
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Log line format on stderr: human or json (overrides `MALIPO_LOG_FORMAT`).
    #[arg(long, global = true, value_name = "FORMAT", value_parser = ["human", "json"])]
    pub log_format: Option<String>,
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve the API and hosted pages (the default).
    Serve {
        /// Create (or reuse) the "Demo Safaris" merchant and a fresh session, and print
        /// its checkout link.
        #[arg(long)]
        seed_demo: bool,
    },
    /// Apply database migrations and exit.
    Migrate,
    /// Print the OpenAPI 3.1 document of the merchant API (as served at /v1/openapi.json).
    Openapi,
    /// Manage merchants.
    Merchant {
        #[command(subcommand)]
        command: MerchantCommand,
    },
    /// Measure throughput against a bare axum baseline, and callback → paid latency
    /// (prints figures; starts its own server on a temporary SQLite database).
    Bench {
        /// Seconds per throughput phase.
        #[arg(long, default_value_t = 5)]
        seconds: u64,
        /// Concurrent clients.
        #[arg(long, default_value_t = 16)]
        concurrency: usize,
        /// Payments timed for the callback → paid latency.
        #[arg(long, default_value_t = 200)]
        payments: usize,
        /// Payments held pending at once on one instance, each with an open event
        /// stream, then settled by callbacks (0: skip).
        #[arg(long, default_value_t = 10_000)]
        pending: usize,
        /// Callbacks a second that settle the pending payments (shoppers approving).
        #[arg(long, default_value_t = 200.0, value_parser = positive_rate)]
        settle_rate: f64,
        /// Also measure on this PostgreSQL server (a URL whose user may create
        /// databases; `scripts/bench` starts a throwaway one).
        #[arg(long, env = "MALIPO_BENCH_POSTGRES_URL", hide_env_values = true)]
        postgres: Option<String>,
    },
    /// Manage checkout sessions.
    Session {
        #[command(subcommand)]
        command: SessionCommand,
    },
    /// Manage a merchant's API keys (test and live).
    Key {
        #[command(subcommand)]
        command: KeyCommand,
    },
    /// Manage a merchant's webhook endpoints.
    Webhook {
        #[command(subcommand)]
        command: WebhookCommand,
    },
    /// Manage a merchant's exchange rates (they win over any rates provider), and
    /// whether its sessions may be paid in another currency at all.
    Rates {
        #[command(subcommand)]
        command: RatesCommand,
    },
    /// Print the payment page's script inventory (PCI DSS 6.4.3): every script it may
    /// run, with its hash where Malipo ships it and why it is there. `scripts/build`
    /// writes it to the site, where the server publishes it at `/script-inventory.json`.
    ScriptInventory {
        /// The built site (`target/site`).
        #[arg(long, value_name = "DIR")]
        site: Option<PathBuf>,
    },
    /// Fetch the payment page as a browser would and report any change in its security
    /// headers or scripts (PCI DSS 11.6.1): against the script inventory, and against the
    /// baseline an earlier check recorded. Exit 1 on any change: run it from cron.
    TamperCheck {
        /// A payment page, `https://pay.example/pay/cs_…` (any open session).
        url: String,
        /// The script inventory (a file, or the server's `/script-inventory.json` when
        /// omitted).
        #[arg(long, value_name = "FILE")]
        inventory: Option<PathBuf>,
        /// Where the baseline is kept: compared with when it exists, written when
        /// `--record` is given (or it does not exist yet).
        #[arg(long, value_name = "FILE")]
        baseline: PathBuf,
        /// Record what is seen now as the new baseline (after a deliberate change).
        #[arg(long)]
        record: bool,
    },
    /// List the payments a human must look at, newest first: outcomes still unknown,
    /// and duplicate payments to refund; or mark one resolved.
    Reconcile {
        #[arg(long)]
        json: bool,
        /// Also list the ones already resolved, with what was found.
        #[arg(long)]
        all: bool,
        /// Mark this payment (`pa_…`) resolved; `--note` says what you found (it is
        /// kept, and the payment leaves the list).
        #[arg(long, value_name = "PAYMENT", requires = "note")]
        resolve: Option<String>,
        /// What you found, e.g. "not on the M-PESA statement" or "refunded, R-123".
        #[arg(long, value_name = "TEXT")]
        note: Option<String>,
        /// Check this Pay Bill payment (its M-PESA receipt) with M-PESA again, after it
        /// was left `refused` or `unverified` (e.g. once the initiator's credentials are
        /// fixed): the running server asks within a minute, for another day.
        #[arg(long, value_name = "RECEIPT", conflicts_with_all = ["resolve", "note"])]
        recheck: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
pub enum KeyCommand {
    /// Create a key. A secret key is printed once and stored only as a hash.
    Create {
        /// The merchant's id (`mer_…`).
        #[arg(long)]
        merchant: String,
        /// `test` or `live`.
        #[arg(long, value_parser = ["test", "live"])]
        mode: String,
        /// `secret` (server side) or `publishable` (safe in a browser).
        #[arg(long, value_parser = ["secret", "publishable"], default_value = "secret")]
        kind: String,
        #[arg(long)]
        json: bool,
    },
    /// List a merchant's keys, masked.
    List {
        #[arg(long)]
        merchant: String,
        #[arg(long)]
        json: bool,
    },
    /// Revoke a key by its id (`key_…`, from `key list`).
    Revoke { id: String },
}

#[derive(Debug, Subcommand)]
pub enum WebhookCommand {
    /// Register an endpoint; its signing secret is printed once.
    Create {
        #[arg(long)]
        merchant: String,
        #[arg(long, value_parser = ["test", "live"], default_value = "test")]
        mode: String,
        #[arg(long)]
        url: String,
        /// Comma-separated event types, or `*` for all.
        #[arg(long, default_value = "*")]
        events: String,
        #[arg(long, default_value = "")]
        description: String,
        #[arg(long)]
        json: bool,
    },
    /// List a merchant's endpoints in one mode.
    List {
        #[arg(long)]
        merchant: String,
        #[arg(long, value_parser = ["test", "live"], default_value = "test")]
        mode: String,
        #[arg(long)]
        json: bool,
    },
    /// Delete an endpoint (`we_…`); its pending deliveries are dropped.
    Delete { id: String },
    /// Give an endpoint a new secret; the old one keeps signing for the overlap.
    Rotate {
        id: String,
        /// Seconds the old secret keeps signing (0 to 604800).
        #[arg(long, default_value_t = crate::webhooks::DEFAULT_ROTATION_OVERLAP_SECS)]
        overlap_secs: i64,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum RatesCommand {
    /// Set one rate: `malipo rates set --merchant mer_… USD KES 129.00` means one USD
    /// buys 129.00 KES. It also serves the other way round (KES prices paid in USD).
    Set {
        #[arg(long)]
        merchant: String,
        #[arg(long, value_parser = ["test", "live"], default_value = "test")]
        mode: String,
        /// The currency one unit of which is priced (`USD`).
        base: String,
        /// The currency it is priced in (`KES`).
        quote: String,
        /// How much `quote` one `base` buys, as a decimal (`129.00`).
        rate: String,
    },
    /// Set every rate in a CSV file of `base,quote,rate` lines (a header line and `#`
    /// comments are skipped), all or nothing.
    Import {
        #[arg(long)]
        merchant: String,
        #[arg(long, value_parser = ["test", "live"], default_value = "test")]
        mode: String,
        file: PathBuf,
    },
    /// List the merchant's rates in one mode.
    List {
        #[arg(long)]
        merchant: String,
        #[arg(long, value_parser = ["test", "live"], default_value = "test")]
        mode: String,
        #[arg(long)]
        json: bool,
    },
    /// Remove one rate.
    Remove {
        #[arg(long)]
        merchant: String,
        #[arg(long, value_parser = ["test", "live"], default_value = "test")]
        mode: String,
        base: String,
        quote: String,
    },
    /// Switch paying in another currency on or off for the merchant's sessions in one
    /// mode (off: only rails that take the session's own currency are offered).
    Conversion {
        #[arg(long)]
        merchant: String,
        #[arg(long, value_parser = ["test", "live"], default_value = "test")]
        mode: String,
        #[arg(value_parser = ["on", "off"])]
        state: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum MerchantCommand {
    /// Create a merchant with test keys. The secret key is shown once and stored only
    /// as a hash.
    Create {
        #[arg(long)]
        name: String,
        /// Print `{"id","name","test_secret_key","test_publishable_key"}`.
        #[arg(long)]
        json: bool,
    },
    /// Set the origins allowed to embed the merchant's checkout (replaces the list; none
    /// means nobody may frame it).
    EmbedOrigins {
        #[arg(long)]
        merchant: String,
        /// Which mode's checkouts the list is for.
        #[arg(long, value_parser = ["test", "live"], default_value = "test")]
        mode: String,
        /// `https://host[:port]` (or `http://localhost:PORT`), repeatable.
        origins: Vec<String>,
    },
}

#[derive(Debug, Subcommand)]
pub enum SessionCommand {
    /// Open a test-mode checkout session for a merchant and print its link.
    Create {
        /// The merchant's id (`mer_…`).
        #[arg(long)]
        merchant: String,
        /// Amount in minor units (KES 1,500 is 150000).
        #[arg(long)]
        amount: i64,
        /// ISO 4217 currency code.
        #[arg(long, default_value = "KES")]
        currency: String,
        #[arg(long)]
        description: String,
        #[arg(long, default_value = "")]
        reference: String,
        #[arg(long, default_value = "https://merchant.example/paid")]
        success_url: String,
        #[arg(long, default_value = "https://merchant.example/cancelled")]
        cancel_url: String,
        /// Seconds until the session expires (1 to 86400).
        #[arg(long, default_value_t = crate::checkout::DEFAULT_EXPIRES_IN)]
        expires_in: i64,
        #[arg(long)]
        json: bool,
    },
}

/// Parses the command line and runs it.
pub async fn run() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let mut config = Config::load(cli.config.as_deref())?;
    match cli.log_format.as_deref() {
        Some("json") => config.log_format = LogFormat::Json,
        Some("human") => config.log_format = LogFormat::Human,
        _ => {}
    }
    telemetry::init(config.log_format, &config.log);
    match cli.command.unwrap_or(Command::Serve { seed_demo: false }) {
        Command::Serve { seed_demo } => serve(config, seed_demo).await,
        Command::Bench {
            seconds,
            concurrency,
            payments,
            pending,
            settle_rate,
            postgres,
        } => {
            crate::bench::run(crate::bench::BenchOptions {
                seconds,
                concurrency,
                payments,
                pending,
                settle_rate,
                postgres,
            })
            .await
        }
        Command::ScriptInventory { site } => {
            let site = site.unwrap_or_else(|| config.site_root.clone());
            let inventory = crate::tamper::inventory(&site)
                .with_context(|| format!("reading the built site at {}", site.display()))?;
            println!("{}", serde_json::to_string_pretty(&inventory)?);
            Ok(())
        }
        Command::TamperCheck {
            url,
            inventory,
            baseline,
            record,
        } => tamper_check(&url, inventory.as_deref(), &baseline, record).await,
        Command::Openapi => {
            let doc = crate::api::openapi_document(&config.public_url);
            println!("{}", serde_json::to_string_pretty(&doc)?);
            Ok(())
        }
        Command::Migrate => {
            let store = connect(&config).await?;
            println!("migrations applied ({})", store.backend().as_str());
            Ok(())
        }
        Command::Reconcile {
            recheck: Some(receipt),
            ..
        } => {
            let receipt = receipt.trim().to_ascii_uppercase();
            if receipt.is_empty()
                || receipt.len() > 20
                || !receipt.bytes().all(|b| b.is_ascii_alphanumeric())
            {
                anyhow::bail!("--recheck takes an M-PESA receipt, e.g. QLA4B5C6D7");
            }
            let store = connect(&config).await?;
            let done = store
                .recheck_paybill(&receipt, crate::time::now_ms())
                .await?;
            store.close().await;
            if !done {
                anyhow::bail!(
                    "{receipt} is not a Pay Bill payment left refused or unverified for a session"
                );
            }
            println!("{receipt} will be checked with M-PESA again");
            Ok(())
        }
        Command::Reconcile {
            json,
            all,
            resolve: Some(payment),
            note,
            ..
        } => {
            let id = crate::domain::AttemptId::parse(&payment)
                .with_context(|| format!("{payment:?} is not a payment id (pa_…)"))?;
            let note = note.unwrap_or_default();
            let note = note.trim();
            if note.is_empty() || note.chars().count() > 500 || note.chars().any(char::is_control) {
                anyhow::bail!("--note must be 1 to 500 characters saying what you found");
            }
            let _ = (json, all);
            let store = connect(&config).await?;
            let done = store
                .resolve_reconciliation(&id, note, crate::time::now_ms())
                .await?;
            store.close().await;
            if !done {
                anyhow::bail!(
                    "{payment} is not waiting for reconciliation (unknown outcome or duplicate), \
                     or was resolved already"
                );
            }
            println!("{payment} resolved");
            Ok(())
        }
        Command::Reconcile {
            json,
            all,
            resolve: None,
            ..
        } => {
            let store = connect(&config).await?;
            let attempts = store.attempts_to_reconcile(all, 1_000).await?;
            let unmatched = store.unmatched_paybill(1_000).await?;
            store.close().await;
            let mut rows: Vec<serde_json::Value> = attempts
                .iter()
                .map(|(a, done)| {
                    let why = if a.duplicate {
                        "duplicate"
                    } else if a.overpaid_minor.is_some() {
                        "overpaid"
                    } else if a.status == crate::store::AttemptStatus::Succeeded {
                        "part_of_expired"
                    } else {
                        "unknown"
                    };
                    serde_json::json!({
                        "payment": a.id.as_str(),
                        "checkout_session": a.session_id.as_str(),
                        "why": why,
                        "overpaid": a.overpaid_minor,
                        "rail": a.rail.as_str(),
                        "amount": a.amount.minor(),
                        "currency": a.amount.currency().code(),
                        "payer": a.payer.as_deref().map(crate::domain::phone::mask),
                        "receipt": a.operator_receipt,
                        "operator_request_id": a.operator_request_id,
                        "created": a.created_at / 1000,
                        "resolved": done.as_ref().map(|d| serde_json::json!({
                            "at": d.at / 1000, "note": d.note,
                        })),
                    })
                })
                .collect();
            // Pay Bill payments no session took: money in, nobody's yet.
            for (receipt, account, amount, currency, payer, at, status) in &unmatched {
                rows.push(serde_json::json!({
                    "payment": null,
                    "checkout_session": null,
                    "why": format!("paybill_{status}"),
                    "rail": "mpesa",
                    "amount": amount,
                    "currency": currency,
                    "payer": payer,
                    "receipt": receipt,
                    "account": account,
                    "created": at / 1000,
                    "resolved": null,
                }));
            }
            if json {
                println!("{}", serde_json::Value::from(rows));
            } else if rows.is_empty() {
                println!("nothing to reconcile");
            } else {
                for ((a, done), r) in attempts.iter().zip(&rows) {
                    println!(
                        "{}  {}  {:<9}  {}  {}  payer {}  receipt {}{}",
                        r["payment"].as_str().unwrap_or(""),
                        r["checkout_session"].as_str().unwrap_or(""),
                        r["why"].as_str().unwrap_or(""),
                        a.amount,
                        a.rail,
                        r["payer"].as_str().unwrap_or("-"),
                        a.operator_receipt.as_deref().unwrap_or("-"),
                        done.as_ref()
                            .map(|d| format!("  resolved: {}", d.note))
                            .unwrap_or_default(),
                    );
                }
                for (receipt, account, amount, currency, payer, _, status) in &unmatched {
                    println!(
                        "Pay Bill {receipt}  account {account:?}  {} {currency}  payer {}  ({status})",
                        amount,
                        payer.as_deref().unwrap_or("-"),
                    );
                }
            }
            Ok(())
        }
        Command::Merchant {
            command:
                MerchantCommand::EmbedOrigins {
                    merchant,
                    mode,
                    origins,
                },
        } => {
            let merchant = parse_merchant(&merchant)?;
            let mode = parse_mode(&mode)?;
            let parsed = origins
                .iter()
                .map(|o| {
                    crate::embed::parse_origin(o).with_context(|| {
                        format!(
                            "{o:?} is not an origin (https://host[:port], or http://localhost:PORT)"
                        )
                    })
                })
                .collect::<anyhow::Result<Vec<_>>>()?;
            anyhow::ensure!(
                parsed.len() <= crate::embed::MAX_ORIGINS,
                "at most 10 origins"
            );
            let store = connect(&config).await?;
            let found = store.set_embed_origins(&merchant, mode, &parsed).await?;
            store.close().await;
            anyhow::ensure!(found, "no merchant {merchant}");
            println!(
                "embed origins: {}",
                if parsed.is_empty() {
                    "none".into()
                } else {
                    parsed.join(" ")
                }
            );
            Ok(())
        }
        Command::Merchant {
            command: MerchantCommand::Create { name, json },
        } => {
            let store = connect(&config).await?;
            let created = merchants::create(&store, &name).await?;
            let key = created.test_secret_key.expose_secret();
            if json {
                println!(
                    "{}",
                    json!({
                        "id": created.merchant.id.as_str(),
                        "name": created.merchant.name,
                        "test_secret_key": key,
                        "test_publishable_key": created.test_publishable_key,
                    })
                );
            } else {
                println!("merchant         {}", created.merchant.id);
                println!("name             {}", created.merchant.name);
                println!("test secret key  {key}   (shown once: store it now)");
                println!("publishable key  {}", created.test_publishable_key);
            }
            store.close().await;
            Ok(())
        }
        Command::Key { command } => {
            let store = connect(&config).await?;
            let result = key_command(&store, command).await;
            store.close().await;
            result
        }
        Command::Webhook { command } => {
            let store = connect(&config).await?;
            let result = webhook_command(&store, command).await;
            store.close().await;
            result
        }
        Command::Rates { command } => {
            let store = connect(&config).await?;
            let result = rates_command(&store, command).await;
            store.close().await;
            result
        }
        Command::Session {
            command:
                SessionCommand::Create {
                    merchant,
                    amount,
                    currency,
                    description,
                    reference,
                    success_url,
                    cancel_url,
                    expires_in,
                    json,
                },
        } => {
            let merchant_id = parse_merchant(&merchant)?;
            let currency = Currency::parse(&currency)
                .context("--currency is not a supported ISO 4217 code")?;
            let amount = Money::new(amount, currency)?;
            anyhow::ensure!(
                (1..=MAX_EXPIRES_IN).contains(&expires_in),
                "--expires-in must be 1 to 86400"
            );
            let store = connect(&config).await?;
            anyhow::ensure!(
                store.merchant(&merchant_id).await?.is_some(),
                "no merchant {merchant_id}"
            );
            let checkout = CheckoutService::new(store.clone(), config.public_url.clone());
            let session = checkout
                .create(CreateSession {
                    merchant_id,
                    mode: Mode::Test,
                    amount,
                    reference,
                    description,
                    success_url,
                    cancel_url,
                    customer_phone: None,
                    customer_email: None,
                    metadata: Default::default(),
                    expires_in_secs: expires_in,
                    payment_method_types: None,
                    travel: None,
                })
                .await?;
            let url = checkout.page_url(&session.id);
            if json {
                println!(
                    "{}",
                    json!({ "id": session.id.as_str(), "url": url, "expires_at": session.expires_at })
                );
            } else {
                println!("{url}");
            }
            store.close().await;
            Ok(())
        }
    }
}

/// `malipo tamper-check`: prints one line per finding; fails on any change.
async fn tamper_check(
    url: &str,
    inventory: Option<&std::path::Path>,
    baseline: &std::path::Path,
    record: bool,
) -> anyhow::Result<()> {
    use crate::tamper::Finding;
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(std::time::Duration::from_secs(30))
        .build()?;
    let inventory: serde_json::Value = match inventory {
        Some(path) => serde_json::from_slice(
            &std::fs::read(path).with_context(|| format!("reading {}", path.display()))?,
        )?,
        None => {
            let at = url::Url::parse(url)?.join("/script-inventory.json")?;
            client
                .get(at)
                .send()
                .await?
                .error_for_status()
                .context("the server publishes no script inventory")?
                .json()
                .await?
        }
    };
    let seen = crate::tamper::observe(&client, url)
        .await
        .map_err(anyhow::Error::msg)?;
    let base: Option<crate::tamper::Observed> = match std::fs::read(baseline) {
        Ok(bytes) if !record => Some(serde_json::from_slice(&bytes).context("the baseline")?),
        _ => None,
    };
    let findings = crate::tamper::compare(&seen, &inventory, base.as_ref());
    let mut changed = 0;
    for f in &findings {
        match f {
            Finding::Same(what) => println!("ok       {what}"),
            Finding::Changed(what) => {
                changed += 1;
                println!("CHANGED  {what}");
            }
        }
    }
    if base.is_none() && changed == 0 {
        std::fs::write(baseline, serde_json::to_vec_pretty(&seen)?)
            .with_context(|| format!("writing {}", baseline.display()))?;
        println!(
            "baseline recorded: {} headers, {} scripts → {}",
            seen.headers.len(),
            seen.scripts.len(),
            baseline.display()
        );
    }
    anyhow::ensure!(changed == 0, "{changed} change(s) to the payment page");
    Ok(())
}

fn parse_merchant(id: &str) -> anyhow::Result<MerchantId> {
    MerchantId::parse(id).context("--merchant must be a mer_… id")
}

fn parse_mode(mode: &str) -> anyhow::Result<Mode> {
    Mode::parse(mode).context("--mode must be test or live")
}

/// A rate from the command line or a rates file: two currencies Malipo knows, not the
/// same, and a positive decimal.
fn parse_rate(base: &str, quote: &str, value: &str) -> anyhow::Result<crate::fx::Rate> {
    let currency = |c: &str| {
        Currency::parse(c).with_context(|| format!("{c:?} is not a currency Malipo knows"))
    };
    let (base, quote) = (currency(base)?, currency(quote)?);
    anyhow::ensure!(base != quote, "a rate is between two different currencies");
    let value = crate::fx::Decimal::parse(value).with_context(|| {
        format!("{value:?} is not a rate: a positive decimal such as 129.00 (at most 9 decimals)")
    })?;
    Ok(crate::fx::Rate { base, quote, value })
}

async fn rates_command(store: &Store, command: RatesCommand) -> anyhow::Result<()> {
    let merchant_of = async |merchant: &str| -> anyhow::Result<MerchantId> {
        let id = parse_merchant(merchant)?;
        anyhow::ensure!(store.merchant(&id).await?.is_some(), "no merchant {id}");
        Ok(id)
    };
    let now = crate::time::now_ms();
    match command {
        RatesCommand::Set {
            merchant,
            mode,
            base,
            quote,
            rate,
        } => {
            let rate = parse_rate(&base, &quote, &rate)?;
            let id = merchant_of(&merchant).await?;
            store.set_rate(&id, parse_mode(&mode)?, &rate, now).await?;
            println!("1 {} = {} {}", rate.base, rate.value, rate.quote);
        }
        RatesCommand::Import {
            merchant,
            mode,
            file,
        } => {
            let text = std::fs::read_to_string(&file)
                .with_context(|| format!("reading {}", file.display()))?;
            let mut rates = Vec::new();
            for (n, line) in text.lines().enumerate() {
                let line = line.trim();
                if line.is_empty() || line.starts_with('#') || (n == 0 && line.starts_with("base"))
                {
                    continue;
                }
                let fields: Vec<&str> = line.split(',').map(str::trim).collect();
                let [base, quote, value] = fields[..] else {
                    anyhow::bail!("{}:{}: expected base,quote,rate", file.display(), n + 1);
                };
                rates.push(
                    parse_rate(base, quote, value)
                        .with_context(|| format!("{}:{}", file.display(), n + 1))?,
                );
            }
            let id = merchant_of(&merchant).await?;
            let mode = parse_mode(&mode)?;
            store.set_rates(&id, mode, &rates, now).await?;
            println!("{} rates set", rates.len());
        }
        RatesCommand::List {
            merchant,
            mode,
            json,
        } => {
            let id = merchant_of(&merchant).await?;
            let mode = parse_mode(&mode)?;
            let rates = store.rates(&id, mode).await?;
            let conversion = store.conversion(&id, mode).await?;
            if json {
                let list: Vec<_> = rates
                    .iter()
                    .map(|r| {
                        json!({"pair": r.rate.pair(), "rate": r.rate.value.to_string(),
                               "updated_at": r.updated_at / 1000})
                    })
                    .collect();
                println!("{}", json!({"conversion": conversion, "rates": list}));
            } else {
                println!("conversion {}", if conversion { "on" } else { "off" });
                for r in rates {
                    println!("{}  {}", r.rate.pair(), r.rate.value);
                }
            }
        }
        RatesCommand::Remove {
            merchant,
            mode,
            base,
            quote,
        } => {
            let id = merchant_of(&merchant).await?;
            let currency = |c: &str| Currency::parse(c).context("not a currency Malipo knows");
            let removed = store
                .remove_rate(&id, parse_mode(&mode)?, currency(&base)?, currency(&quote)?)
                .await?;
            anyhow::ensure!(removed, "no {base}/{quote} rate");
            println!("removed {base}/{quote}");
        }
        RatesCommand::Conversion {
            merchant,
            mode,
            state,
        } => {
            let id = merchant_of(&merchant).await?;
            let on = state == "on";
            store
                .update_account(&id, parse_mode(&mode)?, None, None, Some(on))
                .await?;
            println!("conversion {state}");
        }
    }
    Ok(())
}

async fn key_command(store: &Store, command: KeyCommand) -> anyhow::Result<()> {
    match command {
        KeyCommand::Create {
            merchant,
            mode,
            kind,
            json,
        } => {
            let merchant = parse_merchant(&merchant)?;
            let kind = match kind.as_str() {
                "publishable" => ApiKeyKind::Publishable,
                _ => ApiKeyKind::Secret,
            };
            let (id, key) =
                merchants::create_key(store, &merchant, kind, parse_mode(&mode)?).await?;
            let token = key.token.expose_secret();
            if json {
                println!(
                    "{}",
                    json!({ "id": id.as_str(), "kind": kind.as_str(), "mode": key.mode.as_str(), "key": token })
                );
            } else {
                println!("key   {id}");
                match kind {
                    ApiKeyKind::Secret => println!("{token}   (shown once: store it now)"),
                    ApiKeyKind::Publishable => println!("{token}"),
                }
            }
            Ok(())
        }
        KeyCommand::List { merchant, json } => {
            let merchant = parse_merchant(&merchant)?;
            let keys = store.api_keys(&merchant).await?;
            if json {
                let list: Vec<_> = keys
                    .iter()
                    .map(|k| {
                        json!({
                            "id": k.id, "kind": k.kind.as_str(), "mode": k.mode.as_str(),
                            "masked": k.masked, "created": k.created_at / 1000,
                            "revoked": k.revoked_at.map(|t| t / 1000),
                        })
                    })
                    .collect();
                println!("{}", serde_json::Value::from(list));
            } else {
                for k in keys {
                    let state = if k.revoked_at.is_some() {
                        "revoked"
                    } else {
                        "active"
                    };
                    println!(
                        "{}  {:<11}  {:<4}  {:<7}  {}",
                        k.id,
                        k.kind.as_str(),
                        k.mode.as_str(),
                        state,
                        k.masked
                    );
                }
            }
            Ok(())
        }
        KeyCommand::Revoke { id } => {
            merchants::revoke_key(store, &id).await?;
            println!("revoked {id}");
            Ok(())
        }
    }
}

async fn webhook_command(store: &Store, command: WebhookCommand) -> anyhow::Result<()> {
    let now = crate::time::now_ms();
    match command {
        WebhookCommand::Create {
            merchant,
            mode,
            url,
            events,
            description,
            json,
        } => {
            let merchant = parse_merchant(&merchant)?;
            anyhow::ensure!(
                store.merchant(&merchant).await?.is_some(),
                "no merchant {merchant}"
            );
            let events: Vec<String> = events.split(',').map(str::to_owned).collect();
            let e = crate::webhooks::create_endpoint(
                store,
                &merchant,
                parse_mode(&mode)?,
                &url,
                &events,
                &description,
                now,
            )
            .await?;
            print_endpoint(&e, now, json);
            Ok(())
        }
        WebhookCommand::List {
            merchant,
            mode,
            json,
        } => {
            let merchant = parse_merchant(&merchant)?;
            let endpoints = store.endpoints(&merchant, parse_mode(&mode)?).await?;
            if json {
                let list: Vec<_> = endpoints
                    .iter()
                    .map(|e| WebhookEndpointObject::new(e, now))
                    .collect();
                println!("{}", serde_json::to_string(&list)?);
            } else {
                for e in &endpoints {
                    println!("{}  {}  {}", e.id, e.url, e.enabled_events.join(","));
                }
            }
            Ok(())
        }
        WebhookCommand::Delete { id } => {
            let we = WebhookEndpointId::parse(&id).context("not a webhook endpoint id (we_…)")?;
            anyhow::ensure!(
                store.delete_endpoint(&we, now).await?,
                "no webhook endpoint {id}"
            );
            println!("deleted {id}");
            Ok(())
        }
        WebhookCommand::Rotate {
            id,
            overlap_secs,
            json,
        } => {
            let we = WebhookEndpointId::parse(&id).context("not a webhook endpoint id (we_…)")?;
            let e = crate::webhooks::rotate_secret(store, &we, overlap_secs, now).await?;
            print_endpoint(&e, now, json);
            Ok(())
        }
    }
}

/// Prints a just-created or just-rotated endpoint, with its secret (the one time).
fn print_endpoint(e: &crate::store::EndpointRecord, now: i64, json: bool) {
    let object = WebhookEndpointObject::with_secret(e, now);
    if json {
        println!("{}", serde_json::to_string(&object).unwrap_or_default());
    } else {
        println!("endpoint  {}", object.id);
        println!("url       {}", object.url);
        println!("events    {}", object.enabled_events.join(","));
        if let Some(secret) = &object.secret {
            println!("secret    {secret}   (shown once: store it now)");
        }
    }
}

async fn connect(config: &Config) -> anyhow::Result<Store> {
    let mut store = Store::connect(&config.database_url, 2)
        .await
        .context("connecting to the database")?;
    store.migrate().await.context("migrating the database")?;
    store
        .set_master_key(config.load_master_key()?)
        .await
        .context("opening the secrets at rest")?;
    tracing::info!(backend = store.backend().as_str(), "database ready");
    Ok(store)
}

async fn serve(config: Config, seed_demo: bool) -> anyhow::Result<()> {
    let app = Application::build(config).await?;
    tracing::info!(addr = %app.local_addr(), backend = app.state().store.backend().as_str(), "listening");
    // Read after the build: an empty public URL is filled from the bound address.
    println!(
        "Malipo is running at {}  (listening on {})",
        app.state().config.public_url,
        app.local_addr()
    );
    if seed_demo {
        let seeded = demo::seed(&app.state().store, &app.state().checkout).await?;
        if let Some(key) = &seeded.new_secret_key {
            println!(
                "Demo merchant {} created; test secret key {key}",
                seeded.merchant_id
            );
        }
        println!("Demo checkout: {}", seeded.session_url);
        println!("Demo checkout priced in USD: {}", seeded.usd_session_url);
    }
    if let Some(url) = app.sandbox_merchant_url() {
        println!("Sandbox merchant site: {url}/sandbox/merchant");
    }
    app.run_until_stopped().await
}

/// A rate a second: a finite number above zero.
fn positive_rate(v: &str) -> Result<f64, String> {
    match v.parse::<f64>() {
        Ok(r) if r.is_finite() && r > 0.0 => Ok(r),
        _ => Err(format!("{v:?} is not a rate above zero")),
    }
}
