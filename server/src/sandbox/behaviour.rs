//! Scripted behaviours, chosen by the test phone number. Each operator has its own table
//! (documented in the README and on the handset page); the shape is shared.

/// What an operator does with a request to a given number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Behaviour {
    /// Decided without the handset: result code, description, after this many ms. For
    /// an ordinary number, the operator's time-out for a prompt nobody answers.
    pub auto: Option<(&'static str, &'static str, i64)>,
    /// Callbacks to deliver: 1 normally, 0 never, 2 twice.
    pub callbacks: i64,
    /// Delay before the (first) callback, ms.
    pub callback_delay_ms: i64,
    /// Delay between a callback and its duplicate, ms.
    pub duplicate_after_ms: i64,
    /// After the decision, the status query keeps saying "still processing" this long, ms.
    pub query_hidden_ms: i64,
}

impl Behaviour {
    /// An ordinary number: waits for the handset, and the operator decides `timeout`
    /// (its code and words) after `after_ms` if nobody answers.
    pub const fn waiting(timeout: (&'static str, &'static str), after_ms: i64) -> Behaviour {
        Behaviour {
            auto: Some((timeout.0, timeout.1, after_ms)),
            callbacks: 1,
            callback_delay_ms: 300,
            duplicate_after_ms: 1_000,
            query_hidden_ms: 0,
        }
    }

    /// Decided by script: `code` and `desc` after `after_ms`.
    pub const fn decided(self, code: &'static str, desc: &'static str, after_ms: i64) -> Behaviour {
        Behaviour {
            auto: Some((code, desc, after_ms)),
            ..self
        }
    }

    /// The scenarios every operator's sandbox offers beside its own codes.
    /// The callback is never sent (the status query still knows).
    pub const fn callback_lost(self) -> Behaviour {
        Behaviour {
            callbacks: 0,
            ..self
        }
    }

    /// The callback is sent twice, `apart_ms` apart.
    pub const fn callback_twice(self, apart_ms: i64) -> Behaviour {
        Behaviour {
            callbacks: 2,
            duplicate_after_ms: apart_ms,
            ..self
        }
    }

    /// The callback goes out `delay_ms` after the decision.
    pub const fn callback_late(self, delay_ms: i64) -> Behaviour {
        Behaviour {
            callback_delay_ms: delay_ms,
            ..self
        }
    }

    /// The status query keeps saying "still processing" `ms` after the decision.
    pub const fn query_lags(self, ms: i64) -> Behaviour {
        Behaviour {
            query_hidden_ms: ms,
            ..self
        }
    }

    /// With every delay at `percent` % (the sandbox's `delay_percent`: tests and demos
    /// need not wait real minutes for a time-out).
    pub fn scaled(self, percent: u32) -> Behaviour {
        let scale = |ms: i64| ms.saturating_mul(i64::from(percent)) / 100;
        Behaviour {
            auto: self.auto.map(|(code, desc, ms)| (code, desc, scale(ms))),
            callback_delay_ms: scale(self.callback_delay_ms),
            duplicate_after_ms: scale(self.duplicate_after_ms),
            query_hidden_ms: scale(self.query_hidden_ms),
            ..self
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_scale_outcomes_do_not() {
        let b = Behaviour::waiting(("1037", "timeout"), 60_000);
        let scaled = b.decided("1", "no funds", 12_000).scaled(10);
        assert_eq!(scaled.auto, Some(("1", "no funds", 1_200)));
        assert_eq!(scaled.callback_delay_ms, 30);
        assert_eq!(b.scaled(50).auto.unwrap().2, 30_000);
        let hidden = Behaviour {
            query_hidden_ms: 30_000,
            callbacks: 2,
            ..b
        };
        assert_eq!(hidden.scaled(0).query_hidden_ms, 0);
        assert_eq!(hidden.scaled(10).callbacks, 2);
    }
}
