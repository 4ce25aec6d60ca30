//! What happens to a lead after a call: retry later, call back, done, or DNC.
//!
//! A pure function of the campaign's rules, the disposition, the lead's attempt history
//! and the time, so that every rule (delays, caps, the abandon lockout) is tested without
//! a database and the store applies the answer in the outcome's transaction.

use chrono::{LocalResult, NaiveDateTime, TimeZone};
use chrono_tz::Tz;

use crate::settings::RetryRules;

const HOUR_MS: i64 = 3_600_000;

/// The outcome of a call the toll-fraud guard refused to place ([`crate::guard`]). Such a
/// lead is done whatever the campaign's rules say: trying again would be refused again.
pub const BLOCKED: &str = "blocked";
const DAY_MS: i64 = 24 * HOUR_MS;

/// The flags of a disposition (system or custom).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DispositionFlags {
    pub code: String,
    pub human_contact: bool,
    pub sale: bool,
    pub callback: bool,
    pub dnc: bool,
}

/// The lead's attempts, including the one just finished.
#[derive(Debug, Clone, Default)]
pub struct History {
    /// Start times (Unix ms) of every attempt on this lead, also those before a reset: the
    /// cap per 24 hours protects the person called, whom a reset does not change.
    pub started: Vec<i64>,
    /// Attempts since the lead was last reset (its `attempts`), for the per-lead cap.
    pub attempts: u32,
    /// Attempts since the last reset that ended with the same disposition code as this one.
    pub same_disposition: u32,
    /// True while some number of the lead is still under its per-number cap (attempts since
    /// the last reset) and not DNC.
    pub numbers_left: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Dial again no earlier than this instant (Unix ms).
    Retry { at: i64 },
    /// A callback at this instant (Unix ms).
    Callback { at: i64 },
    Done,
    Dnc,
}

/// Apply the rules. `callback_at` is the instant an agent asked for, if any.
pub fn decide(rules: &RetryRules, d: &DispositionFlags, h: &History, abandoned: bool, callback_at: Option<i64>, now: i64) -> Decision {
    if d.dnc {
        return Decision::Dnc;
    }
    if d.code == BLOCKED {
        return Decision::Done;
    }
    if let Some(at) = callback_at {
        // A callback is a promise to the customer: it is kept even past the attempt caps.
        return Decision::Callback { at: at.max(now) };
    }
    let attempts = h.attempts;
    let delay_s = match rules.dispositions.get(&d.code) {
        Some(rule) => {
            if rule.max_attempts.is_some_and(|m| h.same_disposition >= m) {
                return Decision::Done;
            }
            rule.delay_s
        }
        None => rules.default_delay_s,
    };
    let Some(delay_s) = delay_s else { return Decision::Done };
    if attempts >= rules.max_attempts_per_lead || !h.numbers_left {
        return Decision::Done;
    }
    let mut at = now + delay_s as i64 * 1000;
    if abandoned {
        at = at.max(now + rules.abandon_lockout_h as i64 * HOUR_MS);
    }
    // With a cap of C a day, the next attempt waits until the C-th most recent one is
    // more than 24 hours old.
    let cap = rules.max_attempts_per_24h as usize;
    let mut recent: Vec<i64> = h.started.iter().copied().filter(|&t| t > at - DAY_MS).collect();
    if recent.len() >= cap {
        recent.sort_unstable_by(|a, b| b.cmp(a));
        at = at.max(recent[cap - 1] + DAY_MS);
    }
    Decision::Retry { at }
}

/// A local wall-clock time in `zone` as Unix ms. In a DST gap the time moves forward to
/// the first valid instant; in a fold the earlier instant is used.
pub fn local_to_utc_ms(local: NaiveDateTime, zone: Tz) -> i64 {
    match zone.from_local_datetime(&local) {
        LocalResult::Single(t) | LocalResult::Ambiguous(t, _) => t.timestamp_millis(),
        LocalResult::None => {
            let mut probe = local;
            for _ in 0..180 {
                probe += chrono::Duration::minutes(1);
                if let LocalResult::Single(t) | LocalResult::Ambiguous(t, _) = zone.from_local_datetime(&probe) {
                    return t.timestamp_millis();
                }
            }
            local.and_utc().timestamp_millis()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn disp(code: &str) -> DispositionFlags {
        DispositionFlags { code: code.into(), ..Default::default() }
    }

    fn hist(started: &[i64]) -> History {
        History { started: started.to_vec(), attempts: started.len() as u32, same_disposition: 1, numbers_left: true }
    }

    const NOW: i64 = 1_750_000_000_000;

    #[test]
    fn delays_per_disposition_and_done() {
        let r = RetryRules::default();
        assert_eq!(decide(&r, &disp("no_answer"), &hist(&[NOW]), false, None, NOW), Decision::Retry { at: NOW + 3600 * 1000 });
        assert_eq!(decide(&r, &disp("busy"), &hist(&[NOW]), false, None, NOW), Decision::Retry { at: NOW + 900 * 1000 });
        assert_eq!(decide(&r, &disp("answered"), &hist(&[NOW]), false, None, NOW), Decision::Done);
        // No rule and no default delay: done.
        assert_eq!(decide(&r, &disp("custom_x"), &hist(&[NOW]), false, None, NOW), Decision::Done);
        let mut r2 = r.clone();
        r2.default_delay_s = Some(60);
        assert_eq!(decide(&r2, &disp("custom_x"), &hist(&[NOW]), false, None, NOW), Decision::Retry { at: NOW + 60_000 });
    }

    #[test]
    fn caps_end_the_lead() {
        let mut r = RetryRules::default();
        r.max_attempts_per_24h = 100;
        let six: Vec<i64> = (0..6).map(|i| NOW - i * DAY_MS * 2).collect();
        assert_eq!(decide(&r, &disp("no_answer"), &hist(&six), false, None, NOW), Decision::Done);
        let h = History { numbers_left: false, ..hist(&[NOW]) };
        assert_eq!(decide(&r, &disp("no_answer"), &h, false, None, NOW), Decision::Done);
        r.dispositions.get_mut("busy").unwrap().max_attempts = Some(2);
        let h = History { same_disposition: 2, ..hist(&[NOW - 1000, NOW]) };
        assert_eq!(decide(&r, &disp("busy"), &h, false, None, NOW), Decision::Done);
    }

    #[test]
    fn daily_cap_pushes_the_next_attempt() {
        let r = RetryRules::default(); // 3 a day, busy retries after 15 minutes
        let started = [NOW - 5 * HOUR_MS, NOW - HOUR_MS, NOW];
        // Three attempts within 24 h: the next waits until the oldest of them is 24 h old.
        assert_eq!(decide(&r, &disp("busy"), &hist(&started), false, None, NOW), Decision::Retry { at: NOW - 5 * HOUR_MS + DAY_MS });
        let started = [NOW - 30 * HOUR_MS, NOW - HOUR_MS, NOW];
        assert_eq!(decide(&r, &disp("busy"), &hist(&started), false, None, NOW), Decision::Retry { at: NOW + 900_000 });
    }

    #[test]
    fn abandon_locks_the_number_out_for_72_hours() {
        let r = RetryRules::default();
        assert_eq!(decide(&r, &disp("no_answer"), &hist(&[NOW]), true, None, NOW), Decision::Retry { at: NOW + 72 * HOUR_MS });
        let mut r2 = r.clone();
        r2.abandon_lockout_h = 24;
        assert_eq!(decide(&r2, &disp("busy"), &hist(&[NOW]), true, None, NOW), Decision::Retry { at: NOW + 24 * HOUR_MS });
    }

    #[test]
    fn dnc_and_callbacks_win() {
        let r = RetryRules::default();
        let d = DispositionFlags { dnc: true, ..disp("dnc") };
        assert_eq!(decide(&r, &d, &hist(&[NOW]), false, Some(NOW + 5), NOW), Decision::Dnc);
        assert_eq!(decide(&r, &disp("answered"), &hist(&[NOW]), false, Some(NOW + 5), NOW), Decision::Callback { at: NOW + 5 });
    }

    #[test]
    fn blocked_numbers_are_never_retried() {
        let mut r = RetryRules::default();
        r.default_delay_s = Some(60);
        r.dispositions.insert(BLOCKED.into(), crate::settings::RetryRule { delay_s: Some(60), max_attempts: None });
        assert_eq!(decide(&r, &disp(BLOCKED), &hist(&[NOW]), false, None, NOW), Decision::Done);
    }

    #[test]
    fn local_times_cross_dst() {
        let ny = chrono_tz::America::New_York;
        let t = |s: &str| NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M").unwrap();
        // 14:00 EST = 19:00 UTC; 14:00 EDT = 18:00 UTC.
        assert_eq!(local_to_utc_ms(t("2025-03-08 14:00"), ny), 1741460400000);
        assert_eq!(local_to_utc_ms(t("2025-03-10 14:00"), ny), 1741629600000);
        // 02:30 on 2025-03-09 does not exist in New York: moved to 03:00 EDT (07:00 UTC).
        assert_eq!(local_to_utc_ms(t("2025-03-09 02:30"), ny), 1741503600000);
    }
}
