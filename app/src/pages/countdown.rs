//! The expiry countdown: the page's one island. It also marks the page as hydrated
//! (`data-hydrated`), which the end-to-end tests wait for.

use leptos::prelude::*;
use std::time::Duration;

use crate::i18n::CountdownWords;

/// "14:59": minutes and seconds (a prompt's time left, always under an hour).
pub fn clock_label(seconds: i64) -> String {
    let s = seconds.max(0);
    format!("{}:{:02}", s / 60, s % 60)
}

/// "14:59", or past an hour the language's "2 h 05 min".
pub fn remaining_label(words: &CountdownWords, seconds: i64) -> String {
    let s = seconds.max(0);
    if s >= 3600 {
        words.hours(&(s / 3600).to_string(), &format!("{:02}", (s % 3600) / 60))
    } else {
        clock_label(s)
    }
}

#[cfg(feature = "hydrate")]
fn now_ms() -> f64 {
    js_sys::Date::now()
}

/// Effects never run on the server, so this is never called there.
#[cfg(not(feature = "hydrate"))]
fn now_ms() -> f64 {
    0.0
}

/// Counts down from the server's `seconds_left` (not the phone's clock, which may be
/// wrong). Without JavaScript the server-rendered text stays, which is still true.
#[island]
pub fn Countdown(
    seconds_left: i64,
    expires_at_label: String,
    /// The island's texts in the page's language ([`crate::i18n::Locale::countdown_words`]).
    words: String,
) -> impl IntoView {
    let w = CountdownWords::parse(&words);
    let (left, set_left) = signal(seconds_left.max(0));
    let (hydrated, set_hydrated) = signal(false);
    Effect::new(move |_| {
        set_hydrated.set(true);
        let started = now_ms();
        set_interval(
            move || {
                let elapsed = ((now_ms() - started) / 1000.0) as i64;
                set_left.set((seconds_left - elapsed).max(0));
            },
            Duration::from_secs(1),
        );
    });
    view! {
        <p class="expiry" data-hydrated=move || hydrated.get().then_some("true")>
            {move || {
                let s = left.get();
                if s > 0 {
                    w.expires_in(&remaining_label(&w, s))
                } else {
                    w.expired()
                }
            }}
            <span class="expiry-at">{format!(" · {expires_at_label}")}</span>
        </p>
    }
}

#[cfg(test)]
mod tests {
    use super::remaining_label;
    use crate::i18n::{CountdownWords, Locale};

    #[test]
    fn labels_minutes_and_hours() {
        let en = CountdownWords::parse(Locale::En.countdown_words());
        assert_eq!(remaining_label(&en, 899), "14:59");
        assert_eq!(remaining_label(&en, 5), "0:05");
        assert_eq!(remaining_label(&en, -3), "0:00");
        assert_eq!(remaining_label(&en, 3600), "1 h 00 min");
        assert_eq!(remaining_label(&en, 7_500), "2 h 05 min");
        let sw = CountdownWords::parse(Locale::Sw.countdown_words());
        assert_eq!(remaining_label(&sw, 7_500), "saa 2 na dakika 05");
        assert_eq!(sw.expires_in("14:59"), "Muda uliobaki: 14:59");
    }
}
