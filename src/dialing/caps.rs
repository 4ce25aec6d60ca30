//! A campaign's own ceilings on dialling, applied on top of the pacing engine's decision:
//! at most `max_concurrent_calls` calls in progress and `max_calls_per_second` new ones.
//! They bound the damage of a pacing bug, a bad setting or a hijacked campaign whatever
//! the engine asks for (the trunks' own caps live in the SIP gateway).
//!
//! Sans I/O: the time is an argument, so the rules are tested without a clock.

use std::time::Duration;

use tokio::time::Instant;

/// The caps of one campaign and the token bucket behind its call rate.
#[derive(Debug, Clone)]
pub struct Caps {
    max_concurrent: Option<u32>,
    /// Calls per second and the bucket: a burst of at most one second's worth.
    rate: Option<f64>,
    tokens: f64,
    filled_at: Instant,
}

impl Caps {
    pub fn new(max_concurrent: Option<u32>, max_per_second: Option<f64>, now: Instant) -> Caps {
        let rate = max_per_second.filter(|r| *r > 0.0);
        Caps { max_concurrent, rate, tokens: rate.map_or(0.0, burst), filled_at: now }
    }

    /// True when these caps are the ones the settings ask for (else start over with them).
    pub fn same_as(&self, max_concurrent: Option<u32>, max_per_second: Option<f64>) -> bool {
        self.max_concurrent == max_concurrent && self.rate == max_per_second.filter(|r| *r > 0.0)
    }

    fn refill(&mut self, now: Instant) {
        if let Some(rate) = self.rate {
            let dt = now.saturating_duration_since(self.filled_at).as_secs_f64();
            self.tokens = (self.tokens + dt * rate).min(burst(rate));
        }
        self.filled_at = now;
    }

    /// How many of the `wanted` calls may start now with `live` calls in progress; those
    /// are taken from the rate's budget.
    pub fn admit(&mut self, wanted: u32, live: u32, now: Instant) -> u32 {
        self.refill(now);
        let mut n = wanted;
        if let Some(max) = self.max_concurrent {
            n = n.min(max.saturating_sub(live));
        }
        if self.rate.is_some() {
            n = n.min(self.tokens.floor().max(0.0) as u32);
            self.tokens -= f64::from(n);
        }
        n
    }

    /// When the rate allows the next call (`None`: now, or no rate cap).
    pub fn next_call_in(&self, now: Instant) -> Option<Duration> {
        let rate = self.rate?;
        let dt = now.saturating_duration_since(self.filled_at).as_secs_f64();
        let missing = 1.0 - (self.tokens + dt * rate);
        (missing > 0.0).then(|| Duration::from_secs_f64(missing / rate))
    }
}

/// The bucket's size: one second of calls, and never less than one call.
fn burst(rate: f64) -> f64 {
    rate.max(1.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_caps_admit_what_pacing_asks() {
        let now = Instant::now();
        let mut c = Caps::new(None, None, now);
        assert_eq!(c.admit(40, 1000, now), 40);
        assert_eq!(c.next_call_in(now), None);
    }

    #[test]
    fn concurrency_counts_the_calls_in_progress() {
        let now = Instant::now();
        let mut c = Caps::new(Some(10), None, now);
        assert_eq!(c.admit(4, 3, now), 4);
        assert_eq!(c.admit(20, 7, now), 3);
        assert_eq!(c.admit(5, 10, now), 0);
        assert_eq!(c.admit(5, 12, now), 0, "more live than the cap (it was lowered): none");
    }

    #[test]
    fn the_rate_is_a_bucket_of_one_second() {
        let t0 = Instant::now();
        let mut c = Caps::new(None, Some(5.0), t0);
        assert_eq!(c.admit(100, 0, t0), 5, "a full bucket: one second's worth");
        assert_eq!(c.admit(100, 0, t0), 0);
        let wait = c.next_call_in(t0).unwrap();
        assert!((wait.as_secs_f64() - 0.2).abs() < 1e-9, "{wait:?}");
        assert_eq!(c.admit(100, 0, t0 + Duration::from_millis(400)), 2);
        // Idle time does not bank more than the burst.
        assert_eq!(c.admit(100, 0, t0 + Duration::from_secs(60)), 5);
        // Over ten seconds, the rate holds.
        let mut c = Caps::new(None, Some(2.0), t0);
        let started: u32 = (0..=100).map(|i| c.admit(10, 0, t0 + Duration::from_millis(100 * i))).sum();
        assert!((2 + 19..=2 + 20).contains(&started), "the initial burst, then 2 a second: {started}");
    }

    #[test]
    fn slow_rates_still_let_a_call_through() {
        let t0 = Instant::now();
        let mut c = Caps::new(None, Some(0.5), t0);
        assert_eq!(c.admit(3, 0, t0), 1);
        assert_eq!(c.admit(3, 0, t0 + Duration::from_secs(1)), 0);
        assert_eq!(c.next_call_in(t0 + Duration::from_secs(1)), Some(Duration::from_secs(1)));
        assert_eq!(c.admit(3, 0, t0 + Duration::from_secs(2)), 1);
    }

    #[test]
    fn both_caps_apply_and_changes_are_seen() {
        let t0 = Instant::now();
        let mut c = Caps::new(Some(3), Some(10.0), t0);
        assert_eq!(c.admit(8, 0, t0), 3);
        assert_eq!(c.admit(8, 1, t0), 2, "the rate still has tokens, concurrency binds");
        assert!(c.same_as(Some(3), Some(10.0)));
        assert!(!c.same_as(None, Some(10.0)));
    }
}
