//! A circuit breaker for a peer that keeps timing out (a merchant's webhook endpoint, an
//! operator's status API): after `threshold` failures in a row it opens for a cool-down
//! that doubles with each trip (up to a ceiling), then lets one probe through; a probe
//! that succeeds closes it. While it is open the work waits instead of tying up the
//! slots every other merchant's work needs.

/// What the breaker allows now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Gate {
    /// Work as usual.
    Closed,
    /// The cool-down is over: one probe at a time.
    Probe,
    /// Nothing until the cool-down ends.
    Open,
}

/// How a breaker behaves.
#[derive(Debug, Clone, Copy)]
pub struct BreakerPolicy {
    /// Failures in a row that open it.
    pub threshold: u32,
    /// The first cool-down, in ms; each further trip doubles it.
    pub cooldown_ms: i64,
    /// The longest cool-down, in ms.
    pub max_cooldown_ms: i64,
}

/// One peer's breaker.
#[derive(Debug, Clone, Default)]
pub struct Breaker {
    failures: u32,
    trips: u32,
    open_until: i64,
}

impl Breaker {
    pub fn gate(&self, policy: &BreakerPolicy, now: i64) -> Gate {
        if self.failures < policy.threshold {
            Gate::Closed
        } else if now < self.open_until {
            Gate::Open
        } else {
            Gate::Probe
        }
    }

    /// The peer answered: closed again, the cool-down back to its start.
    pub fn success(&mut self) {
        *self = Breaker::default();
    }

    /// The peer failed (timed out, refused the connection). Returns the end of the
    /// cool-down when this failure opens (or re-opens) the breaker.
    pub fn failure(&mut self, policy: &BreakerPolicy, now: i64) -> Option<i64> {
        self.failures = self.failures.saturating_add(1);
        if self.failures < policy.threshold || now < self.open_until {
            return None;
        }
        self.trips = self.trips.saturating_add(1);
        let doubled = policy
            .cooldown_ms
            .saturating_mul(1i64 << (self.trips - 1).min(20));
        self.open_until = now.saturating_add(doubled.min(policy.max_cooldown_ms));
        Some(self.open_until)
    }

    /// When the current (or last) cool-down ends.
    pub fn open_until(&self) -> i64 {
        self.open_until
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const POLICY: BreakerPolicy = BreakerPolicy {
        threshold: 3,
        cooldown_ms: 1_000,
        max_cooldown_ms: 3_000,
    };

    #[test]
    fn opens_after_failures_in_a_row_probes_then_closes() {
        let mut b = Breaker::default();
        assert_eq!(b.failure(&POLICY, 0), None);
        assert_eq!(b.failure(&POLICY, 0), None);
        assert_eq!(b.gate(&POLICY, 0), Gate::Closed);
        assert_eq!(b.failure(&POLICY, 10), Some(1_010));
        assert_eq!(b.gate(&POLICY, 500), Gate::Open);
        // Failures of work already under way while open do not extend it.
        assert_eq!(b.failure(&POLICY, 600), None);
        assert_eq!(b.gate(&POLICY, 1_010), Gate::Probe);
        // A failed probe re-opens it for twice as long, up to the ceiling.
        assert_eq!(b.failure(&POLICY, 1_100), Some(3_100));
        assert_eq!(b.failure(&POLICY, 3_100), Some(6_100));
        assert_eq!(b.gate(&POLICY, 6_100), Gate::Probe);
        b.success();
        assert_eq!(b.gate(&POLICY, 6_100), Gate::Closed);
        // Cleared: the count of failures in a row starts again.
        assert_eq!(b.failure(&POLICY, 6_200), None);
        assert_eq!(b.failure(&POLICY, 6_200), None);
        assert_eq!(b.gate(&POLICY, 6_200), Gate::Closed);
    }

    #[test]
    fn a_success_between_failures_resets_the_count() {
        let mut b = Breaker::default();
        b.failure(&POLICY, 0);
        b.failure(&POLICY, 0);
        b.success();
        assert_eq!(b.failure(&POLICY, 0), None);
        assert_eq!(b.gate(&POLICY, 0), Gate::Closed);
    }
}
