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
    /// A session priced in US dollars, paid from a wallet in its own currency at a quote.
    pub usd_session_url: String,
}

/// Finds or creates the demo merchant and opens two fresh sessions: KES 1,500, and
/// USD 350 (paid in shillings at a quote, or in any wallet's currency).
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
    let open = async |amount: Money, reference: &str, description: &str| {
        let session = checkout
            .create(CreateSession {
                merchant_id: merchant_id.clone(),
                mode: Mode::Test,
                amount,
                reference: reference.into(),
                description: description.into(),
                success_url: format!("https://demo-safaris.example/booking/{reference}/paid"),
                cancel_url: format!("https://demo-safaris.example/booking/{reference}"),
                customer_phone: None,
                customer_email: None,
                metadata: Default::default(),
                expires_in_secs: 24 * 3600,
                payment_method_types: None,
                travel: None,
            })
            .await?;
        anyhow::Ok(checkout.page_url(&session.id))
    };
    let session_url = open(
        Money::new(150_000, Currency::Kes)?,
        "MARA-DEMO",
        "Maasai Mara 3-day safari — deposit",
    )
    .await?;
    let usd_session_url = open(
        Money::new(35_000, Currency::Usd)?,
        "BALLOON-DEMO",
        "Serengeti balloon safari",
    )
    .await?;
    Ok(Seeded {
        merchant_id: merchant_id.to_string(),
        new_secret_key,
        session_url,
        usd_session_url,
    })
}
