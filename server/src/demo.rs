//! The demo merchant and checkout session `malipo serve --seed-demo` prints a link to,
//! so a new user sees a real page at once.

use secrecy::ExposeSecret;

use crate::{
    checkout::{CheckoutService, CreateSession},
    domain::{Mode, Money, money::Currency},
    merchants,
    store::Store,
};

/// The demo merchant's name; reused across restarts.
pub const DEMO_MERCHANT: &str = "Demo Safaris";

/// What was seeded.
pub struct Seeded {
    pub merchant_id: String,
    /// Set only when the merchant was created now (its key is shown once).
    pub new_secret_key: Option<String>,
    pub session_url: String,
}

/// Finds or creates the demo merchant and opens a fresh KES 1,500 session.
pub async fn seed(store: &Store, checkout: &CheckoutService) -> anyhow::Result<Seeded> {
    let (merchant_id, new_secret_key) = match store.merchant_by_name(DEMO_MERCHANT).await? {
        Some(m) => (m.id, None),
        None => {
            let created = merchants::create(store, DEMO_MERCHANT).await?;
            (
                created.merchant.id,
                Some(created.test_secret_key.expose_secret().to_owned()),
            )
        }
    };
    let session = checkout
        .create(CreateSession {
            merchant_id: merchant_id.clone(),
            mode: Mode::Test,
            amount: Money::new(150_000, Currency::Kes)?,
            reference: "MARA-DEMO".into(),
            description: "Maasai Mara 3-day safari — deposit".into(),
            success_url: "https://demo-safaris.example/booking/MARA-DEMO/paid".into(),
            cancel_url: "https://demo-safaris.example/booking/MARA-DEMO".into(),
            customer_phone: None,
            customer_email: None,
            metadata: Default::default(),
            expires_in_secs: 24 * 3600,
            payment_method_types: None,
        })
        .await?;
    Ok(Seeded {
        merchant_id: merchant_id.to_string(),
        new_secret_key,
        session_url: checkout.page_url(&session.id),
    })
}
