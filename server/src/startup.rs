//! Building and running the application: `Application::build(config)` connects and
//! migrates the database and binds the listener; `run_until_stopped()` serves until
//! SIGTERM or Ctrl-C, then drains in-flight requests for a grace period.

use anyhow::Context;
use app::service::SharedPageService;
use axum::{Router, extract::FromRef};
use leptos::config::LeptosOptions;
use std::{future::Future, net::SocketAddr, sync::Arc, time::Duration};
use tokio::net::TcpListener;

use crate::{checkout::CheckoutService, config::Config, http, store::Store};

/// What every handler can reach: one allocation shared by every request. Axum clones
/// the state for each extractor and middleware layer, so this is a pointer copy, not a
/// copy of the services and their configuration (which cost the API a third of its
/// throughput when it was one).
#[derive(Clone)]
pub struct AppState(Arc<Shared>);

impl std::ops::Deref for AppState {
    type Target = Shared;
    fn deref(&self) -> &Shared {
        &self.0
    }
}

/// The services and settings behind [`AppState`].
pub struct Shared {
    pub config: Arc<Config>,
    pub store: Store,
    pub checkout: CheckoutService,
    /// The checkout service again, as the pages see it.
    pub pages: SharedPageService,
    pub leptos_options: LeptosOptions,
    /// The payment engine.
    pub payments: crate::payments::Payments,
    /// The sandbox operators, when `sandbox` is on.
    pub sandbox: Option<Arc<crate::sandbox::Sandbox>>,
    /// The webhook deliverer.
    pub webhooks: crate::webhooks::Webhooks,
    /// Pay requests per client address.
    pub pay_limiter: Arc<crate::limits::RateLimiter>,
    /// Which limit refusals were announced to merchants lately.
    pub refusals: Arc<crate::limits::RecentOnce>,
    /// Live payment state for the pages' event streams.
    pub live: Arc<crate::live::LiveHub>,
    /// Redeliveries per merchant and mode.
    pub redeliveries: Arc<crate::limits::RateLimiter<(String, &'static str)>>,
    /// Card processor sessions per checkout session (each is a call to the processor).
    pub card_sessions: Arc<crate::limits::RateLimiter<String>>,
    /// Dashboard accounts (sign-in, mail).
    pub accounts: crate::accounts::Accounts,
    /// Whether the database is too slow to take more work (see [`crate::shed`]).
    pub pressure: Arc<crate::shed::Pressure>,
}

impl FromRef<AppState> for LeptosOptions {
    fn from_ref(state: &AppState) -> Self {
        state.leptos_options.clone()
    }
}

/// A built, bound, not yet running server.
pub struct Application {
    listener: TcpListener,
    router: Router,
    state: AppState,
    /// The sandbox merchant site, on its own listener (its own origin).
    merchant_site: Option<(TcpListener, Router)>,
    /// The sandbox card gateway, on its own listener (its own origin).
    card_gateway: Option<(TcpListener, Router)>,
    /// The sandbox PayPal, on its own listener (its own origin).
    paypal: Option<(TcpListener, Router)>,
    /// Merchants' own connectors as built, kept up to date while it runs.
    own_credentials: crate::credentials::Loaded,
}

impl Application {
    pub async fn build(mut config: Config) -> anyhow::Result<Application> {
        let mut store = Store::connect(&config.database_url, config.database_max_connections)
            .await
            .context("connecting to the database")?;
        store.migrate().await.context("migrating the database")?;
        store
            .set_master_key(config.load_master_key()?)
            .await
            .context("opening the secrets at rest")?;

        let listener = TcpListener::bind(config.listen)
            .await
            .with_context(|| format!("binding {}", config.listen))?;
        let addr = listener.local_addr()?;
        if config.public_url.is_empty() {
            config.public_url = format!("http://{addr}");
        }
        store.set_public_url(&config.public_url);

        let leptos_options = LeptosOptions::builder()
            .output_name("malipo")
            .site_root(config.site_root.to_string_lossy().into_owned())
            .site_pkg_dir("pkg")
            .site_addr(addr)
            .build();
        let checkout = CheckoutService::new(store.clone(), config.public_url.clone())
            .with_form_key(
                store
                    .instance_secret("pay_form_key")
                    .await
                    .context("reading the pay-form key")?,
            );
        // The secrets the built-in sandbox operators check are random per install (kept
        // in the database) unless configured: the published defaults would let anyone
        // who can reach this server use its sandbox.
        for (_, settings) in config.rails.each_mut() {
            if !settings.base_url().is_empty() {
                continue;
            }
            if let Some((name, secret)) = settings.sandbox_secret() {
                *secret = store
                    .instance_secret(name)
                    .await
                    .with_context(|| format!("reading the sandbox secret {name}"))?;
            }
        }
        // The sandbox card gateway, on its own origin; test mode's card rail uses it
        // unless configured elsewhere.
        let card_gateway = match config.sandbox_card_listen {
            Some(addr) if config.sandbox => {
                let listener = TcpListener::bind(addr)
                    .await
                    .with_context(|| format!("binding the sandbox card gateway on {addr}"))?;
                let origin = format!("http://{}", listener.local_addr()?);
                if config.rails.card.base_url.is_empty() {
                    config.rails.card.base_url = origin.clone();
                }
                let gateway = crate::sandbox::cardgw::CardGateway::new(
                    crate::sandbox::cardgw::GatewayConfig {
                        merchant_id: config.rails.card.merchant_id.clone(),
                        api_password: config.rails.card.api_password.clone(),
                        origin,
                        checkout_origin: crate::embed::parse_origin(&config.public_url)
                            .unwrap_or_else(|| config.public_url.clone()),
                    },
                );
                Some((listener, gateway.router()))
            }
            _ => None,
        };
        // The sandbox PayPal, likewise; its webhooks come to this server's portal URL.
        let paypal = match config.sandbox_paypal_listen {
            Some(addr) if config.sandbox => {
                let listener = TcpListener::bind(addr)
                    .await
                    .with_context(|| format!("binding the sandbox PayPal on {addr}"))?;
                let origin = format!("http://{}", listener.local_addr()?);
                if config.rails.paypal.base_url.is_empty() {
                    config.rails.paypal.base_url = origin.clone();
                }
                let paypal = crate::sandbox::paypal::SandboxPaypal::new(
                    crate::sandbox::paypal::SandboxPaypalConfig {
                        client_id: config.rails.paypal.client_id.clone(),
                        client_secret: config.rails.paypal.client_secret.clone(),
                        webhook_id: config.rails.paypal.webhook_id.clone(),
                        origin,
                        webhook_url: format!("{}/callbacks/paypal", config.public_url),
                        delay_percent: config.sandbox_delay_percent,
                    },
                )
                .context("sandbox PayPal HTTP client")?;
                Some((listener, paypal.router()))
            }
            _ => None,
        };
        let sandbox = if config.sandbox {
            Some(
                crate::sandbox::Sandbox::new(
                    config.rails.clone(),
                    &config.public_url,
                    config.limits.sandbox_pushes_per_minute,
                    config.sandbox_delay_percent,
                )
                .context("sandbox HTTP client")?,
            )
        } else {
            None
        };
        let rails =
            crate::connectors::Registry::from_config(&config).map_err(anyhow::Error::msg)?;
        // Merchants' own live credentials (saved on the dashboard), over this server's.
        let mut own_credentials = crate::credentials::Loaded::default();
        own_credentials
            .refresh(&store, &config, &rails)
            .await
            .context("reading merchants' own credentials")?;
        let rates = crate::fx::Rates::new(
            store.clone(),
            Some(config.fx_test_provider()),
            config.fx_live_provider(),
            crate::time::secs_to_ms(config.fx.provider_cache_secs),
        )
        .context("rates provider HTTP client")?;
        let quoter = crate::fx::Quoter::new(
            store.clone(),
            rates,
            store
                .instance_secret("fx_quote_key")
                .await
                .context("reading the quote key")?,
            crate::time::secs_to_ms(config.fx.quote_ttl_secs),
        );
        let checkout = checkout.with_rails(rails.clone()).with_fx(quoter.clone());
        let payments = crate::payments::Payments::new(
            store.clone(),
            rails,
            config.public_url.clone(),
            config.limits.clone(),
            config.payments.clone(),
        )
        .with_fx(quoter)
        .with_paybill_secret(
            store
                .instance_secret("paybill_url_key")
                .await
                .context("reading the Pay Bill URL key")?,
        );
        // The sandbox merchant site is ours, on loopback: its exact address may receive
        // webhooks (test mode only ever targets it). Nothing else local is allowed unless
        // the operator lists it.
        let mut webhooks_config = config.webhooks.clone();
        let merchant_listener = match config.sandbox_merchant_listen {
            Some(addr) if config.sandbox => Some(
                TcpListener::bind(addr)
                    .await
                    .with_context(|| format!("binding the sandbox merchant site on {addr}"))?,
            ),
            _ => None,
        };
        if let Some(l) = &merchant_listener {
            webhooks_config
                .allow_hosts
                .push(l.local_addr()?.to_string());
        }
        let webhooks = crate::webhooks::Webhooks::new(store.clone(), webhooks_config)
            .context("webhook HTTP client")?;
        let mailer =
            crate::mail::Mailer::new(&config.mail, store.clone()).context("the mail server")?;
        let accounts = crate::accounts::Accounts::new(
            store.clone(),
            mailer,
            &config.public_url,
            config.dashboard.mails_per_ip_per_hour,
        );
        let state = AppState(Arc::new(Shared {
            accounts,
            pressure: Arc::new(crate::shed::Pressure::new(Duration::from_millis(
                config.limits.busy_wait_ms,
            ))),
            pay_limiter: Arc::new(crate::limits::RateLimiter::new(
                config.limits.requests_per_ip,
                config.limits.ip_window_secs,
            )),
            refusals: Arc::new(crate::limits::RecentOnce::new(60_000)),
            card_sessions: Arc::new(crate::limits::RateLimiter::new(
                crate::payments::CARD_SESSIONS_PER_CHECKOUT,
                600,
            )),
            redeliveries: Arc::new(crate::limits::RateLimiter::new(
                crate::api::events::REDELIVERIES_PER_MINUTE,
                60,
            )),
            live: crate::live::LiveHub::new(
                store.clone(),
                crate::live::StreamLimits {
                    total: config.limits.streams_total,
                    per_session: config.limits.streams_per_session,
                    per_ip: config.limits.streams_per_ip,
                },
            ),
            webhooks,
            payments,
            sandbox,
            config: Arc::new(config),
            store,
            pages: Arc::new(checkout.clone()),
            checkout,
            leptos_options,
        }));
        let router = http::router(state.clone());
        let merchant_site = match merchant_listener {
            Some(listener) => {
                let origin = format!("http://{}", listener.local_addr()?);
                let site =
                    crate::sandbox::merchant::site(&state.store, &state.config.public_url, &origin)
                        .await
                        .context("setting up the sandbox merchant")?;
                Some((listener, site))
            }
            _ => None,
        };
        Ok(Application {
            listener,
            router,
            state,
            merchant_site,
            card_gateway,
            paypal,
            own_credentials,
        })
    }

    /// The port actually bound (useful with port 0).
    pub fn port(&self) -> u16 {
        self.local_addr().port()
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .unwrap_or_else(|_| self.state.config.listen)
    }

    /// The sandbox merchant site's base URL (`http://127.0.0.1:PORT`), when it runs.
    pub fn sandbox_merchant_url(&self) -> Option<String> {
        let (listener, _) = self.merchant_site.as_ref()?;
        listener.local_addr().ok().map(|a| format!("http://{a}"))
    }

    /// The sandbox card gateway's origin (`http://127.0.0.1:PORT`), when it runs.
    pub fn sandbox_card_url(&self) -> Option<String> {
        let (listener, _) = self.card_gateway.as_ref()?;
        listener.local_addr().ok().map(|a| format!("http://{a}"))
    }

    /// The sandbox PayPal's origin (`http://127.0.0.1:PORT`), when it runs.
    pub fn sandbox_paypal_url(&self) -> Option<String> {
        let (listener, _) = self.paypal.as_ref()?;
        listener.local_addr().ok().map(|a| format!("http://{a}"))
    }

    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Serves until SIGTERM or Ctrl-C.
    pub async fn run_until_stopped(self) -> anyhow::Result<()> {
        self.run_until(shutdown_signal()).await
    }

    /// Serves until `signal` resolves, then lets in-flight requests finish for up to
    /// `shutdown_grace_secs` and closes the database pool.
    pub async fn run_until(
        self,
        signal: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let grace = Duration::from_secs(self.state.config.shutdown_grace_secs);
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let server = crate::http::serve::serve(
            self.listener,
            self.router,
            stop_rx,
            Duration::from_secs(self.state.config.header_read_timeout_secs),
            self.state.config.max_connections,
        );
        let mut server = tokio::spawn(async move {
            server.await;
            Ok::<(), std::io::Error>(())
        });
        // The sandbox's sites on their own origins.
        let sites: Vec<AbortOnDrop> = [
            ("sandbox merchant site", self.merchant_site),
            ("sandbox card gateway", self.card_gateway),
            ("sandbox PayPal", self.paypal),
        ]
        .into_iter()
        .filter_map(|(name, site)| {
            let (listener, site) = site?;
            Some(AbortOnDrop(tokio::spawn(async move {
                if let Err(e) = axum::serve(listener, site).await {
                    tracing::error!(error = %e, "{name} stopped");
                }
            })))
        })
        .collect();
        // Stops with the server, however `run_until` returns.
        let sweeper = AbortOnDrop(tokio::spawn(crate::sweeper::run(
            self.state.store.clone(),
            self.state.payments.clone(),
        )));
        let poller = AbortOnDrop(tokio::spawn(self.state.payments.clone().run_poller()));
        let paybills = AbortOnDrop(tokio::spawn(
            self.state.payments.clone().register_paybills(),
        ));
        let probe = AbortOnDrop(tokio::spawn(crate::shed::run_probe(
            self.state.store.clone(),
            self.state.pressure.clone(),
        )));
        let listener = AbortOnDrop(tokio::spawn(
            self.state.payments.clone().run_change_listener(),
        ));
        let credentials = AbortOnDrop(tokio::spawn(crate::credentials::run(
            self.state.store.clone(),
            self.state.config.clone(),
            self.state.payments.registry().clone(),
            self.own_credentials,
        )));
        let dashboard = AbortOnDrop(tokio::spawn(crate::dashboard::mass::run(
            self.state.store.clone(),
            self.state.webhooks.clone(),
            self.state.payments.clone(),
        )));
        let live = AbortOnDrop(tokio::spawn(
            self.state.live.clone().run(self.state.payments.subscribe()),
        ));
        let receipts = AbortOnDrop(tokio::spawn(crate::receipts::run(
            self.state.store.clone(),
            self.state.checkout.clone(),
            self.state.accounts.mailer().clone(),
            self.state.config.public_url.clone(),
        )));
        let webhooks = AbortOnDrop(tokio::spawn(
            self.state
                .webhooks
                .clone()
                .run(self.state.payments.subscribe()),
        ));
        let sandbox_worker = self.state.sandbox.clone().map(|sandbox| {
            AbortOnDrop(tokio::spawn(crate::sandbox::worker::run(
                self.state.store.clone(),
                sandbox,
            )))
        });
        tokio::select! {
            res = &mut server => {
                res.context("server task")?.context("serving")?;
            }
            () = signal => {
                tracing::info!(grace_secs = grace.as_secs(), "shutting down: draining requests");
                let _ = stop_tx.send(true);
                if let Some(sandbox) = &self.state.sandbox {
                    sandbox.close();
                }
                match tokio::time::timeout(grace, &mut server).await {
                    Ok(res) => res.context("server task")?.context("serving")?,
                    Err(_) => {
                        tracing::warn!("grace period over; dropping remaining connections");
                        server.abort();
                    }
                }
            }
        }
        drop(sweeper);
        drop(dashboard);
        drop(poller);
        drop(paybills);
        drop(credentials);
        drop(listener);
        drop(probe);
        drop(live);
        drop(receipts);
        drop(webhooks);
        drop(sites);
        drop(sandbox_worker);
        self.state.store.close().await;
        tracing::info!("stopped");
        Ok(())
    }
}

/// Aborts a background task when dropped.
pub(crate) struct AbortOnDrop(pub(crate) tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Resolves on Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
}
