//! View models: what a page needs, already decided by the server. Wasm-safe: no
//! database types here.

use serde::{Deserialize, Serialize};

use crate::{
    i18n::Locale,
    money::{Currency, format_amount},
    operators::Country,
    rail::RailId,
};

/// Where a checkout session stands, as the shopper should see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CheckoutState {
    /// Waiting for the shopper to pay.
    Open,
    /// Paid; nothing more to do.
    Paid,
    /// Past its expiry (or expired by the merchant) without being paid.
    Expired,
}

/// Everything the hosted checkout page shows for one session.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CheckoutView {
    pub id: String,
    pub merchant_name: String,
    pub description: String,
    pub reference: String,
    pub amount_minor: i64,
    pub currency: Currency,
    pub state: CheckoutState,
    /// Expiry as unix milliseconds (UTC).
    pub expires_at_ms: i64,
    /// Seconds left until expiry when the page was rendered (0 once expired). The
    /// countdown island ticks down from this, so a phone with a wrong clock still
    /// shows the right time left.
    pub seconds_left: i64,
    /// Expiry as the shopper reads it, in East Africa Time and the page's language:
    /// "14:05 EAT, 23 Nov 2026".
    pub expires_at_label: String,
    pub cancel_url: String,
    /// Where to send the shopper once paid (placeholders already filled in).
    pub success_url: String,
    /// The payment's live state.
    pub live: LiveState,
    /// The rails that can take this session (its currency and amount), in the order the
    /// page offers them. Empty: nothing here can take it.
    pub methods: Vec<RailId>,
    /// For each offered rail that charges another currency than the price's: its quote.
    pub quotes: Vec<QuoteView>,
    /// The card option, when cards can take this session (not in embed mode).
    pub card: Option<CardView>,
    /// The PayPal option, when PayPal can take this session (not in embed mode).
    pub paypal: Option<PaypalView>,
    /// The number to prefill (the last one tried, or the merchant's `customer.phone`),
    /// masked in local form: `0712•••678`. Posted back as is, it means that number.
    pub phone: String,
    /// The pay form's hidden token: proves a post came from this page.
    pub form_token: String,
    /// False for a test-mode session: the page then says TEST MODE on every view.
    pub livemode: bool,
    /// When the page is framed by `checkout.js`: the embedding origin, already checked
    /// against the merchant's allowed origins. Messages go to this origin only.
    pub embed_origin: Option<String>,
    /// How the shopper reaches the merchant (set in the dashboard), if it said.
    pub support: Option<SupportView>,
    /// The merchant's brand colour (`#rrggbb`, dark enough for white text on it).
    pub brand_color: Option<String>,
    /// The merchant's logo, on this origin (`/logos/{digest}`).
    pub logo_url: Option<String>,
    /// "Refunded to the payer" / "KES 500 refunded to the payer", once money went back.
    pub refunded: Option<String>,
    /// The page's language: the request's, else the merchant's default.
    pub locale: Locale,
    /// The trip a travel booking pays for, in the page's words.
    pub trip: Option<TripView>,
    /// The page's own address, for "Ask someone to pay" (the session id in it is the
    /// capability the shopper chooses to share).
    pub share_url: String,
    /// "Paid already?": offered while the last payment is not confirmed, on a rail whose
    /// payments can be looked up by receipt.
    pub rescue: Option<RescueView>,
    /// Paying in parts: what came, what is left, the field for the next part.
    pub parts: Option<PartsView>,
    /// "KES 500 more than the price was paid: … will refund it", once paid.
    pub overpaid: Option<String>,
    /// Paying from the M-PESA menu (Pay Bill), when the prompt cannot reach the phone.
    pub paybill: Option<PaybillView>,
}

/// The Pay Bill instructions: what to type in the wallet's menu.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PaybillView {
    /// The business number (`174379`).
    pub business: String,
    /// This session's account number (`K7Q2M9X`).
    pub account: String,
    /// What is left to pay: "KES 1,500".
    pub amount_label: String,
    /// Open at once: the last prompt could not reach the phone.
    pub open: bool,
}

/// A session paid (or to be paid) in parts, every text in the page's language.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PartsView {
    /// "KES 250,000 received · KES 150,000 left to pay", once something came.
    pub progress: Option<String>,
    /// What is left to pay: "KES 150,000" (the pay button's amount without a field).
    pub remaining_label: String,
    /// The part field, when more is left than one payment on the rail may be.
    pub field: Option<PartField>,
}

/// The "amount to pay now" field: why it shows, its label, its prefill (`250000`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PartField {
    pub note: String,
    pub label: String,
    pub value: String,
}

/// The "I paid, here is the code" form and the last check's state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RescueView {
    pub rail: RailId,
    /// `checking` or `refused`: the newest check of the last few minutes, if any.
    pub status: Option<String>,
}

/// The shopper's receipt for a paid session (`/pay/{id}/receipt`), every text already in
/// the page's language.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReceiptView {
    pub id: String,
    pub merchant_name: String,
    pub logo_url: Option<String>,
    pub brand_color: Option<String>,
    pub description: String,
    pub reference: String,
    pub trip: Option<TripView>,
    /// The price: "USD 350".
    pub amount_label: String,
    /// What the rail charged, when another currency than the price's: "KES 45,150".
    pub charged_label: Option<String>,
    /// "M-PESA", "Card", "PayPal".
    pub rail_label: String,
    /// The operator's receipt (`QKJ4ABC123`) or the card (`Visa ···· 4242`).
    pub receipt: Option<String>,
    /// The payer, masked (`2547•••••678`), for mobile money.
    pub payer: Option<String>,
    /// When it was paid, in East Africa Time and the page's language.
    pub paid_at_label: String,
    pub refunded: Option<String>,
    /// Paid in parts: every payment that counted, oldest first (the rail, receipt,
    /// payer and date above are then the last one's). Empty when one payment paid it.
    pub parts: Vec<ReceiptPartView>,
    pub support: Option<SupportView>,
    pub livemode: bool,
    pub locale: Locale,
}

/// One part of a session paid in parts, on its receipt.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReceiptPartView {
    /// What it paid: "KES 250,000".
    pub amount_label: String,
    pub rail_label: String,
    pub receipt: Option<String>,
    pub payer: Option<String>,
    pub paid_at_label: String,
}

/// A travel booking's trip, as the page lists it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TripView {
    pub items: Vec<TripItemView>,
    /// "2 travellers · Amina Otieno".
    pub travelers: Option<String>,
}

/// One service: "Flight to Diani" and "NBO → UKA · 20 Dec 2026".
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TripItemView {
    pub description: String,
    pub detail: Option<String>,
}

/// The merchant's support contacts, as the page links them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SupportView {
    /// International form, `+254712345678`.
    pub phone: Option<String>,
    pub email: Option<String>,
    /// WhatsApp number, digits only (for `https://wa.me/…`).
    pub whatsapp: Option<String>,
}

/// What a rail charges for a session priced in a currency it does not take.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QuoteView {
    pub rail: RailId,
    /// "KES 45,150".
    pub amount_label: String,
    /// "USD 350 = KES 45,150 at 129.00 KES per USD, valid until 14:05 EAT" (in the page's
    /// language).
    pub label: String,
    /// Posted back with the pay form: the quote the shopper saw, signed.
    pub token: String,
}

/// Paying by card: the processor's script and what the card is charged.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CardView {
    /// "USD 350".
    pub amount_label: String,
    /// The processor's `session.js`, loaded only when the shopper picks the card.
    pub session_js: String,
    /// Malipo's card script's Subresource Integrity value.
    pub script_integrity: String,
}

/// Paying with PayPal: what PayPal is charged (at a quote, for a price in a currency
/// PayPal does not take).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PaypalView {
    /// "USD 11.63".
    pub amount_label: String,
}

impl CheckoutView {
    /// "KES 1,500".
    pub fn amount_label(&self) -> String {
        format_amount(self.amount_minor, self.currency)
    }
}

/// Where the shopper's payment stands, as the live part of the page shows it. Travels
/// over server-sent events as a short line (see [`LiveState::encode`]), so the WASM
/// bundle needs no JSON parser.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum LiveState {
    /// Nothing sent yet (or the last try failed: then `failure` says why, and `rail`
    /// on which).
    Idle {
        failure: Option<String>,
        rail: Option<RailId>,
    },
    /// A prompt is on the shopper's phone.
    Waiting {
        rail: RailId,
        payer_masked: String,
        seconds_left: i64,
    },
    /// We could not confirm the last payment with the operator: the shopper may have
    /// paid. Never shown as "nothing was charged".
    Unconfirmed { rail: RailId, payer_masked: String },
    /// Paid; the receipt when the operator gave one.
    Paid {
        rail: Option<RailId>,
        receipt: Option<String>,
    },
    /// The session expired unpaid.
    Expired,
}

impl LiveState {
    /// `idle:`, `idle:mpesa:wrong_pin`, `waiting:mpesa:60:2547•••••678`,
    /// `unconfirmed:mpesa:2547•••••678`, `paid:mpesa:QKJ4ABC123`, `expired` (a rail
    /// may be empty: `idle::failed`, `paid::`).
    pub fn encode(&self) -> String {
        let name = |r: &Option<RailId>| r.map(RailId::as_str).unwrap_or("");
        match self {
            LiveState::Idle {
                failure: None,
                rail: None,
            } => "idle:".into(),
            LiveState::Idle { failure, rail } => {
                format!("idle:{}:{}", name(rail), failure.as_deref().unwrap_or(""))
            }
            LiveState::Waiting {
                rail,
                payer_masked,
                seconds_left,
            } => format!("waiting:{rail}:{seconds_left}:{payer_masked}"),
            LiveState::Unconfirmed { rail, payer_masked } => {
                format!("unconfirmed:{rail}:{payer_masked}")
            }
            LiveState::Paid { rail, receipt } => {
                format!("paid:{}:{}", name(rail), receipt.as_deref().unwrap_or(""))
            }
            LiveState::Expired => "expired".into(),
        }
    }

    pub fn decode(s: &str) -> Option<LiveState> {
        let (kind, rest) = s.split_once(':').unwrap_or((s, ""));
        let some = |v: &str| (!v.is_empty()).then(|| v.to_owned());
        // `rail:rest`, the rail possibly empty; a line without a rail (from a server, or
        // a cached page script, of the version before rails were named) reads as none.
        let railed = |v: &str| -> (Option<RailId>, String) {
            match v.split_once(':') {
                Some(("", rest)) => (None, rest.to_owned()),
                Some((r, rest)) if RailId::parse(r).is_some() => {
                    (RailId::parse(r), rest.to_owned())
                }
                _ => (None, v.to_owned()),
            }
        };
        match kind {
            "idle" if rest.is_empty() => Some(LiveState::Idle {
                failure: None,
                rail: None,
            }),
            "idle" => {
                let (rail, failure) = railed(rest);
                Some(LiveState::Idle {
                    failure: some(&failure),
                    rail,
                })
            }
            "waiting" => {
                let (rail, rest) = railed(rest);
                let (secs, who) = rest.split_once(':')?;
                Some(LiveState::Waiting {
                    // Before rails were named, M-PESA was the only one.
                    rail: rail.unwrap_or(RailId::Mpesa),
                    payer_masked: who.to_owned(),
                    seconds_left: secs.parse().ok()?,
                })
            }
            "unconfirmed" => {
                let (rail, who) = railed(rest);
                Some(LiveState::Unconfirmed {
                    rail: rail.unwrap_or(RailId::Mpesa),
                    payer_masked: who,
                })
            }
            "paid" => {
                let (rail, receipt) = railed(rest);
                Some(LiveState::Paid {
                    rail,
                    receipt: some(&receipt),
                })
            }
            "expired" => Some(LiveState::Expired),
            _ => None,
        }
    }

    /// The line with the failure's words in `locale` after a tab, for the page
    /// (`idle:mpesa:wrong_pin\tThe M-PESA PIN was wrong. …`): the browser gets the words,
    /// not the table. Other lines are sent as they are.
    pub fn with_words(&self, locale: Locale, currency: &str) -> String {
        let line = self.encode();
        match self {
            LiveState::Idle {
                failure: Some(code),
                rail,
            } => {
                let words = failure_message(locale, code, rail.unwrap_or(RailId::Mpesa), currency);
                format!("{line}\t{words}")
            }
            _ => line,
        }
    }

    /// True once nothing more can happen.
    pub fn is_final(&self) -> bool {
        matches!(self, LiveState::Paid { .. } | LiveState::Expired)
    }
}

/// A failure and the words the server put after it ([`LiveState::with_words`]; a
/// decoded line keeps them in `Idle`'s `failure`): `wrong_pin\tThe…` → (`wrong_pin`,
/// `Some("The…")`). A tab, which no code or text holds, keeps the split simple (and
/// panic-free in the WASM).
pub fn split_words(line: &str) -> (&str, Option<&str>) {
    match line.split_once('\t') {
        Some((line, words)) => (line, Some(words).filter(|w| !w.is_empty())),
        None => (line, None),
    }
}

/// "You can try again in about 7 minutes." for a limit's wait, in seconds.
pub fn retry_hint(locale: Locale, secs: u32) -> String {
    let minutes = secs.div_ceil(60).max(1);
    if minutes == 1 {
        locale.retry_one().to_owned()
    } else {
        locale.retry_many(&minutes.to_string())
    }
}

/// What went wrong, in plain words in `locale`, for a failure code on `rail`, paying in
/// `currency` (the words are per failure, not per rail: a rail adds only its name;
/// numbers are written as in the currency's country). Rendered on the server: the page
/// gets the words, not the table.
pub fn failure_message(locale: Locale, code: &str, rail: RailId, currency: &str) -> String {
    let l = locale;
    let wallet = rail.label();
    if rail == RailId::Card
        && let Some(words) = card_failure(l, code)
    {
        return words.to_owned();
    }
    if rail == RailId::Paypal
        && let Some(words) = paypal_failure(l, code)
    {
        return words.to_owned();
    }
    match code {
        "insufficient_funds" => l.insufficient_funds(wallet),
        "wrong_pin" => l.wrong_pin(wallet),
        "push_not_delivered" => l.push_not_delivered(wallet),
        "subscriber_busy" => l.subscriber_busy(wallet),
        "operator_busy" => l.operator_busy(wallet),
        "not_registered" => l.not_registered(wallet),
        "wallet_limit" => l.wallet_limit(wallet),
        "push_rejected" => l.push_rejected(wallet),
        "invalid_phone" => {
            let (country, local, international) = crate::operators::number_style(currency);
            let country = match country {
                Country::Tz => l.country_tz(),
                Country::Ug => l.country_ug(),
                Country::Rw => l.country_rw(),
                Country::Zm => l.country_zm(),
                Country::Ke => l.country_ke(),
            };
            l.invalid_phone(country, local, international)
        }
        "not_payable" => l.not_payable(wallet),
        "invalid_part" => l.invalid_part(wallet),
        "quote_changed" => l.quote_changed(wallet),
        "rail_unavailable" => l.rail_unavailable(wallet),
        "operator_down" => l.operator_down(wallet),
        "operator_error" => l.operator_error(wallet),
        // Older attempts closed before outcomes could be "unknown": we do not know.
        "operator_unreachable" => l.operator_unreachable(wallet),
        "confirm_no_sms" => l.confirm_no_sms(wallet),
        other => plain_failure(l, other).to_owned(),
    }
}

/// A card's failures, in a card's words.
fn card_failure(l: Locale, code: &str) -> Option<&'static str> {
    Some(match code {
        "insufficient_funds" => l.card_insufficient_funds(),
        "card_declined" => l.card_declined(),
        "expired_card" => l.card_expired(),
        "authentication_failed" => l.card_authentication_failed(),
        "no_response" | "operator_error" => l.card_no_response(),
        "expired" => l.card_timed_out(),
        "cancelled_by_user" => l.card_cancelled(),
        "card_unavailable" => l.card_unavailable(),
        _ => return None,
    })
}

/// PayPal's failures, in PayPal's words.
fn paypal_failure(l: Locale, code: &str) -> Option<&'static str> {
    Some(match code {
        "payment_declined" => l.paypal_declined(),
        "cancelled_by_user" => l.paypal_cancelled(),
        "expired" => l.paypal_timed_out(),
        "operator_error" | "no_response" => l.paypal_no_response(),
        _ => return None,
    })
}

/// The failures whose words name no rail.
fn plain_failure(l: Locale, code: &str) -> &'static str {
    match code {
        "cancelled_by_user" => l.cancelled_by_user(),
        "no_response" => l.no_response(),
        "expired" => l.prompt_expired(),
        "phone_limit" => l.phone_limit(),
        "session_limit" => l.session_limit(),
        "ip_limit" => l.ip_limit(),
        "form_expired" => l.form_expired(),
        "unavailable" => l.unavailable(),
        _ => l.payment_failed(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn live_states_round_trip_through_their_wire_form() {
        let mpesa = RailId::Mpesa;
        for s in [
            LiveState::Idle {
                failure: None,
                rail: None,
            },
            LiveState::Idle {
                failure: Some("wrong_pin".into()),
                rail: Some(mpesa),
            },
            LiveState::Idle {
                failure: Some("failed".into()),
                rail: None,
            },
            LiveState::Waiting {
                rail: mpesa,
                payer_masked: "2547•••••678".into(),
                seconds_left: 58,
            },
            LiveState::Paid {
                rail: Some(mpesa),
                receipt: Some("QKJ4ABC123".into()),
            },
            LiveState::Paid {
                rail: None,
                receipt: None,
            },
            LiveState::Unconfirmed {
                rail: mpesa,
                payer_masked: "2547•••••678".into(),
            },
            LiveState::Expired,
        ] {
            assert_eq!(
                LiveState::decode(&s.encode()),
                Some(s.clone()),
                "{}",
                s.encode()
            );
        }
        assert_eq!(
            LiveState::Waiting {
                rail: mpesa,
                payer_masked: "2547•••••678".into(),
                seconds_left: 58
            }
            .encode(),
            "waiting:mpesa:58:2547•••••678"
        );
        for bad in ["nonsense", "waiting:x:y", "waiting:mpesa:x:y"] {
            assert_eq!(LiveState::decode(bad), None, "{bad}");
        }
        // Lines of the version before rails were named still read (a cached page script
        // meeting a new server, or the other way round, during a deploy).
        assert_eq!(
            LiveState::decode("paid:QKJ4ABC123"),
            Some(LiveState::Paid {
                rail: None,
                receipt: Some("QKJ4ABC123".into())
            })
        );
        assert_eq!(
            LiveState::decode("idle:wrong_pin"),
            Some(LiveState::Idle {
                failure: Some("wrong_pin".into()),
                rail: None
            })
        );
        assert_eq!(
            LiveState::decode("waiting:58:2547•••••678"),
            Some(LiveState::Waiting {
                rail: mpesa,
                payer_masked: "2547•••••678".into(),
                seconds_left: 58
            })
        );
        assert_eq!(
            LiveState::decode("unconfirmed:2547•••••678"),
            Some(LiveState::Unconfirmed {
                rail: mpesa,
                payer_masked: "2547•••••678".into()
            })
        );
    }

    #[test]
    fn a_failure_line_carries_its_words_in_the_pages_language() {
        let failed = LiveState::Idle {
            failure: Some("wrong_pin".into()),
            rail: Some(RailId::Airtel),
        };
        let line = failed.with_words(Locale::Sw, "KES");
        assert_eq!(
            line,
            "idle:airtel:wrong_pin\tPIN ya Airtel Money uliyoweka si sahihi. Tuma ombi tena na uweke PIN yako kwa makini."
        );
        let (state, words) = split_words(&line);
        assert_eq!(LiveState::decode(state), Some(failed));
        assert!(words.unwrap().starts_with("PIN ya Airtel Money"));
        // As the page reads it: the failure holds its words.
        let Some(LiveState::Idle {
            failure: Some(failure),
            ..
        }) = LiveState::decode(&line)
        else {
            panic!("{line}");
        };
        assert_eq!(split_words(&failure).0, "wrong_pin");
        // Lines without a failure are sent as they are, and read without words.
        let paid = LiveState::Paid {
            rail: Some(RailId::Mpesa),
            receipt: Some("QKJ4ABC123".into()),
        };
        assert_eq!(paid.with_words(Locale::Fr, "KES"), paid.encode());
        assert_eq!(split_words("idle:"), ("idle:", None));
        assert_eq!(
            failure_message(Locale::Fr, "invalid_phone", RailId::Tigo, "TZS"),
            "Ce numéro ne ressemble pas à un numéro de mobile tanzanien. Écrivez-le comme 0754 123 456 ou +255754123456."
        );
        assert_eq!(
            retry_hint(Locale::Sw, 400),
            "Unaweza kujaribu tena baada ya dakika 7 hivi."
        );
    }

    #[test]
    fn failure_words_name_the_rail_not_the_code() {
        assert_eq!(
            failure_message(Locale::En, "wrong_pin", RailId::Mpesa, "KES"),
            "The M-PESA PIN was wrong. Send the prompt again and enter your PIN carefully."
        );
        assert_eq!(
            failure_message(Locale::En, "invalid_phone", RailId::Mpesa, "KES"),
            "That doesn't look like a Kenyan mobile number. Write it like 0712 345 678 or +254712345678."
        );
        assert_eq!(
            failure_message(Locale::En, "invalid_phone", RailId::MtnMomo, "UGX"),
            "That doesn't look like a Ugandan mobile number. Write it like 0772 123 456 or +256772123456."
        );
    }

    #[test]
    fn every_failure_code_reads_in_plain_words() {
        for code in [
            "insufficient_funds",
            "wrong_pin",
            "cancelled_by_user",
            "no_response",
            "push_not_delivered",
            "subscriber_busy",
            "operator_busy",
        ] {
            assert_ne!(
                failure_message(Locale::En, code, RailId::Mpesa, "KES"),
                failure_message(Locale::En, "something_new", RailId::Mpesa, "KES"),
                "{code}"
            );
        }
    }
}
