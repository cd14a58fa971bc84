//! The expiry countdown: the page's one island. It also marks the page as hydrated
//! (`data-hydrated`), which the end-to-end tests wait for.

use leptos::prelude::*;
use std::time::Duration;

/// "14:59", or "2 h 05 min" past an hour.
pub fn remaining_label(seconds: i64) -> String {
    let s = seconds.max(0);
    if s >= 3600 {
        format!("{} h {:02} min", s / 3600, (s % 3600) / 60)
    } else {
        format!("{}:{:02}", s / 60, s % 60)
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
pub fn Countdown(seconds_left: i64, expires_at_label: String) -> impl IntoView {
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
                    format!("Expires in {}", remaining_label(s))
                } else {
                    "This checkout has expired".to_string()
                }
            }}
            <span class="expiry-at">{format!(" · {expires_at_label}")}</span>
        </p>
    }
}

#[cfg(test)]
mod tests {
    use super::remaining_label;

    #[test]
    fn labels_minutes_and_hours() {
        assert_eq!(remaining_label(899), "14:59");
        assert_eq!(remaining_label(5), "0:05");
        assert_eq!(remaining_label(-3), "0:00");
        assert_eq!(remaining_label(3600), "1 h 00 min");
        assert_eq!(remaining_label(7_500), "2 h 05 min");
    }
}
