//! Malipo's server: the merchant API, the hosted checkout pages, the payment engine, the
//! store and the sandbox operators, in one binary (`malipo`) and a library tests start.
//!
//! # Layout
//! - [`config`]: defaults → TOML file → `MALIPO_*` environment.
//! - [`startup`]: [`startup::Application`] builds, binds (port 0 in tests) and runs.
//! - [`api`]: the merchant API under `/v1` (auth, idempotency, checkout sessions).
//! - [`http`]: routers per area (health, pages, API), merged with the shared layers;
//!   [`http::error::ApiError`] is the JSON error shape.
//! - [`domain`]: types that can only be built valid (ids, money, API keys).
//! - [`store`]: the one database layer, SQLite or PostgreSQL, same queries.
//! - [`checkout`], [`merchants`]: services over the store.
//! - [`embed`]: `checkout.js` and the per-merchant `frame-ancestors` policy.
//! - [`resources`]: the objects merchants see (sessions, payments, events).
//! - [`webhooks`]: signing, the delivery worker and endpoint management.
//! - [`sweeper`]: expires sessions on time, forgets week-old idempotency keys.
//! - [`sandbox`]: sandbox operators (Daraja, handset) speaking the real wire formats.
//! - [`connectors`]: real connectors to the rails (Daraja).
//! - [`cli`]: `malipo serve | migrate | merchant create | session create`.
//! - [`time`]: unix-millisecond clock, East Africa Time formatting.
#![forbid(unsafe_code)]
// Leptos views are deeply nested types; the hosted page needs more than the default 128.
#![recursion_limit = "256"]

pub mod accounts;
pub mod api;
pub mod bench;
pub mod breaker;
pub mod checkout;
pub mod cli;
pub mod config;
pub mod connectors;
pub mod credentials;
pub mod dashboard;
pub mod demo;
pub mod domain;
pub mod embed;
pub mod fx;
pub mod http;
pub mod limits;
pub mod live;
pub mod mail;
pub mod merchants;
pub mod metrics;
pub mod payments;
pub mod receipts;
pub mod resources;
pub mod sandbox;
pub mod sealing;
pub mod shed;
pub mod startup;
pub mod store;
pub mod sweeper;
pub mod tamper;
pub mod telemetry;
pub mod time;
pub mod webhooks;
