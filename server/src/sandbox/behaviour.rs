//! Scripted behaviours, chosen by the test phone number (documented in the README).

use crate::time::now_ms;

/// What the sandbox does with a push to a given number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Behaviour {
    /// Decided without the handset: result code, description, after this many ms.
    pub auto: Option<(&'static str, &'static str, i64)>,
    /// Callbacks to deliver: 1 normally, 0 never, 2 twice.
    pub callbacks: i64,
    /// Delay before the (first) callback, ms.
    pub callback_delay_ms: i64,
    /// After the decision, the query keeps saying "still processing" this long, ms.
    pub query_hidden_ms: i64,
}

impl Behaviour {
    /// With every delay at `percent` % (the sandbox's `delay_percent`: tests and demos
    /// need not wait real minutes for a time-out).
    pub fn scaled(self, percent: u32) -> Behaviour {
        let scale = |ms: i64| ms.saturating_mul(i64::from(percent)) / 100;
        Behaviour {
            auto: self.auto.map(|(code, desc, ms)| (code, desc, scale(ms))),
            callback_delay_ms: scale(self.callback_delay_ms),
            query_hidden_ms: scale(self.query_hidden_ms),
            ..self
        }
    }
}

/// Unanswered prompts time out like Daraja's: 1037 after a minute.
pub const UNANSWERED_TIMEOUT_MS: i64 = 60_000;

const NORMAL: Behaviour = Behaviour {
    auto: Some((
        "1037",
        "DS timeout user cannot be reached",
        UNANSWERED_TIMEOUT_MS,
    )),
    callbacks: 1,
    callback_delay_ms: 300,
    query_hidden_ms: 0,
};

/// The scripted test numbers and what they do, for the README and the handset page.
pub const SCRIPTED: [(&str, &str); 10] = [
    ("254700000001", "insufficient funds: ResultCode 1 after 2 s"),
    ("254700002001", "wrong PIN: ResultCode 2001 after 2 s"),
    (
        "254700001032",
        "cancelled on the phone: ResultCode 1032 after 2 s",
    ),
    ("254700001037", "no answer: ResultCode 1037 after 12 s"),
    (
        "254700001025",
        "push cannot be sent: ResultCode 1025 after 1 s",
    ),
    ("254700001001", "subscriber busy: ResultCode 1001 after 1 s"),
    (
        "254700000404",
        "callback never delivered (answer on the handset; the query knows)",
    ),
    ("254700000202", "callback delivered twice"),
    ("254700000010", "callback delayed 10 s"),
    (
        "254700000102",
        "query says \"still processing\" for 30 s after the answer",
    ),
];

/// The behaviour for a phone number; any other number waits for the handset and times
/// out with 1037 after a minute.
pub fn for_phone(phone: &str) -> Behaviour {
    let auto = |code, desc, ms| Behaviour {
        auto: Some((code, desc, ms)),
        ..NORMAL
    };
    match phone {
        "254700000001" => auto(
            "1",
            "The balance is insufficient for the transaction.",
            2_000,
        ),
        "254700002001" => auto("2001", "The initiator information is invalid.", 2_000),
        "254700001032" => auto("1032", "Request cancelled by user", 2_000),
        "254700001037" => auto("1037", "DS timeout user cannot be reached", 12_000),
        "254700001025" => auto(
            "1025",
            "An error occurred while sending a push request",
            1_000,
        ),
        "254700001001" => auto(
            "1001",
            "Unable to lock subscriber, a transaction is already in process for the current subscriber",
            1_000,
        ),
        "254700000404" => Behaviour {
            callbacks: 0,
            ..NORMAL
        },
        "254700000202" => Behaviour {
            callbacks: 2,
            ..NORMAL
        },
        "254700000010" => Behaviour {
            callback_delay_ms: 10_000,
            ..NORMAL
        },
        "254700000102" => Behaviour {
            query_hidden_ms: 30_000,
            ..NORMAL
        },
        _ => NORMAL,
    }
}

/// When the scripted outcome of a push made now happens.
pub fn auto_at(b: &Behaviour) -> Option<i64> {
    b.auto.map(|(_, _, ms)| now_ms() + ms)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_scale_outcomes_do_not() {
        let b = for_phone("254700001037").scaled(10);
        assert_eq!(
            b.auto,
            Some(("1037", "DS timeout user cannot be reached", 1_200))
        );
        assert_eq!(for_phone("254708374149").scaled(50).auto.unwrap().2, 30_000);
        assert_eq!(for_phone("254700000102").scaled(0).query_hidden_ms, 0);
        assert_eq!(for_phone("254700000202").scaled(10).callbacks, 2);
    }

    #[test]
    fn every_documented_number_has_its_behaviour() {
        for (phone, _) in SCRIPTED {
            assert_ne!(for_phone(phone), NORMAL, "{phone}");
        }
        assert_eq!(for_phone("254708374149"), NORMAL);
        assert_eq!(for_phone("254700000404").callbacks, 0);
        assert_eq!(for_phone("254700000202").callbacks, 2);
    }
}
