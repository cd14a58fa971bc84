//! Integration tests: one binary (one link step) with a module per area.
//!
//! Store tests run twice, on SQLite and on PostgreSQL (`MALIPO_TEST_POSTGRES_URL`, set
//! by `scripts/test`, which starts a throwaway server when none is reachable).

mod abuse;
mod airtel;
mod bad_input;
mod cards;
mod cli;
mod dashboard;
mod embed;
mod fx;
mod health;
mod helpers;
mod languages;
mod modes;
mod mtn;
mod openapi;
mod pages;
mod pan_free;
mod parts;
mod pay_flow;
mod payment_methods;
mod payments;
mod paypal;
mod refunds;
mod rescue;
mod sandbox_daraja;
mod scale;
mod sessions_api;
mod store;
mod tamper;
mod tigo;
mod travel;
mod vodacom;
mod webhooks;
