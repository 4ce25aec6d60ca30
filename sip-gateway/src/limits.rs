//! Per-source admission: a token bucket of out-of-dialog requests per source address
//! (`sip.rate_limit_per_source`), and a ban of `sip.ban_seconds` for a source that failed
//! authentication or hit the rate limit `sip.ban_after_failures` times. Sans-I/O: every
//! call takes the current instant, so the rules are tested without sleeping.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use pacer_config::SipConfig;

/// Whether a request from a source may go on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Admit {
    Yes,
    /// Over the per-source rate: answer 503 with Retry-After.
    RateLimited,
    /// The source is banned: drop without an answer (scanners get nothing back).
    Banned,
}

struct Source {
    tokens: f64,
    refilled: Instant,
    failures: u32,
    banned_until: Option<Instant>,
}

/// Beyond this many tracked sources, idle ones are forgotten first; a flood of spoofed
/// source addresses must not grow the table without bound.
const MAX_SOURCES: usize = 65_536;

pub(crate) struct SourceLimits {
    rate: f64,
    ban_after: u32,
    ban_for: Duration,
    sources: Mutex<HashMap<IpAddr, Source>>,
}

impl SourceLimits {
    pub fn new(cfg: &SipConfig) -> Self {
        Self {
            rate: f64::from(cfg.rate_limit_per_source.max(1)),
            ban_after: cfg.ban_after_failures,
            ban_for: Duration::from_secs(cfg.ban_seconds),
            sources: Mutex::default(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<IpAddr, Source>> {
        self.sources.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn entry<'a>(&self, map: &'a mut HashMap<IpAddr, Source>, ip: IpAddr, now: Instant) -> &'a mut Source {
        if map.len() >= MAX_SOURCES && !map.contains_key(&ip) {
            // Keep the banned and the recently active; idle sources have a full bucket anyway.
            map.retain(|_, s| s.banned_until.is_some_and(|t| t > now) || now.duration_since(s.refilled) < Duration::from_secs(2));
        }
        map.entry(ip).or_insert(Source { tokens: self.rate, refilled: now, failures: 0, banned_until: None })
    }

    /// Whether `ip` is banned at `now` (a ban that ran out is lifted).
    pub fn is_banned(&self, ip: IpAddr, now: Instant) -> bool {
        let mut map = self.lock();
        let Some(s) = map.get_mut(&ip) else { return false };
        match s.banned_until {
            Some(t) if t > now => true,
            Some(_) => {
                s.banned_until = None;
                s.failures = 0;
                false
            }
            None => false,
        }
    }

    /// Takes one token for an out-of-dialog request from `ip`.
    pub fn admit(&self, ip: IpAddr, now: Instant) -> Admit {
        if self.is_banned(ip, now) {
            return Admit::Banned;
        }
        let mut map = self.lock();
        let s = self.entry(&mut map, ip, now);
        let elapsed = now.saturating_duration_since(s.refilled).as_secs_f64();
        s.tokens = (s.tokens + elapsed * self.rate).min(self.rate);
        s.refilled = now;
        if s.tokens >= 1.0 {
            s.tokens -= 1.0;
            Admit::Yes
        } else {
            Admit::RateLimited
        }
    }

    /// Counts a failure (bad credentials, rate limit hit) against `ip`; `true` when this
    /// failure starts a ban.
    pub fn record_failure(&self, ip: IpAddr, now: Instant) -> bool {
        if self.ban_after == 0 {
            return false;
        }
        let mut map = self.lock();
        let s = self.entry(&mut map, ip, now);
        if s.banned_until.is_some_and(|t| t > now) {
            return false;
        }
        s.failures += 1;
        if s.failures >= self.ban_after {
            s.banned_until = Some(now + self.ban_for);
            return true;
        }
        false
    }

    /// A successful authentication clears the source's failures.
    pub fn record_success(&self, ip: IpAddr) {
        if let Some(s) = self.lock().get_mut(&ip) {
            s.failures = 0;
        }
    }

    /// Sources banned at `now`.
    pub fn banned(&self, now: Instant) -> usize {
        self.lock().values().filter(|s| s.banned_until.is_some_and(|t| t > now)).count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(rate: u32, ban_after: u32) -> SourceLimits {
        SourceLimits::new(&SipConfig { rate_limit_per_source: rate, ban_after_failures: ban_after, ban_seconds: 60, ..Default::default() })
    }

    #[test]
    fn bucket_allows_the_rate_then_refills() {
        let l = limits(3, 100);
        let ip = "192.0.2.1".parse().unwrap();
        let t0 = Instant::now();
        assert_eq!((0..3).map(|_| l.admit(ip, t0)).collect::<Vec<_>>(), [Admit::Yes; 3]);
        assert_eq!(l.admit(ip, t0), Admit::RateLimited);
        assert_eq!(l.admit(ip, t0 + Duration::from_millis(340)), Admit::Yes, "a third of a second buys one request");
        let other = "192.0.2.2".parse().unwrap();
        assert_eq!(l.admit(other, t0), Admit::Yes, "sources are counted apart");
    }

    #[test]
    fn failures_ban_for_a_while_then_the_ban_lifts() {
        let l = limits(50, 3);
        let ip = "192.0.2.9".parse().unwrap();
        let t0 = Instant::now();
        assert!(!l.record_failure(ip, t0));
        assert!(!l.record_failure(ip, t0));
        assert!(l.record_failure(ip, t0), "the third failure bans");
        assert_eq!(l.admit(ip, t0 + Duration::from_secs(59)), Admit::Banned);
        assert_eq!(l.banned(t0), 1);
        assert_eq!(l.admit(ip, t0 + Duration::from_secs(61)), Admit::Yes);
        assert!(!l.record_failure(ip, t0 + Duration::from_secs(62)), "failures start again from zero");
    }

    #[test]
    fn success_clears_failures() {
        let l = limits(50, 2);
        let ip = "192.0.2.3".parse().unwrap();
        let t0 = Instant::now();
        l.record_failure(ip, t0);
        l.record_success(ip);
        assert!(!l.record_failure(ip, t0));
    }
}
